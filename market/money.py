"""Parsing, rounding and formatting of money, prices and certificate quantities.

Pure: no ORM. Every amount is a `Decimal`; floats are refused, never converted.
"""

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError

CENT = Decimal("0.01")
MAX_PRICE = Decimal("1000000")  # EUR per certificate
MAX_QUANTITY = 100_000_000  # certificates in one order or transfer
MAX_AMOUNT = Decimal("1000000000000")  # EUR in one order, deposit or withdrawal


def _to_decimal(value, field: str) -> Decimal:
    if isinstance(value, float):
        raise ValidationError({field: "Send amounts as decimal strings, not floating point."})
    if isinstance(value, bool) or value is None or value == "":
        raise ValidationError({field: "This field is required."})
    try:
        number = (
            Decimal(str(value).strip().replace(",", ""))
            if isinstance(value, str)
            else (Decimal(value))
        )
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationError({field: "Enter a number."}) from None
    if not number.is_finite():
        raise ValidationError({field: "Enter a finite number."})
    return number


def parse_amount(
    value, *, field: str, places: int = 2, maximum: Decimal = MAX_AMOUNT, allow_zero=False
) -> Decimal:
    """A positive (or, with allow_zero, non-negative) amount with at most `places` decimals."""
    number = _to_decimal(value, field)
    if number < 0 or (number == 0 and not allow_zero):
        raise ValidationError(
            {field: "Must be zero or more." if allow_zero else "Must be greater than zero."}
        )
    if number > maximum:
        raise ValidationError({field: f"Must be at most {maximum:,}."})
    if number != number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR):
        raise ValidationError({field: f"Use at most {places} decimal places."})
    return number.quantize(Decimal(1).scaleb(-places))


def parse_quantity(value, *, field: str = "quantity", maximum: int = MAX_QUANTITY) -> int:
    """A positive whole number of certificates."""
    number = _to_decimal(value, field)
    if number <= 0:
        raise ValidationError({field: "Must be greater than zero."})
    if number != number.to_integral_value():
        raise ValidationError({field: "Certificates are whole units: enter a whole number."})
    if number > maximum:
        raise ValidationError({field: f"Must be at most {maximum:,} certificates."})
    return int(number)


def parse_price(value, *, tick: Decimal, field: str = "price") -> Decimal:
    """A positive price on the market's tick."""
    price = parse_amount(value, field=field, maximum=MAX_PRICE)
    if price % tick != 0:
        raise ValidationError({field: f"The price must be a multiple of the tick ({tick})."})
    return price


def fee_on(value: Decimal, rate: Decimal) -> Decimal:
    """The fee on a traded EUR value, rounded half up to the cent.

    Monotonic in `value`, so charging each fill the difference of `fee_on` over the
    order's cumulative traded value never charges more than `fee_on` of the total.
    """
    return (value * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def round_to_tick(price: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (steps * tick).quantize(CENT)


def format_eur(amount: Decimal | None) -> str:
    if amount is None:
        return "—"
    sign = "-" if amount < 0 else ""
    return f"{sign}€{abs(amount).quantize(CENT):,}"


def format_quantity(quantity) -> str:
    if quantity is None:
        return "—"
    return f"{int(quantity):,}"
