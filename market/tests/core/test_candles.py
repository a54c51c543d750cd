"""Price candles (market.core.candles): a worked example and the invariants of any trades."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.core.candles import (
    INTERVALS,
    Bucket,
    TradePoint,
    aggregate_candles,
    build_candles,
    slot_index,
    summarize,
    window_slots,
)

D = Decimal
NOW = datetime(2025, 3, 4, 12, 7, 30, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """`minutes` after 12:00 on the day of NOW."""
    return datetime(2025, 3, 4, 12, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def test_worked_example_of_one_minute_candles():
    trades = [
        TradePoint(at(-30), D("13.00"), 5),  # before the window: the previous close
        TradePoint(at(3.1), D("14.00"), 10),
        TradePoint(at(3.5), D("14.20"), 1),
        TradePoint(at(3.9), D("13.90"), 4),
        TradePoint(at(3.95), D("14.10"), 2),
        TradePoint(at(6.0), D("14.30"), 7),
        TradePoint(at(9.0), D("99.00"), 1),  # after now's slot: ignored
    ]
    series = aggregate_candles(trades, interval="1m", now=NOW, slots=6, market_code="CEA")
    # Window: the 6 minutes 12:02 … 12:07 (now is 12:07:30).
    assert series.start == at(2) and series.end == at(8)
    assert [c.open_time for c in series.candles] == [at(m) for m in range(2, 8)]
    summary = [(c.open, c.high, c.low, c.close, c.volume, c.trade_count) for c in series.candles]
    assert summary == [
        (D("13.00"), D("13.00"), D("13.00"), D("13.00"), 0, 0),  # carried previous close
        (D("14.00"), D("14.20"), D("13.90"), D("14.10"), 17, 4),
        (D("14.10"), D("14.10"), D("14.10"), D("14.10"), 0, 0),
        (D("14.10"), D("14.10"), D("14.10"), D("14.10"), 0, 0),
        (D("14.30"), D("14.30"), D("14.30"), D("14.30"), 7, 1),
        (D("14.30"), D("14.30"), D("14.30"), D("14.30"), 0, 0),
    ]
    assert [c.direction for c in series.candles[:2]] == ["flat", "up"]
    assert series.high == D("14.30") and series.low == D("13.00") and series.volume == 24
    assert series.max_volume == 17 and series.last.close == D("14.30")
    assert [series.slot_of(c) for c in series.candles] == list(range(6))


def test_slots_before_the_first_trade_ever_are_left_out():
    series = aggregate_candles(
        [TradePoint(at(5.5), D("14.00"), 3)], interval="1m", now=NOW, slots=6
    )
    assert [c.open_time for c in series.candles] == [at(5), at(6), at(7)]
    assert series.slot_of(series.candles[0]) == 3
    assert aggregate_candles([], interval="1h", now=NOW, slots=60).is_empty


def test_days_and_hours_are_utc_aligned():
    first, last = window_slots(NOW, INTERVALS["1d"], 3)
    series = aggregate_candles([TradePoint(NOW, D("14"), 1)], interval="1d", now=NOW, slots=3)
    assert series.start == datetime(2025, 3, 2, tzinfo=UTC)
    assert series.candles[-1].open_time == datetime(2025, 3, 4, tzinfo=UTC)
    assert last - first == 2
    assert (
        slot_index(datetime(2025, 3, 4, 13, 0, tzinfo=UTC), 3600)
        - slot_index(datetime(2025, 3, 4, 12, 59, 59, tzinfo=UTC), 3600)
        == 1
    )


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Unknown interval"):
        aggregate_candles([], interval="2m", now=NOW, slots=5)
    with pytest.raises(ValueError):
        aggregate_candles([], interval="1m", now=NOW, slots=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        slot_index(datetime(2025, 1, 1), 60)
    with pytest.raises(TypeError):
        summarize([TradePoint(NOW, 14.0, 1)], 60)


def test_buckets_outside_the_window_are_ignored():
    first, last = window_slots(NOW, 60, 2)
    outside = Bucket(last + 1, D("1"), D("1"), D("1"), D("1"), 1, 1)
    inside = Bucket(last, D("2"), D("3"), D("1"), D("2"), 5, 2)
    candles = build_candles([outside, inside], seconds=60, first_slot=first, last_slot=last)
    assert [(c.volume, c.close) for c in candles] == [(5, D("2"))]


# --- Properties -------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=10_000_000).map(lambda cents: D(cents) / 100)
offsets = st.integers(min_value=-3 * 86400, max_value=3600)  # seconds from NOW
trade_lists = st.lists(
    st.tuples(offsets, prices, st.integers(min_value=1, max_value=10**6)), max_size=60
)


def as_trades(raw) -> list[TradePoint]:
    """Trades in written order: sorted by time, as ids follow time within a market."""
    return [
        TradePoint(NOW + timedelta(seconds=offset), price, quantity)
        for offset, price, quantity in sorted(raw, key=lambda row: row[0])
    ]


@given(raw=trade_lists, interval=st.sampled_from(list(INTERVALS)), slots=st.integers(1, 120))
def test_candles_describe_exactly_the_trades_of_their_window(raw, interval, slots):
    trades = as_trades(raw)
    series = aggregate_candles(trades, interval=interval, now=NOW, slots=slots)
    seconds = INTERVALS[interval]
    window = [t for t in trades if series.start <= t.time < series.end]

    assert len(series.candles) <= slots
    assert all(series.start <= c.open_time < series.end for c in series.candles)
    times = [c.open_time for c in series.candles]
    assert all(b - a == timedelta(seconds=seconds) for a, b in pairwise(times))
    if series.candles:
        assert times[-1] == series.end - timedelta(seconds=seconds)  # runs up to now
    for candle in series.candles:
        assert candle.low <= min(candle.open, candle.close)
        assert max(candle.open, candle.close) <= candle.high
        assert all(isinstance(v, Decimal) for v in (candle.open, candle.high, candle.low))
        span = timedelta(seconds=seconds)
        mine = [t for t in window if candle.open_time <= t.time < candle.open_time + span]
        assert candle.trade_count == len(mine)
        assert candle.volume == sum(t.quantity for t in mine)
        if mine:
            assert candle.open == mine[0].price and candle.close == mine[-1].price
            assert candle.high == max(t.price for t in mine)
            assert candle.low == min(t.price for t in mine)
    assert series.volume == sum(t.quantity for t in window)
    assert sum(c.trade_count for c in series.candles) == len(window)
    if window or any(t.time < series.start for t in trades):
        assert series.candles  # a price is known: the window is drawn up to now


@given(raw=trade_lists, interval=st.sampled_from(list(INTERVALS)), slots=st.integers(1, 120))
def test_each_candle_opens_at_the_previous_close_when_nothing_traded(raw, interval, slots):
    series = aggregate_candles(as_trades(raw), interval=interval, now=NOW, slots=slots)
    for before, candle in pairwise(series.candles):
        if candle.is_empty:
            assert candle.volume == 0
            assert candle.open == candle.high == candle.low == candle.close == before.close


@given(raw=trade_lists, interval=st.sampled_from(list(INTERVALS)))
def test_sql_style_buckets_build_the_same_candles(raw, interval):
    """The selector aggregates buckets in SQL and builds candles from them; from the same
    trades that is what aggregating the raw trades gives."""
    trades = as_trades(raw)
    seconds = INTERVALS[interval]
    first, last = window_slots(NOW, seconds, 30)
    before = [t for t in trades if slot_index(t.time, seconds) < first]
    candles = build_candles(
        summarize(trades, seconds),
        seconds=seconds,
        first_slot=first,
        last_slot=last,
        previous_close=before[-1].price if before else None,
    )
    assert candles == aggregate_candles(trades, interval=interval, now=NOW, slots=30).candles
