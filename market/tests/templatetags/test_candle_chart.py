"""The price chart's geometry (market.templatetags.candle_chart): what the SVG draws."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from market.core.candles import TradePoint, aggregate_candles
from market.templatetags.candle_chart import PRICE_BOTTOM, PRICE_TOP, candle_chart_geometry

D = Decimal
NOW = datetime(2025, 3, 4, 12, 7, 30, tzinfo=UTC)


def series(*trades, interval="1m", slots=10):
    points = [
        TradePoint(NOW - timedelta(minutes=age), D(price), qty) for age, price, qty in trades
    ]
    return aggregate_candles(points, interval=interval, now=NOW, slots=slots)


def test_candles_bodies_wicks_and_volumes_fit_their_areas():
    chart = candle_chart_geometry(
        series(
            (5, "14.00", 10), (5, "14.30", 2), (4, "14.10", 1), (4, "13.80", 6), (1, "14.05", 3)
        )
    )
    assert not chart.empty and chart.width == 100
    assert [mark.direction for mark in chart.marks] == [
        "up",
        "down",
        "empty",
        "empty",
        "flat",
        "empty",
    ]
    for mark in chart.marks:
        assert PRICE_TOP <= D(mark.high) <= D(mark.low) <= PRICE_BOTTOM
        assert D(mark.body_top) < D(mark.body_bottom)
        if mark.direction in ("up", "down"):  # wicks reach out of the body
            assert D(mark.high) <= D(mark.body_top) and D(mark.body_bottom) <= D(mark.low)
        assert D(mark.body_height) >= D("0.5")  # a doji stays visible
        assert 0 <= D(mark.x) < D(mark.right) <= chart.width
    tallest = max(chart.marks, key=lambda mark: D(mark.volume_height))
    assert tallest.candle.volume == 12 and tallest.volume_top == "82.00"
    assert chart.last_label == "€14.05" and chart.last_direction == "flat"
    labels = [label for _, _, label in chart.price_ticks]
    assert labels and all(label.startswith("€") for label in labels)
    assert all(0 <= D(pct) <= 100 for _, pct, _ in chart.price_ticks)
    assert "3 of 6 intervals traded" in chart.summary and "volume 22" in chart.summary
    assert "O €14.00 H €14.30 L €14.00 C €14.30" in chart.marks[0].label


def test_time_labels_sit_on_round_times_away_from_the_edges():
    chart = candle_chart_geometry(series((30, "14", 1), interval="1m", slots=60))
    assert [label for _, _, label in chart.time_ticks] == [
        "11:20",
        "11:30",
        "11:40",
        "11:50",
        "12:00",
    ]
    assert all(6 <= D(pct) <= 94 for _, pct, _ in chart.time_ticks)


def test_no_trades_no_chart():
    assert candle_chart_geometry(series()).empty
