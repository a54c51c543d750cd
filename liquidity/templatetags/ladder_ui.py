"""Ladders in templates: `{{ level.distance_pct|pct }}` → 0.2, `{{ level.share|fraction_pct }}`
→ 33.33 (a share of 0.3333). Percentages as a person writes them: no trailing zeros, never
rounded (a ladder has at most two decimals)."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


def _decimal(value) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


def _plain(number: Decimal) -> str:
    return f"{number.normalize():f}"


@register.filter
def pct(value) -> str:
    """A percentage: Decimal("0.20") → "0.2", Decimal("50.00") → "50"; "—" if none."""
    number = _decimal(value)
    return "—" if number is None else _plain(number)


@register.filter
def fraction_pct(value) -> str:
    """A fraction as a percentage: 0.5 → "50", 0.3333 → "33.33"; "—" if none."""
    number = _decimal(value)
    return "—" if number is None else _plain(number * 100)
