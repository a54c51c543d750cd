"""A market's guardrails against fat fingers: the price band, the slippage limit of market
orders, the largest order, and how far a staff reference price may stray. Pure.

- **Price band**: no order is placed, and no market order trades, outside ±`price_band_pct`
  of the band's anchor, the previous close (the last trade price of an earlier UTC day, as
  China's CEA market bands ±10 % around the previous close), or failing that the market's
  reference price set by staff. The anchor never follows the live book: an order cannot
  move its own band. An order resting from an earlier day outside today's band is passed
  over by market orders; a limit order that crosses it still trades with it, at its price,
  so that the book never stays crossed.
- **Slippage limit**: a market order trades no further than `slippage_pct` from the best
  price it meets on entry; the remainder is cancelled.
- **Order limits**: a maximum quantity and a maximum EUR value per order.
- **Reference sanity**: a reference price entered by staff lies within ±`price_band_pct`
  of the book's own reference unless they explicitly override.
- **Re-quote**: while a trader's confirmation is open its estimate follows the book; a
  market order whose estimate moved (`quote_moved`) must be reviewed again before it can
  be confirmed. A limit order is bounded by its own price and is not asked again.

A setting of None switches its guardrail off.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from market.core.money import format_eur, format_quantity, round_half_down_to_tick, round_to_tick

HUNDRED = Decimal(100)
DEFAULT_PRICE_BAND_PCT = Decimal(10)
DEFAULT_SLIPPAGE_PCT = Decimal(5)
# How far a market order's estimated average price may move from the one the trader
# reviewed before the confirmation asks for a new review: 0.5 %, a few ticks at today's
# prices (a tick of €0.01 on €14 is 0.07 %), so book noise does not nag while a real
# move does.
REQUOTE_TOLERANCE_PCT = Decimal("0.5")


def previous_close_on(
    today: date,
    *,
    last_price: Decimal | None,
    last_trade_date: date | None,
    previous_close: Decimal | None,
) -> Decimal | None:
    """The previous close as of `today`, from what the market row keeps: the last trade's
    price if it traded on an earlier day, else the close kept when today's first trade
    came in (None if the market never traded before today). A trade today keeps this
    value as the row's previous close, so reader and writer follow this one rule."""
    if last_trade_date is not None and last_trade_date < today:
        return last_price
    return previous_close


def pct_text(pct: Decimal) -> str:
    """10 → "10 %", 2.50 → "2.5 %"."""
    text = f"{pct.normalize():f}"
    return f"{text} %"


@dataclass(frozen=True, slots=True)
class PriceBand:
    """The prices an order may rest or trade at today: `low` to `high`, on the tick."""

    low: Decimal
    high: Decimal
    anchor: Decimal
    anchor_label: str  # "previous close" or "reference price"
    pct: Decimal

    def contains(self, price: Decimal) -> bool:
        return self.low <= price <= self.high

    @property
    def range_text(self) -> str:
        return f"{format_eur(self.low)} – {format_eur(self.high)}"

    def describe(self) -> str:
        """ "€12.60 – €15.40 (±10 % of the previous close €14.00)"."""
        return (
            f"{self.range_text} (±{pct_text(self.pct)} of the {self.anchor_label} "
            f"{format_eur(self.anchor)})"
        )


def price_band(
    *,
    pct: Decimal | None,
    previous_close: Decimal | None,
    reference_price: Decimal,
    tick: Decimal,
) -> PriceBand | None:
    """Today's band (None when the market has none): ±`pct` % of the previous close, else
    of the market's reference price, rounded inward to the tick, at least one tick."""
    if pct is None:
        return None
    anchor, label = (
        (previous_close, "previous close")
        if previous_close is not None
        else (reference_price, "reference price")
    )
    low = max(round_to_tick(anchor * (HUNDRED - pct) / HUNDRED, tick, up=True), tick)
    high = round_to_tick(anchor * (HUNDRED + pct) / HUNDRED, tick, up=False)
    if low > high:  # a narrow band around an anchor off a coarser tick: the nearest tick
        low = high = max(round_half_down_to_tick(anchor, tick), tick)
    return PriceBand(low=low, high=high, anchor=anchor, anchor_label=label, pct=pct)


