"""Money, prices and certificate quantities: the one strict parser, rounding, fees, splits
and display. Pure: no ORM, no floats.

Every amount, price and quantity a person or a client types goes through `parse_amount`,
`parse_price`, `parse_quantity` or `parse_rate`, from every form, API field, admin page
and command. Text is accepted only in one form: ASCII digits with an optional decimal
point (surrounding whitespace aside). Commas, exponents, underscores, signs, non-ASCII
digits, NUL and anything else are refused with a message that shows the expected form,
never reinterpreted: "13,50" is not €1,350.00 and "1e4" is not 10,000.

Values that are already numbers (`Decimal`, `int`) come from code or from JSON integers
and are checked the same way (places, range). Floats are refused outright.
"""

import re
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError

EUR = "EUR"  # every market is traded for EUR: the one quote currency
CENT = Decimal("0.01")
ZERO = Decimal("0")
MAX_PRICE = Decimal("1000000")  # EUR per certificate
MAX_QUANTITY = 100_000_000  # certificates in one order or transfer
MAX_AMOUNT = Decimal("1000000000000")  # EUR in one order, deposit or withdrawal
MAX_FEE_RATE = Decimal("0.1")  # fee rates are below 10 % (a CHECK constraint too)

MAX_TEXT = 40  # characters: more than any amount, price or quantity we accept needs
# ASCII digits, optionally a point with more digits ("13", "13.50", "13.", ".5").
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
DECIMAL_FORMAT = "Use a point for decimals and no thousands separators, e.g. 13.50."
WHOLE_FORMAT = "Enter a whole number in digits, without separators, e.g. 150."
# What inputs show as their placeholder: the expected form.
DECIMAL_PLACEHOLDER = "13.50"
WHOLE_PLACEHOLDER = "150"


def _refuse(field: str, message: str):
    raise ValidationError({field: message})


def _number(value, *, field: str, whole: bool) -> Decimal:
    """`value` as a finite Decimal, from text in the one accepted form or from a number."""
    if isinstance(value, bool) or value is None:
        _refuse(field, "This field is required.")
    if isinstance(value, float):
        _refuse(field, "Send amounts as decimal strings, not floating point.")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            _refuse(field, "Enter a finite number.")
        return value
    if not isinstance(value, str):
        _refuse(field, WHOLE_FORMAT if whole else DECIMAL_FORMAT)
    text = value.strip()
    if not text:
        _refuse(field, "This field is required.")
    if len(text) > MAX_TEXT:
        _refuse(field, f"Enter at most {MAX_TEXT} characters.")
    if text[0] == "-" and _NUMBER.fullmatch(text[1:]):
        return -Decimal(text[1:])  # refused by the caller's range, with its message
    if not _NUMBER.fullmatch(text):
        _refuse(field, WHOLE_FORMAT if whole else DECIMAL_FORMAT)
    return Decimal(text)


def _places(number: Decimal) -> int:
    """Decimal places that carry a non-zero digit, counted exactly (no context rounding)."""
    _, digits, exponent = number.as_tuple()
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing_zeros)) if any(digits) else 0


def parse_amount(
    value,
    *,
    field: str,
    places: int = 2,
    maximum: Decimal = MAX_AMOUNT,
    allow_zero: bool = False,
) -> Decimal:
    """A positive (with `allow_zero`, non-negative) amount with at most `places` decimals,
    returned with exactly `places` decimals."""
    number = _number(value, field=field, whole=False)
    if number < 0 or (number == 0 and not allow_zero):
        _refuse(field, "Must be zero or more." if allow_zero else "Must be greater than zero.")
    if number > maximum:
        _refuse(field, f"Must be at most {maximum:,}.")
    if _places(number) > places:
        _refuse(field, f"Use at most {places} decimal places.")
    return number.quantize(Decimal(1).scaleb(-places))


def parse_quantity(
    value, *, field: str = "quantity", maximum: int = MAX_QUANTITY, allow_zero: bool = False
) -> int:
    """A positive (with `allow_zero`, non-negative) whole number of certificates."""
    number = _number(value, field=field, whole=True)
    if number < 0 or (number == 0 and not allow_zero):
        _refuse(field, "Must be zero or more." if allow_zero else "Must be greater than zero.")
    if number != number.to_integral_value():
        _refuse(field, "Certificates are whole units: enter a whole number.")
    if number > maximum:
        _refuse(field, f"Must be at most {maximum:,} certificates.")
    return int(number)


def parse_price(value, *, tick: Decimal, field: str = "price") -> Decimal:
    """A positive price in EUR per certificate on the market's tick."""
    price = parse_amount(value, field=field, maximum=MAX_PRICE)
    if price % tick != 0:
        _refuse(field, f"The price must be a multiple of the tick ({tick}).")
    return price


