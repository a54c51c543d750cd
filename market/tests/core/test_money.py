"""The one strict parser and the money rules (`market.core.money`). No database."""

from decimal import Decimal as D
from fractions import Fraction

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.money import (
    DECIMAL_FORMAT,
    MAX_AMOUNT,
    MAX_PRICE,
    MAX_QUANTITY,
    WHOLE_FORMAT,
    describe,
    fee_on,
    format_average_price,
    format_eur,
    largest_remainder,
    parse_amount,
    parse_asset_amount,
    parse_price,
    parse_quantity,
    parse_rate,
    round_half_down_to_tick,
    round_to_tick,
    split_evenly,
)

# Every way a number may be typed that the parser must refuse rather than reinterpret.
NOT_A_NUMBER_IN_THE_ONE_FORM = [
    "13,50",  # a decimal comma: never €1,350.00
    "1,350.00",  # thousands separators
    "10.000,00",
    "1 000",
    "1'000",
    "1e4",  # exponents
    "1E4",
    "1.5e2",
    "١٢",  # Arabic-Indic digits
    "１２",  # full-width digits
    "१२",  # Devanagari digits
    "1_000",  # Python's digit separators
    "+5",  # a sign where none is allowed
    "--5",
    "12\x00",  # NUL
    "\x0012",
    "€13.50",  # junk around the number
    "13.50 EUR",
    "13.50.1",
    ".",
    "0x10",
    "NaN",
    "Infinity",
    "-Infinity",
    "abc",
]


def refused(parse, value, **kwargs) -> list[str]:
    with pytest.raises(ValidationError) as error:
        parse(value, field="field", **kwargs)
    return error.value.message_dict["field"]


@pytest.mark.parametrize("text", NOT_A_NUMBER_IN_THE_ONE_FORM)
def test_amounts_are_ascii_digits_with_an_optional_point_and_nothing_else(text):
    assert refused(parse_amount, text) == [DECIMAL_FORMAT]
    assert DECIMAL_FORMAT == "Use a point for decimals and no thousands separators, e.g. 13.50."


@pytest.mark.parametrize("text", NOT_A_NUMBER_IN_THE_ONE_FORM)
def test_quantities_are_ascii_digits_and_nothing_else(text):
    assert refused(parse_quantity, text) == [WHOLE_FORMAT]
    assert "e.g. 150" in WHOLE_FORMAT


@pytest.mark.parametrize(
    ("text", "value"),
    [("13.50", D("13.50")), ("13.5", D("13.50")), ("13", D("13.00")), (" 7 ", D("7.00")),
     (".5", D("0.50")), ("5.", D("5.00")), ("0013.50", D("13.50")), ("13.500", D("13.50"))],
)  # fmt: skip
def test_the_one_form_in_all_its_spellings(text, value):
    parsed = parse_amount(text, field="field")
    assert parsed == value and parsed.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5", "Must be greater than zero."),
        ("0", "Must be greater than zero."),
        ("13.505", "Use at most 2 decimal places."),
        ("1.0000000000000000000000000000001", "Use at most 2 decimal places."),
        (str(MAX_AMOUNT + 1), f"Must be at most {MAX_AMOUNT:,}."),
        ("1" * 41, "Enter at most 40 characters."),
        ("", "This field is required."),
        ("   ", "This field is required."),
        (None, "This field is required."),
        (True, "This field is required."),
        (13.5, "Send amounts as decimal strings, not floating point."),
        (D("NaN"), "Enter a finite number."),
        (["1"], DECIMAL_FORMAT),
    ],
)
def test_amount_refusals_say_what_is_wrong(value, message):
    assert refused(parse_amount, value) == [message]


def test_zero_where_it_is_allowed_and_numbers_from_code():
    assert parse_amount("0", field="f", allow_zero=True) == D("0.00")
    assert refused(parse_amount, "-0.01", allow_zero=True) == ["Must be zero or more."]
    assert parse_amount(D("12.5"), field="f") == D("12.50")
    assert parse_amount(1000, field="f") == D("1000.00")
    assert refused(parse_amount, D("1.001")) == ["Use at most 2 decimal places."]