def outside_band(band: PriceBand | None, price: Decimal) -> str | None:
    """Why a limit price is refused by the band, or None."""
    if band is None or band.contains(price):
        return None
    return f"The price must lie within today's price band {band.describe()}."


def market_order_bound(
    *, buying: bool, best: Decimal | None, band: PriceBand | None, slippage_pct: Decimal | None
) -> tuple[Decimal | None, str]:
    """The worst price a market order may trade at, and what sets it ("band" or
    "slippage"; "" when nothing bounds it): the band's edge or `slippage_pct` beyond the
    best price on entry (`best`), whichever is nearer."""
    bounds: list[tuple[Decimal, str]] = []
    if band is not None:
        bounds.append((band.high if buying else band.low, "band"))
    if slippage_pct is not None and best is not None:
        factor = (HUNDRED + slippage_pct if buying else HUNDRED - slippage_pct) / HUNDRED
        bounds.append((best * factor, "slippage"))
    if not bounds:
        return None, ""
    return min(bounds) if buying else max(bounds)


def bound_reason(
    *,
    kind: str,
    best: Decimal | None,
    band: PriceBand | None,
    slippage_pct: Decimal | None,
    next_price: Decimal,
) -> str:
    """Why a market order stopped at a resting order priced `next_price`: the sentence
    the trader reads (the status reason of its cancelled remainder)."""
    if kind == "band":
        return f"the next price {format_eur(next_price)} is outside today's band {band.range_text}"
    return (
        f"the next price {format_eur(next_price)} is more than {pct_text(slippage_pct)} "
        f"from the best price {format_eur(best)} on entry"
    )


def order_size_refusal(
    *,
    quantity: int | None,
    value: Decimal | None,
    max_quantity: int | None,
    max_value: Decimal | None,
    code: str,
) -> str | None:
    """Why an order is larger than the market allows, or None. `value` is the order's EUR
    value (price × quantity, the budget, or what a market order would trade)."""
    if max_quantity is not None and quantity is not None and quantity > max_quantity:
        return (
            f"At most {format_quantity(max_quantity)} {code} per order in this market "
            f"(this order is for {format_quantity(quantity)})."
        )
    if max_value is not None and value is not None and value > max_value:
        return (
            f"At most {format_eur(max_value)} per order in this market "
            f"(this order is worth {format_eur(value)})."
        )
    return None


def reference_refusal(
    *, entered: Decimal, book_reference: Decimal, pct: Decimal | None, tick: Decimal
) -> str | None:
    """Why a staff reference price needs an explicit override: it lies more than ±`pct` %
    from the book's own reference. None when it is within (or the market has no band)."""
    if pct is None:
        return None
    allowed = price_band(pct=pct, previous_close=None, reference_price=book_reference, tick=tick)
    if allowed.contains(entered):
        return None
    return (
        f"The reference price {format_eur(entered)} is more than {pct_text(pct)} from the "
        f"book's reference {format_eur(book_reference)}: enter a price within "
        f"{allowed.range_text}, or tick the override to use it anyway."
    )


def quote_moved(
    *,
    market_order: bool,
    reviewed_average: Decimal | None,
    reviewed_quantity: int,
    average: Decimal | None,
    quantity: int,
) -> bool:
    """Whether a re-quoted estimate moved too far from the one the trader reviewed to be
    confirmed without a new review: for a market order, another quantity, or an average
    price more than `REQUOTE_TOLERANCE_PCT` from the reviewed one. A limit order never
    moved: its price bounds what it trades. The slippage limit still bounds what a market
    order trades once placed (`market_order_bound`); this only keeps the confirmation
    honest."""
    if not market_order:
        return False
    if quantity != reviewed_quantity or (average is None) != (reviewed_average is None):
        return True
    if average is None or not reviewed_average:
        return False
    return abs(average - reviewed_average) * HUNDRED > reviewed_average * REQUOTE_TOLERANCE_PCT
