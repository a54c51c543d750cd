"""Money in templates: `{{ amount|eur }}` → €1,234.56, `{{ quantity|certificates }}` → 1,234.

Also plain functions, for Python code that formats the same way (admin columns).
"""

from decimal import Decimal, InvalidOperation

from django import template

from market.money import format_eur, format_quantity

register = template.Library()


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value).replace(",", ""))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


@register.filter
def eur(value) -> str:
    """An EUR amount with the € sign, thousands separators and two decimals; "—" if none."""
    return format_eur(_decimal(value))


@register.filter
def certificates(value) -> str:
    """A whole number of certificates with thousands separators; "—" if none."""
    number = _decimal(value)
    return format_quantity(None if number is None else number.to_integral_value())