def test_quantities_are_whole_and_in_range():
    assert parse_quantity("150", field="f") == 150
    assert parse_quantity(D("3.00"), field="f") == 3
    assert refused(parse_quantity, "2.5") == [
        "Certificates are whole units: enter a whole number."
    ]
    assert refused(parse_quantity, str(MAX_QUANTITY + 1)) == [
        f"Must be at most {MAX_QUANTITY:,} certificates."
    ]
    assert parse_quantity("0", field="f", allow_zero=True) == 0
    assert refused(parse_quantity, "0") == ["Must be greater than zero."]


def test_prices_are_on_the_tick_and_rates_below_their_cap():
    assert parse_price("14.05", tick=D("0.05"), field="p") == D("14.05")
    with pytest.raises(ValidationError, match="multiple of the tick"):
        parse_price("14.01", tick=D("0.05"), field="p")
    with pytest.raises(ValidationError, match="at most"):
        parse_price(str(MAX_PRICE + 1), tick=D("0.01"), field="p")
    assert parse_rate("0.005", field="f", maximum=D("0.1")) == D("0.005000")
    assert refused(parse_rate, "0.1", maximum=D("0.1")) == ["Must be below 0.1."]
    assert refused(parse_rate, "0.0000001", maximum=D("0.1")) == ["Use at most 6 decimal places."]


def test_an_amount_of_an_asset_is_cents_of_eur_or_whole_certificates():
    assert parse_asset_amount("EUR", "10.50") == D("10.50")
    assert parse_asset_amount("CEA", "10") == D("10")
    with pytest.raises(ValidationError, match="whole units"):
        parse_asset_amount("UKA", "10.50")


@settings(max_examples=300)
@given(st.text(max_size=12))
def test_the_parser_accepts_exactly_the_one_form(text):
    """Anything the parser accepts is ASCII digits with at most one point (surrounding
    whitespace aside); anything else is refused with a message, never an exception."""
    try:
        value = parse_amount(text, field="f", allow_zero=True, places=10)
    except ValidationError:
        return
    body = text.strip()
    assert body and set(body) <= set("0123456789.") and body.count(".") <= 1
    assert value == D(body)


@settings(max_examples=300)
@given(st.decimals(min_value=0, max_value=10**9, places=2), st.decimals(0, 10**9, places=2))
def test_the_fee_is_monotonic_so_cumulative_charging_never_overcharges(a, b):
    rate = D("0.005")
    low, high = sorted((a, b))
    assert fee_on(low, rate) <= fee_on(high, rate)
    # Charging a split value fill by fill on the cumulative value pays the whole fee once.
    assert fee_on(low, rate) + (fee_on(low + high, rate) - fee_on(low, rate)) == fee_on(
        low + high, rate
    )


def test_rounding_to_the_tick():
    assert round_to_tick(D("13.972"), D("0.05"), up=False) == D("13.95")
    assert round_to_tick(D("13.972"), D("0.05"), up=True) == D("14.00")
    assert round_half_down_to_tick(D("14.025"), D("0.05")) == D("14.00")  # a half goes down
    assert round_half_down_to_tick(D("14.026"), D("0.05")) == D("14.05")


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 10**12),
    weights=st.lists(st.integers(0, 10**12), min_size=1, max_size=12).filter(any),
)
def test_largest_remainder_is_exact_and_capped(total, weights):
    total = min(total, sum(weights))
    parts = largest_remainder(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert 0 <= part <= weight
        exact = Fraction(total * weight, sum(weights))
        assert exact - 1 < part < exact + 1


def test_an_even_split_is_exact_and_gives_earlier_shares_the_remainder():
    assert split_evenly(D("1000.00"), 3, asset="EUR") == [D("333.34"), D("333.33"), D("333.33")]
    assert split_evenly(D("10"), 4, asset="CEA") == [3, 3, 2, 2]
    assert sum(split_evenly(D("0.07"), 7, asset="EUR")) == D("0.07")


def test_display():
    assert format_eur(D("1234.5")) == "€1,234.50" and format_eur(D("-3")) == "-€3.00"
    assert format_eur(None) == "—"
    assert describe("EUR", D("1234.5")) == "€1,234.50"
    assert describe("UKA", D("1234")) == "1,234 UKA"
    assert format_average_price(D("14.1167")) == "€14.1167"
    # Always four decimals, so that averages line up and read alike everywhere.
    assert format_average_price(D("14.1000")) == "€14.1000"
    assert format_average_price(D("14.1")) == "€14.1000"
    assert format_average_price(D("14.125")) == "€14.1250"
    assert format_average_price(D("1234.56789")) == "€1,234.5679"
    assert format_average_price(None) == "—"
