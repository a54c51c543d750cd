"""Price candles (open, high, low, close, volume) of a market's trades. Pure: no ORM, no floats.

A candle summarizes the trades of one **interval** (`INTERVALS`: 1 minute, 5 minutes, 1 hour,
1 day). Intervals are aligned to the Unix epoch in UTC: slot `n` of an interval of `s`
seconds covers [n·s, (n+1)·s) seconds after 1970-01-01 00:00 UTC, so a day is a UTC day and
an hour starts on the hour. A chart shows a **window** of `slots` consecutive slots, the last
of which contains `now`.

Definitions and invariants (checked by `market/tests/core/test_candles.py`):

- **Trades** are `(time, price, quantity)` in the order they were written (by id, which
  within a market follows time). A candle's open is the price of its first trade, its close
  the price of its last, its high / low the extreme prices, its volume the certificates
  traded and `trade_count` the number of trades. So low ≤ min(open, close) ≤ max(open,
  close) ≤ high, and the volumes of the window add up to the quantity traded in it.
- **Empty intervals** (no trade in the slot) carry the previous close with zero volume:
  open = high = low = close = the last price before the slot, `trade_count` 0. The chart
  stays continuous in time (every slot has its place) and a quiet market reads as a flat
  line rather than as gaps. Slots before the market's first trade ever have no price:
  they are left out, so the first candle is the first slot with a price.
- **Previous close** is the last price before the window; with it, the window's first
  candles are flat at that price until the first trade in the window.
- Every candle's `open_time` lies in the window, strictly increasing by one slot.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

# Interval name → seconds. The names are what the page and the API accept.
INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
DEFAULT_INTERVAL = "5m"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TradePoint(NamedTuple):
    """One trade as a candle sees it."""

    time: datetime
    price: Decimal
    quantity: int


@dataclass(frozen=True)
class Bucket:
    """The trades of one slot, summarized (what the selector aggregates in SQL)."""

    index: int  # slot number: epoch seconds // interval seconds
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    trade_count: int


@dataclass(frozen=True)
class Candle:
    open_time: datetime  # UTC, the start of the slot
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int  # certificates traded in the slot
    trade_count: int  # 0 for an empty interval (carried close)

    @property
    def direction(self) -> str:
        """ "up" (close above open), "down" or "flat"."""
        if self.close > self.open:
            return "up"
        return "down" if self.close < self.open else "flat"

    @property
    def is_empty(self) -> bool:
        return self.trade_count == 0


@dataclass(frozen=True)
class CandleSeries:
    """The candles of one market over a window of `slots` intervals, oldest first.

    `start` is the open time of the window's first slot and `end` the close time of its
    last (exclusive); `candles` cover the slots from the first one with a price to the
    last. `last_trade_id` is the newest trade the series knows of (None before any)."""

    market_code: str
    interval: str
    interval_seconds: int
    start: datetime
    end: datetime
    slots: int
    candles: tuple[Candle, ...]
    last_trade_id: int | None = None

    @property
    def is_empty(self) -> bool:
        return not self.candles

    @property
    def traded(self) -> tuple[Candle, ...]:
        """The candles with at least one trade."""
        return tuple(candle for candle in self.candles if not candle.is_empty)

    @property
    def high(self) -> Decimal | None:
        return max((candle.high for candle in self.candles), default=None)

    @property
    def low(self) -> Decimal | None:
        return min((candle.low for candle in self.candles), default=None)

    @property
    def volume(self) -> int:
        return sum(candle.volume for candle in self.candles)

    @property
    def max_volume(self) -> int:
        return max((candle.volume for candle in self.candles), default=0)

    @property
    def last(self) -> Candle | None:
        return self.candles[-1] if self.candles else None

    def slot_of(self, candle: Candle) -> int:
        """The candle's position in the window: 0 for the first slot."""
        return int((candle.open_time - self.start) // timedelta(seconds=self.interval_seconds))


def interval_seconds(interval: str) -> int:
    """The length of a named interval; ValueError for a name not in `INTERVALS`."""
    try:
        return INTERVALS[interval]
    except KeyError:
        choices = ", ".join(INTERVALS)
        raise ValueError(f"Unknown interval {interval!r}: use one of {choices}.") from None


def slot_index(moment: datetime, seconds: int) -> int:
    """The number of the `seconds`-long slot containing `moment` (timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError("Times must be timezone-aware.")
    return (moment - EPOCH) // timedelta(seconds=seconds)


def slot_start(index: int, seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=index * seconds)


def window_slots(now: datetime, seconds: int, slots: int) -> tuple[int, int]:
    """(first, last) slot numbers of a window of `slots` slots ending with `now`'s."""
    if slots < 1:
        raise ValueError("A window has at least one slot.")
    last = slot_index(now, seconds)
    return last - slots + 1, last


def summarize(trades: Iterable[TradePoint], seconds: int) -> list[Bucket]:
    """The trades' buckets by slot, in slot order. Trades come in the order they were
    written: the first of a slot opens its bucket, the last closes it."""
    buckets: dict[int, list] = {}
    for trade in trades:
        time, price, quantity = trade
        if isinstance(price, float):
            raise TypeError("Prices must be Decimal, not float.")
        index = slot_index(time, seconds)
        bucket = buckets.get(index)
        if bucket is None:
            buckets[index] = [price, price, price, price, int(quantity), 1]
        else:
            bucket[1] = max(bucket[1], price)
            bucket[2] = min(bucket[2], price)
            bucket[3] = price
            bucket[4] += int(quantity)
            bucket[5] += 1
    return [Bucket(index, *values) for index, values in sorted(buckets.items())]


def build_candles(
    buckets: Iterable[Bucket],
    *,
    seconds: int,
    first_slot: int,
    last_slot: int,
    previous_close: Decimal | None = None,
) -> tuple[Candle, ...]:
    """One candle per slot of [first_slot, last_slot] from the first with a price: a
    bucket's own figures, or the carried close with zero volume (module docstring).
    Buckets outside the window are ignored."""
    by_slot = {
        bucket.index: bucket for bucket in buckets if first_slot <= bucket.index <= last_slot
    }
    candles = []
    close = previous_close
    for index in range(first_slot, last_slot + 1):
        bucket = by_slot.get(index)
        if bucket is not None:
            candles.append(
                Candle(
                    open_time=slot_start(index, seconds),
                    open=bucket.open,
                    high=bucket.high,
                    low=bucket.low,
                    close=bucket.close,
                    volume=bucket.volume,
                    trade_count=bucket.trade_count,
                )
            )
            close = bucket.close
        elif close is not None:
            candles.append(Candle(slot_start(index, seconds), close, close, close, close, 0, 0))
    return tuple(candles)


def aggregate_candles(
    trades: Iterable[TradePoint],
    *,
    interval: str,
    now: datetime,
    slots: int,
    market_code: str = "",
    last_trade_id: int | None = None,
) -> CandleSeries:
    """The `CandleSeries` of raw trades (in written order) over the window of `slots`
    intervals ending with `now`'s. Trades before the window give the previous close;
    trades after `now`'s slot are ignored."""
    seconds = interval_seconds(interval)
    first, last = window_slots(now, seconds, slots)
    previous_close = None
    inside = []
    for trade in trades:
        index = slot_index(trade[0], seconds)
        if index < first:
            previous_close = trade[1]
        elif index <= last:
            inside.append(trade)
    return CandleSeries(
        market_code=market_code,
        interval=interval,
        interval_seconds=seconds,
        start=slot_start(first, seconds),
        end=slot_start(last + 1, seconds),
        slots=slots,
        candles=build_candles(
            summarize(inside, seconds),
            seconds=seconds,
            first_slot=first,
            last_slot=last,
            previous_close=previous_close,
        ),
        last_trade_id=last_trade_id,
    )