def parse_rate(value, *, field: str, maximum: Decimal, places: int = 6) -> Decimal:
    """A fee rate (0.005 = 0.5 %): zero or more, below `maximum`, at most `places` decimals."""
    rate = parse_amount(value, field=field, places=places, maximum=maximum, allow_zero=True)
    if rate >= maximum:
        _refuse(field, f"Must be below {maximum}.")
    return rate


def parse_asset_amount(asset: str, value, *, field: str = "amount") -> Decimal:
    """An amount of `asset` to deposit or withdraw: EUR to the cent, certificates whole."""
    if asset == EUR:
        return parse_amount(value, field=field)
    return Decimal(parse_quantity(value, field=field))


# --- Rounding, fees and splits ----------------------------------------------------------


def fee_on(value: Decimal, rate: Decimal) -> Decimal:
    """The fee on a traded EUR value, rounded half up to the cent.

    Monotonic in `value`, so charging each fill the difference of `fee_on` over the
    order's cumulative traded value never charges more than `fee_on` of the total.
    """
    return (value * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def round_to_tick(price: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    """`price` rounded up (or down) to a multiple of the tick."""
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (steps * tick).quantize(CENT)


def round_half_down_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """`price` to the nearest multiple of the tick; an exact half tick goes down."""
    steps = (price / tick).to_integral_value(rounding=ROUND_HALF_DOWN)
    return (steps * tick).quantize(CENT)


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split the integer `total` pro rata to non-negative integer `weights`, exactly: each
    part is the floor or the ceiling of total × w / Σw, the parts add up to `total`, the
    leftover units go to the largest remainders (ties: the earlier position). A part is
    never above ceil(total × w / Σw), so with weights = holdings and total ≤ Σ holdings no
    part exceeds its holding; with equal weights the first `total % n` parts get one more."""
    weight_sum = sum(weights)
    if total == 0:
        return [0] * len(weights)
    if weight_sum <= 0:
        raise ValueError("cannot split a positive total over zero weights")
    parts = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    leftover = total - sum(parts)
    ranked = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in ranked[:leftover]:
        parts[i] += 1
    return parts


def capped_largest_remainder(total: int, weights: Sequence[int], caps: Sequence[int]) -> list[int]:
    """Split `total` pro rata to `weights` (as `largest_remainder`) with no part above its
    cap: what a capped part cannot take is split again over the others, pro rata, until
    everything is placed or every part is at its cap. The parts add up to
    min(total, Σ caps)."""
    if len(weights) != len(caps):
        raise ValueError("one cap per weight")
    parts = [0] * len(weights)
    remaining = total
    active = [i for i, (w, cap) in enumerate(zip(weights, caps, strict=True)) if w > 0 and cap > 0]
    while remaining > 0 and active:
        shares = largest_remainder(remaining, [weights[i] for i in active])
        for i, share in zip(active, shares, strict=True):
            given = min(share, caps[i] - parts[i])
            parts[i] += given
            remaining -= given
        active = [i for i in active if parts[i] < caps[i]]
    return parts


def unit_of(asset: str) -> Decimal:
    """The smallest amount of `asset` that moves: a cent of EUR, one certificate."""
    return CENT if asset == EUR else Decimal(1)


def split_evenly(total: Decimal, count: int, *, asset: str) -> list[Decimal]:
    """`total` of `asset` in `count` shares of whole units that add up to it exactly
    (earlier shares get the remainder)."""
    unit = unit_of(asset)
    return [part * unit for part in largest_remainder(int(total / unit), [1] * count)]


# --- Display ----------------------------------------------------------------------------


def format_eur(amount: Decimal | None) -> str:
    if amount is None:
        return "—"
    sign = "-" if amount < 0 else ""
    return f"{sign}€{abs(amount).quantize(CENT):,}"


def format_quantity(quantity) -> str:
    if quantity is None:
        return "—"
    return f"{int(quantity):,}"


def format_average_price(price: Decimal | None) -> str:
    """An average price with the € sign and always four decimals (€14.1000, €14.0333), so
    that averages line up in a column and read alike in the estimate, My Orders and the
    placement's message; "—" if none."""
    if price is None:
        return "—"
    places = price.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    sign = "-" if places < 0 else ""
    return f"{sign}€{abs(places):,f}"


def describe(asset: str, amount: Decimal) -> str:
    """An amount of any asset as a person reads it: €1,234.50 or 1,234 CEA."""
    return format_eur(amount) if asset == EUR else f"{format_quantity(amount)} {asset}"
