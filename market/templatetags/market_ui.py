"""Presentation helpers of the cash-market page: the SVG depth chart's geometry and a few
number formats. Money itself is formatted by the `money` library (`eur`, `certificates`).

SVG coordinates are computed with Decimal and written with one decimal place: pixels, but
no float ever sees a price.
"""

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

from market.core.book import DepthCurve, OrderBook
from market.core.money import format_average_price, format_eur

register = template.Library()

PX = Decimal("0.1")
HUNDRED = Decimal("100")


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


@register.filter
def avg_price(value) -> str:
    """An average price with the € sign: two decimals, or up to four when it is not on a
    cent (€14.0333); "—" if none."""
    return format_average_price(_decimal(value))


@register.filter
def signed_eur(value) -> str:
    """+€0.25 / -€0.25 / €0.00; "—" if none."""
    number = _decimal(value)
    if number is None:
        return "—"
    return ("+" if number > 0 else "") + format_eur(number)


@register.filter
def signed_pct(value) -> str:
    """+1.25 % / -0.50 %; "—" if none."""
    number = _decimal(value)
    if number is None:
        return "—"
    number = number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{'+' if number > 0 else ''}{number}%"


@register.filter
def compact(value) -> str:
    """A count for an axis label: 950, 12.5k, 3.2M."""
    number = _decimal(value)
    if number is None:
        return ""
    for size, suffix in ((Decimal(1_000_000), "M"), (Decimal(1_000), "k")):
        if abs(number) >= size:
            scaled = (number / size).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            return f"{scaled.normalize():f}{suffix}"
    return f"{number.to_integral_value():,}"


@register.filter
def fee_pct(rate) -> str:
    """A fee rate as a percentage: 0.005 → 0.5%."""
    number = _decimal(rate)
    if number is None:
        return "—"
    percent = (number * HUNDRED).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP).normalize()
    return f"{percent:f}%"


@register.filter
def status_note(reason, status_label) -> str:
    """An order's status reason without the status it repeats beside its badge:
    ("cancelled by owner", "Cancelled") → "by owner", so the row reads "Cancelled by
    owner" once; other reasons as they are."""
    reason, label = str(reason or "").strip(), str(status_label or "").strip()
    if label and reason.lower().startswith(label.lower() + " "):
        return reason[len(label) + 1 :]
    return reason


@dataclass(frozen=True)
class _NoBalance:
    available: Decimal = Decimal("0")
    locked: Decimal = Decimal("0")
    total: Decimal = Decimal("0")


@register.filter
def balance_row(balances, asset):
    """`balances|balance_row:"EUR"`: the row of one asset from `holder_balances`, zeros
    when there is none."""
    return (balances or {}).get(asset) or _NoBalance()


@register.filter
def balance_of(balances, asset):
    """`balances|balance_of:"CEA"`: the available amount of one asset."""
    return balance_row(balances, asset).available


# --- Depth chart -------------------------------------------------------------------------


@dataclass
class DepthChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    bid_area: str = ""
    bid_line: str = ""
    ask_area: str = ""
    ask_line: str = ""
    x_ticks: list = field(default_factory=list)  # (x, label)
    y_ticks: list = field(default_factory=list)  # (y, label)
    mid_x: Decimal | None = None
    mid_label: str = ""
    empty: bool = True
    narrow: bool = False  # the phone's drawing (see `depth_charts`)


