"""The price chart's geometry: `{% candle_chart series as chart %}`.

The chart is an SVG drawn with `preserveAspectRatio="none"` into a box of fixed height and
the page's width, so it fills a phone (390 px) and a desktop alike without tiny text:
candles, wicks and volume bars are in viewBox units (one slot is `SLOT` units wide, the
height `HEIGHT` units), their strokes do not scale (`vector-effect`), and every label is
HTML laid over the box at a percentage position (`*_pct`), in the page's own font size.

Up candles (close above open) are hollow, down candles filled: the direction reads without
colour. Empty intervals (no trade) are a thin grey dash at the carried close.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from django import template
from django.utils.dateformat import format as format_date

from market.core.candles import Candle, CandleSeries, slot_index
from market.core.money import format_eur, format_quantity
from market.templatetags.market_ui import compact, nice_step

register = template.Library()

SLOT = 10  # viewBox units per slot
BODY = Decimal("6.4")  # candle body width, units
HEIGHT = 100
PRICE_TOP, PRICE_BOTTOM = Decimal(4), Decimal(76)  # price area
VOLUME_TOP, VOLUME_BOTTOM = Decimal(82), Decimal(100)  # volume area
MIN_BODY = Decimal("0.5")  # a body never thinner than this (a doji stays visible)
UNIT = Decimal("0.01")
PCT = Decimal("0.1")
# Interval → (slots between time labels, date format of a label, of a label on a new day).
TIME_LABELS = {
    60: (10, "H:i", "M j"),
    300: (12, "H:i", "M j"),
    3600: (12, "H:i", "M j"),
    86400: (7, "M j", "M j"),
}


@dataclass
class CandleMark:
    x: str  # left edge of the body
    center: str
    right: str
    width: str
    body_top: str
    body_height: str
    body_bottom: str
    high: str
    low: str
    volume_top: str
    volume_height: str
    direction: str  # up / down / flat / empty
    label: str  # "Mar 4 12:05 · O €14.00 H … · Vol 17"
    candle: Candle


@dataclass
class CandleChart:
    width: int
    height: int = HEIGHT
    marks: list[CandleMark] = field(default_factory=list)
    price_ticks: list = field(default_factory=list)  # (y, top_pct, label)
    time_ticks: list = field(default_factory=list)  # (x, left_pct, label)
    last_y: str = ""
    last_pct: str = ""
    last_label: str = ""
    last_direction: str = "flat"
    volume_label: str = ""
    summary: str = ""
    empty: bool = True


def _units(value: Decimal) -> str:
    return str(value.quantize(UNIT, rounding=ROUND_HALF_UP))


def _pct(value: Decimal, total: Decimal) -> str:
    return str((value / total * 100).quantize(PCT, rounding=ROUND_HALF_UP))


def _describe(candle: Candle, moment: str) -> str:
    if candle.is_empty:
        return f"{moment} · no trades · {format_eur(candle.close)}"
    return (
        f"{moment} · O {format_eur(candle.open)} H {format_eur(candle.high)} "
        f"L {format_eur(candle.low)} C {format_eur(candle.close)} · "
        f"Vol {format_quantity(candle.volume)}"
    )


def candle_chart_geometry(series: CandleSeries, *, tick: Decimal = UNIT) -> CandleChart:
    """The chart of `series` (see the module docstring)."""
    width = series.slots * SLOT
    chart = CandleChart(width=width)
    if series.is_empty:
        return chart
    chart.empty = False
    low, high = series.low, series.high
    pad = max((high - low) * Decimal("0.08"), tick * 5, high * Decimal("0.002"))
    y_low, y_high = low - pad, high + pad
    span = PRICE_BOTTOM - PRICE_TOP
    max_volume = Decimal(series.max_volume or 1)
    volume_span = VOLUME_BOTTOM - VOLUME_TOP

    def y(price: Decimal) -> Decimal:
        return PRICE_BOTTOM - (price - y_low) / (y_high - y_low) * span

    label_every, label_format, day_format = TIME_LABELS.get(
        series.interval_seconds, (12, "H:i", "M j")
    )
    moment_format = "M j" if series.interval_seconds >= 86400 else "M j H:i"
    for candle in series.candles:
        slot = series.slot_of(candle)
        left = Decimal(slot * SLOT) + (SLOT - BODY) / 2
        top, bottom = y(max(candle.open, candle.close)), y(min(candle.open, candle.close))
        if bottom - top < MIN_BODY:
            middle = (top + bottom) / 2
            top, bottom = middle - MIN_BODY / 2, middle + MIN_BODY / 2
        volume_height = Decimal(candle.volume) / max_volume * volume_span
        chart.marks.append(
            CandleMark(
                x=_units(left),
                center=_units(left + BODY / 2),
                right=_units(left + BODY),
                width=_units(BODY),
                body_top=_units(top),
                body_height=_units(bottom - top),
                body_bottom=_units(bottom),
                high=_units(y(candle.high)),
                low=_units(y(candle.low)),
                volume_top=_units(VOLUME_BOTTOM - volume_height),
                volume_height=_units(volume_height),
                direction="empty" if candle.is_empty else candle.direction,
                label=_describe(candle, format_date(candle.open_time, moment_format)),
                candle=candle,
            )
        )

    # Price labels at a nice step, kept inside the price area.
    step = nice_step((y_high - y_low) / 6, minimum=tick)
    price = (y_low / step).to_integral_value(rounding=ROUND_CEILING) * step
    while price <= y_high:
        at = y(price)
        if PRICE_TOP <= at <= PRICE_BOTTOM:
            chart.price_ticks.append((_units(at), _pct(at, HEIGHT), format_eur(price)))
        price += step

    # Time labels on slots aligned to the epoch (on the hour, at midnight, …), away from
    # the edges so they never stick out of the box.
    first_slot = slot_index(series.start, series.interval_seconds)
    for slot in range(series.slots):
        if (first_slot + slot) % label_every:
            continue
        left = Decimal(slot * SLOT + SLOT // 2)
        if not Decimal("0.06") * width <= left <= Decimal("0.94") * width:
            continue
        moment = series.start + timedelta(seconds=slot * series.interval_seconds)
        is_midnight = moment.hour == 0 and moment.minute == 0
        chart.time_ticks.append(
            (
                _units(left),
                _pct(left, Decimal(width)),
                format_date(moment, day_format if is_midnight else label_format),
            )
        )

    last = series.last
    # The last-price tag covers the axis labels next to it.
    chart.price_ticks = [
        tick_row for tick_row in chart.price_ticks if abs(Decimal(tick_row[0]) - y(last.close)) > 5
    ]
    chart.last_y = _units(y(last.close))
    chart.last_pct = _pct(y(last.close), HEIGHT)
    chart.last_label = format_eur(last.close)
    traded = series.traded
    chart.last_direction = traded[-1].direction if traded else "flat"
    chart.volume_label = compact(series.max_volume)
    first = series.candles[0]
    chart.summary = (
        f"{len(traded)} of {len(series.candles)} intervals traded; "
        f"from {format_eur(first.open)} to {format_eur(last.close)}, "
        f"high {format_eur(high)}, low {format_eur(low)}, "
        f"volume {format_quantity(series.volume)}."
    )
    return chart


@register.simple_tag
def candle_chart(series: CandleSeries, tick: Decimal = UNIT) -> CandleChart:
    """`{% candle_chart series market.tick_size as chart %}`."""
    return candle_chart_geometry(series, tick=tick)
