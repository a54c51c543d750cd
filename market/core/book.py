"""The order book as the screens and the API show it. Pure: no ORM, no floats.

`build_order_book` takes price-level rows — `(price, quantity, order_count)` per price, as
the selector aggregates them in SQL from resting orders — and returns a frozen `OrderBook`.

Definitions and invariants (checked by `market/tests/test_book.py`):

- **Levels.** Rows with the same price are merged (quantities and counts added); rows with
  a quantity of zero or less are dropped. Bids are ordered best first (price descending),
  asks best first (price ascending); prices within a side are distinct.
- **Cumulative quantity / value.** Level *i*'s `cumulative_quantity` is the sum of the
  quantities of levels 0..i of its side, and `cumulative_value` the sum of price × quantity
  over the same levels, exactly (no rounding: prices on a 0.01 tick times whole
  certificates are whole cents). Both strictly increase from the best level outward.
- **Depth bars.** `max_cumulative` is the larger of the two sides' total quantities (the
  deepest side, over the levels given). A level's `depth_pct` is its cumulative quantity as
  a whole percent of `max_cumulative`, rounded half up but never below 1 (every level holds
  something): 1 ≤ depth_pct ≤ 100, non-decreasing outward, and the last level of the
  deeper side is exactly 100. With a depth limit these are relative to the levels shown.
- **Best bid / ask** are the first level's price of each side, None for an empty side.
- **Spread** = best ask − best bid (None unless both sides have levels). For an uncrossed
  book it is > 0.
- **Mid** = (best bid + best ask) / 2 rounded to the market's tick: to the nearest tick,
  and an exact half tick *downward* (towards the bid). The liquidity plan's reference
  price is `reference_price`, which uses this mid, so both screens agree. Hence best
  bid ≤ mid ≤ best ask for an uncrossed book (with a one-tick spread the mid is the best
  bid).
- **Spread %** = spread / mid × 100, quantized half up to 2 places (the liquidity plan's
  convention). It is computed from the displayed (tick-rounded) mid, so the numbers on
  screen are consistent with each other.
- **Depth curves** (`OrderBook.depth_curve`) are the cumulative points of each side, for a
  depth chart.
- **Grouping** (`group_levels`, `build_order_book(grouping=g)`) merges levels into steps of
  g ticks (`GROUPINGS`): a bid goes to its price rounded *down* to a multiple of the step,
  an ask *up*, so a grouped level never shows a better price than any order in it and the
  best bid stays below the best ask. Quantities and order counts are added, so a grouped
  side holds exactly what the ungrouped side holds. With a `depth` limit the sides are
  cut to that many grouped levels; fed the best `depth × g` ungrouped levels (what the
  selector reads), those grouped levels are complete: each holds at most g distinct tick
  prices, so any incomplete group lies beyond the first `depth`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from market.core.money import round_half_down_to_tick, round_to_tick

ZERO = Decimal("0")
HUNDRED = Decimal("100")
SPREAD_PCT_PLACES = Decimal("0.01")
# Book grouping: steps of this many ticks. 1 is the ungrouped book.
GROUPINGS = (1, 5, 10, 50)


@dataclass(frozen=True)
class PriceLevel:
    """One price of one side of the book: what rests there and what rests up to it."""

    price: Decimal
    quantity: int  # certificates still resting at this price (remaining, not original)
    order_count: int  # resting orders at this price
    cumulative_quantity: int  # this level and every better one of the same side
    cumulative_value: Decimal  # EUR: Σ price × quantity over the same levels
    depth_pct: int  # 1..100: cumulative_quantity in % of the deepest side

    @property
    def value(self) -> Decimal:
        """EUR resting at this level: price × quantity."""
        return self.price * self.quantity


@dataclass(frozen=True)
class DepthPoint:
    price: Decimal
    cumulative_quantity: int
    cumulative_value: Decimal


@dataclass(frozen=True)
class DepthCurve:
    """Cumulative points of both sides for a depth chart.

    Both tuples are ordered by **ascending price** so a chart can draw left to right:
    bids run from the deepest point down to the best bid (cumulative quantity falling),
    asks from the best ask outward (cumulative quantity rising). `low_price`/`high_price`
    span every point and `max_cumulative` is the chart's height (0 and None when empty).
    """

    bids: tuple[DepthPoint, ...]
    asks: tuple[DepthPoint, ...]
    max_cumulative: int
    low_price: Decimal | None
    high_price: Decimal | None


@dataclass(frozen=True)
class OrderBook:
    """A snapshot of one market's book at `version` (the market's `book_version`).

    `bids` and `asks` are best first; see the module docstring for the invariants.
    """

    market_code: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    best_bid: Decimal | None
    best_ask: Decimal | None
    spread: Decimal | None
    spread_pct: Decimal | None
    mid: Decimal | None
    version: int
    max_cumulative: int = 0
    tick: Decimal = field(default=Decimal("0.01"))
    grouping: int = 1  # levels are steps of `grouping` ticks

    @property
    def step(self) -> Decimal:
        """The price step between levels: the tick times the grouping."""
        return self.tick * self.grouping

    @property
    def is_empty(self) -> bool:
        return not self.bids and not self.asks

    @property
    def bid_quantity(self) -> int:
        """Certificates bid over the levels shown."""
        return self.bids[-1].cumulative_quantity if self.bids else 0

    @property
    def ask_quantity(self) -> int:
        return self.asks[-1].cumulative_quantity if self.asks else 0

    @property
    def bid_value(self) -> Decimal:
        """EUR bid over the levels shown."""
        return self.bids[-1].cumulative_value if self.bids else ZERO

    @property
    def ask_value(self) -> Decimal:
        return self.asks[-1].cumulative_value if self.asks else ZERO

    def depth_curve(self) -> DepthCurve:
        def points(levels: Iterable[PriceLevel]) -> tuple[DepthPoint, ...]:
            return tuple(
                DepthPoint(level.price, level.cumulative_quantity, level.cumulative_value)
                for level in levels
            )

        bids = points(reversed(self.bids))
        asks = points(self.asks)
        prices = [point.price for point in bids + asks]
        return DepthCurve(
            bids=bids,
            asks=asks,
            max_cumulative=self.max_cumulative,
            low_price=min(prices) if prices else None,
            high_price=max(prices) if prices else None,
        )

    def as_dict(self) -> dict:
        """JSON-ready: Decimals as strings, counts as ints; levels best first."""

        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        def level(item: PriceLevel) -> dict:
            return {
                "price": str(item.price),
                "quantity": item.quantity,
                "order_count": item.order_count,
                "cumulative_quantity": item.cumulative_quantity,
                "cumulative_value": str(item.cumulative_value),
                "depth_pct": item.depth_pct,
            }

        return {
            "market": self.market_code,
            "version": self.version,
            "best_bid": text(self.best_bid),
            "best_ask": text(self.best_ask),
            "spread": text(self.spread),
            "spread_pct": text(self.spread_pct),
            "mid": text(self.mid),
            "max_cumulative": self.max_cumulative,
            "bids": [level(item) for item in self.bids],
            "asks": [level(item) for item in self.asks],
        }


# A price-level row: (price, quantity, order_count).
LevelRow = Sequence


def _merged(rows: Iterable[LevelRow], *, descending: bool) -> list[tuple[Decimal, int, int]]:
    by_price: dict[Decimal, list[int]] = {}
    for price, quantity, order_count in rows:
        if isinstance(price, float):
            raise TypeError("Prices must be Decimal, not float.")
        quantity, order_count = int(quantity), int(order_count)
        if quantity <= 0:
            continue
        slot = by_price.setdefault(Decimal(price), [0, 0])
        slot[0] += quantity
        slot[1] += order_count
    return [
        (price, quantity, order_count)
        for price, (quantity, order_count) in sorted(by_price.items(), reverse=descending)
    ]


def group_levels(
    rows: Iterable[LevelRow], *, step: Decimal, bids: bool
) -> list[tuple[Decimal, int, int]]:
    """Level rows merged into steps of `step` EUR, best first: bids rounded down to a
    multiple of the step, asks up (module docstring). Empty levels are dropped."""
    if step <= 0:
        raise ValueError("The step must be positive.")
    merged = _merged(rows, descending=bids)
    return _merged(
        (
            (round_to_tick(price, step, up=not bids), quantity, count)
            for price, quantity, count in merged
        ),
        descending=bids,
    )


def _cumulate(
    rows: list[tuple[Decimal, int, int]],
) -> list[tuple[Decimal, int, int, int, Decimal]]:
    cumulative_quantity, cumulative_value = 0, ZERO
    out = []
    for price, quantity, order_count in rows:
        cumulative_quantity += quantity
        cumulative_value += price * quantity
        out.append((price, quantity, order_count, cumulative_quantity, cumulative_value))
    return out


def depth_pct(cumulative_quantity: int, max_cumulative: int) -> int:
    """`cumulative_quantity` in whole % of `max_cumulative`, half up, within 1..100
    (0 only for an empty level or an empty book)."""
    if cumulative_quantity <= 0 or max_cumulative <= 0:
        return 0
    percent = (Decimal(cumulative_quantity) * HUNDRED / max_cumulative).to_integral_value(
        rounding=ROUND_HALF_UP
    )
    return max(1, min(100, int(percent)))


def mid_price(best_bid: Decimal, best_ask: Decimal, tick: Decimal) -> Decimal:
    """(bid + ask) / 2 to the nearest tick; an exact half tick rounds down (towards the bid)."""
    return round_half_down_to_tick((best_bid + best_ask) / 2, tick)


REFERENCE_SOURCES: dict[str, str] = {
    "mid": "mid of best bid and best ask",
    "best_bid": "best bid",
    "best_ask": "best ask",
    "last_price": "last trade price",
    "default": "market default",
}


def reference_price(
    *,
    best_bid: Decimal | None,
    best_ask: Decimal | None,
    last_price: Decimal | None,
    default: Decimal,
    tick: Decimal,
) -> tuple[Decimal, str]:
    """The book's own reference price and where it comes from (a key of
    `REFERENCE_SOURCES`): the mid if both sides exist, else the best bid, else the best
    ask, else the last trade price, else the market's default; on the tick (nearest, an
    exact half tick downward, as the mid). May be zero for a price below half a tick."""
    if best_bid is not None and best_ask is not None:
        return mid_price(best_bid, best_ask, tick), "mid"
    for price, source in (
        (best_bid, "best_bid"),
        (best_ask, "best_ask"),
        (last_price, "last_price"),
    ):
        if price is not None:
            return round_half_down_to_tick(price, tick), source
    return round_half_down_to_tick(default, tick), "default"


def build_order_book(
    *,
    market_code: str,
    bids: Iterable[LevelRow],
    asks: Iterable[LevelRow],
    tick: Decimal = Decimal("0.01"),
    version: int = 0,
    grouping: int = 1,
    depth: int | None = None,
) -> OrderBook:
    """The `OrderBook` of price-level rows `(price, quantity, order_count)`, in any order,
    grouped into steps of `grouping` ticks and cut to `depth` levels per side if given."""
    if tick <= 0:
        raise ValueError("The tick must be positive.")
    if grouping < 1:
        raise ValueError("The grouping must be at least one tick.")
    if grouping == 1:
        bid_levels, ask_levels = _merged(bids, descending=True), _merged(asks, descending=False)
    else:
        step = tick * grouping
        bid_levels = group_levels(bids, step=step, bids=True)
        ask_levels = group_levels(asks, step=step, bids=False)
    if depth is not None:
        bid_levels, ask_levels = bid_levels[:depth], ask_levels[:depth]
    bid_rows = _cumulate(bid_levels)
    ask_rows = _cumulate(ask_levels)
    max_cumulative = max(
        bid_rows[-1][3] if bid_rows else 0,
        ask_rows[-1][3] if ask_rows else 0,
    )

    def levels(rows) -> tuple[PriceLevel, ...]:
        return tuple(
            PriceLevel(
                price=price,
                quantity=quantity,
                order_count=order_count,
                cumulative_quantity=cumulative_quantity,
                cumulative_value=cumulative_value,
                depth_pct=depth_pct(cumulative_quantity, max_cumulative),
            )
            for price, quantity, order_count, cumulative_quantity, cumulative_value in rows
        )

    best_bid = bid_rows[0][0] if bid_rows else None
    best_ask = ask_rows[0][0] if ask_rows else None
    spread = spread_pct = mid = None
    if best_bid is not None and best_ask is not None:
        spread = best_ask - best_bid
        mid = mid_price(best_bid, best_ask, tick)
        if mid > 0:
            spread_pct = (spread / mid * HUNDRED).quantize(
                SPREAD_PCT_PLACES, rounding=ROUND_HALF_UP
            )
    return OrderBook(
        market_code=market_code,
        bids=levels(bid_rows),
        asks=levels(ask_rows),
        best_bid=best_bid,
        best_ask=best_ask,
        spread=spread,
        spread_pct=spread_pct,
        mid=mid,
        version=version,
        max_cumulative=max_cumulative,
        tick=tick,
        grouping=grouping,
    )
