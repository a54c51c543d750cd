"""Money in templates: `{{ amount|eur }}` → €1,234.56, `{{ quantity|certificates }}` → 1,234,
`{{ amount|amount:asset }}` → either, by asset.

Also plain functions, for Python code that formats the same way (admin columns). Values
are formatted, never parsed: a value that is not a number shows as "—".
"""

from decimal import Decimal, InvalidOperation

from django import template

from market.core.money import EUR, format_eur, format_quantity

register = template.Library()


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
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


@register.filter
def amount(value, asset) -> str:
    """An amount of `asset`: EUR as `eur`, certificates as `certificates`."""
    return eur(value) if asset == EUR else certificates(value)
