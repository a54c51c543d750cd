"""Reads of a market's trades for its price chart: candle buckets aggregated in SQL.

A bucket is the trades of one chart slot, grouped by `epoch seconds // interval seconds`,
an integer division both SQLite and PostgreSQL compute the same way (`EpochSeconds`). The
aggregate reads the window's trades through the index `trade_market_time_idx` (market,
created_at) and returns at most one row per slot, so what leaves the database is bounded
by the number of slots, not by the number of trades.
"""

from datetime import datetime
from decimal import Decimal

from django.db.models import (
    BigIntegerField,
    Count,
    ExpressionWrapper,
    Func,
    Max,
    Min,
    OuterRef,
    Subquery,
    Sum,
    Value,
)

from market.core.candles import Bucket
from market.models import Market, Trade

CENT = Decimal("0.01")


class EpochSeconds(Func):
    """Whole seconds since 1970-01-01 UTC of a datetime column (rounded down)."""

    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores UTC datetimes as text, which strftime reads. The % of '%s' is
        # escaped twice: once for this template, once for the query's own parameters.
        template = "CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        template = "CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s)) AS BIGINT)"
        return self.as_sql(compiler, connection, template=template, **extra)


def _price(value) -> Decimal:
    # SQLite hands aggregates of NUMERIC columns back as floating point: back to cents.
    return Decimal(str(value)).quantize(CENT)


def candle_buckets(
    *, market_id: int, seconds: int, start: datetime, end: datetime
) -> list[Bucket]:
    """The buckets of the market's trades in [start, end), by slot. Two queries: the
    aggregate per slot (first and last trade id, high, low, volume, count), then the
    prices of those first and last trades (at most two per slot)."""
    slot = ExpressionWrapper(
        EpochSeconds("created_at") / Value(seconds), output_field=BigIntegerField()
    )
    rows = list(
        Trade.objects.filter(market_id=market_id, created_at__gte=start, created_at__lt=end)
        .annotate(slot=slot)
        .values("slot")
        .annotate(
            first_id=Min("id"),
            last_id=Max("id"),
            high=Max("price"),
            low=Min("price"),
            volume=Sum("quantity"),
            trades=Count("id"),
        )
        .order_by("slot")
        .values_list("slot", "first_id", "last_id", "high", "low", "volume", "trades")
    )
    if not rows:
        return []
    ids = {row[1] for row in rows} | {row[2] for row in rows}
    prices = dict(Trade.objects.filter(id__in=ids).values_list("id", "price"))
    return [
        Bucket(
            index=int(index),
            open=_price(prices[first_id]),
            high=_price(high),
            low=_price(low),
            close=_price(prices[last_id]),
            volume=int(volume),
            trade_count=int(count),
        )
        for index, first_id, last_id, high, low, volume, count in rows
    ]


def last_trade_and_close_before(*, market_id: int, before: datetime) -> tuple[int, Decimal | None]:
    """(the id of the market's newest trade, 0 if none; the price of its last trade before
    `before`, None if none). One query: both are subqueries of the market row."""
    trades = Trade.objects.filter(market=OuterRef("pk"))
    last_id, previous_close = (
        Market.objects.filter(pk=market_id)
        .annotate(
            last_trade=Subquery(trades.order_by("-id").values("id")[:1]),
            # Newest first by time (the index), ids break ties within one timestamp.
            close_before=Subquery(
                trades.filter(created_at__lt=before)
                .order_by("-created_at", "-id")
                .values("price")[:1]
            ),
        )
        .values_list("last_trade", "close_before")
        .get()
    )
    return int(last_id or 0), None if previous_close is None else _price(previous_close)


def last_trade_id(*, market_code: str) -> int | None:
    """The id of the market's newest trade (0 if it has none), None for an unknown market.
    One query."""
    row = (
        Market.objects.filter(code=market_code)
        .annotate(
            last_trade=Subquery(
                Trade.objects.filter(market=OuterRef("pk")).order_by("-id").values("id")[:1]
            )
        )
        .values_list("last_trade", flat=True)
    )
    found = list(row[:1])
    if not found:
        return None
    return int(found[0] or 0)