def nice_step(raw: Decimal, *, minimum: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5 or 5 × 10^k that is at least `raw` (and `minimum`)."""
    if raw <= minimum:
        return minimum
    power = Decimal(10) ** (raw.adjusted())
    for factor in (1, 2, Decimal("2.5"), 5, 10):
        step = power * factor
        if step >= raw:
            return max(step, minimum)
    return power * 10


def _range(start: Decimal, stop: Decimal, step: Decimal):
    value = start
    while value <= stop:
        yield value
        value += step


def _fmt(value: Decimal) -> str:
    return str(value.quantize(PX, rounding=ROUND_HALF_UP))


def depth_chart_geometry(
    curve: DepthCurve,
    *,
    mid: Decimal | None = None,
    tick: Decimal = Decimal("0.01"),
    width: int = 720,
    height: int = 300,
    narrow: bool = False,
) -> DepthChart:
    """Step curves of cumulative quantity against price: bids falling to the best bid,
    asks rising from the best ask, each closed into an area."""
    left, right, top, bottom = 52, width - 12, 12, height - 26
    chart = DepthChart(width, height, left, right, top, bottom, narrow=narrow)
    if curve.low_price is None or curve.max_cumulative <= 0:
        return chart
    chart.empty = False
    span = curve.high_price - curve.low_price
    pad = max(tick * 2, span * Decimal("0.04"))
    x_low, x_high = curve.low_price - pad, curve.high_price + pad
    y_max = Decimal(curve.max_cumulative) * Decimal("1.08")
    plot_w, plot_h = Decimal(right - left), Decimal(bottom - top)

    def x(price: Decimal) -> str:
        return _fmt(left + (price - x_low) / (x_high - x_low) * plot_w)

    def y(quantity) -> str:
        return _fmt(bottom - Decimal(quantity) / y_max * plot_h)

    base = _fmt(Decimal(bottom))
    if curve.bids:
        # Bid depth at price p: every bid at p or above. Deepest (lowest) price first.
        points = [(x(x_low), y(curve.bids[0].cumulative_quantity))]
        for index, point in enumerate(curve.bids):
            points.append((x(point.price), y(point.cumulative_quantity)))
            if index + 1 < len(curve.bids):
                points.append((x(point.price), y(curve.bids[index + 1].cumulative_quantity)))
        line = " ".join(f"{px},{py}" for px, py in points)
        last_x = points[-1][0]
        chart.bid_line = line
        chart.bid_area = f"{x(x_low)},{base} {line} {last_x},{base}"
    if curve.asks:
        # Ask depth at price p: every ask at p or below. Best (lowest) price first.
        first_x = x(curve.asks[0].price)
        points = []
        for index, point in enumerate(curve.asks):
            if index:
                points.append((x(point.price), y(curve.asks[index - 1].cumulative_quantity)))
            points.append((x(point.price), y(point.cumulative_quantity)))
        points.append((x(x_high), y(curve.asks[-1].cumulative_quantity)))
        line = " ".join(f"{px},{py}" for px, py in points)
        chart.ask_line = line
        chart.ask_area = f"{first_x},{base} {line} {x(x_high)},{base}"
    x_step = nice_step((x_high - x_low) / 5, minimum=tick)
    first = (x_low / x_step).to_integral_value(rounding=ROUND_CEILING) * x_step
    chart.x_ticks = [
        (x(price), format_eur(price))
        for price in _range(first, x_high, x_step)
        # Keep labels clear of the plot's edges.
        if x_low + x_step / 4 <= price <= x_high - x_step / 4
    ]
    y_step = nice_step(y_max / 4, minimum=Decimal(1))
    chart.y_ticks = [(y(count), compact(count)) for count in _range(Decimal(0), y_max, y_step)]
    if mid is not None and x_low <= mid <= x_high:
        chart.mid_x = x(mid)
        chart.mid_label = format_eur(mid)
    return chart


# The phone's drawing: about as many SVG units as a phone has CSS pixels across, so its
# 10-unit labels are drawn about 10 px tall (the 720-unit one would shrink them to 5).
NARROW_CHART = (360, 260)


@register.simple_tag
def depth_charts(book: OrderBook) -> list[DepthChart]:
    """`{% depth_charts book as charts %}`: the depth chart drawn for a wide screen and
    for a phone (`narrow`), from one depth curve."""
    curve = book.depth_curve()
    width, height = NARROW_CHART
    return [
        depth_chart_geometry(curve, mid=book.mid, tick=book.tick),
        depth_chart_geometry(
            curve, mid=book.mid, tick=book.tick, width=width, height=height, narrow=True
        ),
    ]
