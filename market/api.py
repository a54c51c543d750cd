"""JSON API for market data: for staff and traders alike (`config.api_auth`)."""

from datetime import timedelta
from typing import Annotated, Literal

from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from config.api_auth import MARKET_DATA_AUTH
from config.api_schemas import COMMON, HOSTILE_INPUT, NotFoundOut, Out
from market.core.candles import DEFAULT_INTERVAL, INTERVALS, slot_index, slot_start
from market.models import Market
from market.selectors import (
    MAX_CANDLE_SLOTS,
    cached_order_book,
    candles,
    market_stats,
    recent_trades,
)

router = Router(tags=["Market"])


class BookQuery(Schema):
    depth: int = Field(50, ge=1, le=500)


class LevelOut(Out):
    price: str
    quantity: int
    order_count: int
    cumulative_quantity: int
    cumulative_value: str
    depth_pct: int


class TradeOut(Out):
    price: str
    quantity: int
    aggressor_side: Literal["BUY", "SELL"]
    time: str


class BookOut(Out):
    """Decimal strings for prices and EUR; null where the book or the 24 h window has
    nothing (no bid, no trade…)."""

    market: str
    version: int
    best_bid: str | None
    best_ask: str | None
    spread: str | None
    spread_pct: str | None
    mid: str | None
    max_cumulative: int
    bids: list[LevelOut]
    asks: list[LevelOut]
    last_price: str | None
    change_24h: str | None
    high_24h: str | None
    low_24h: str | None
    volume_24h: int
    recent_trades: list[TradeOut]


class CandlesQuery(Schema):
    timeframe: Literal[*INTERVALS] = Field(DEFAULT_INTERVAL, description="The candle's length")
    since: int | None = Field(
        None,
        ge=0,
        le=253_402_300_799_999,
        description="The first candle's open time at or after this (ms since the epoch); "
        "without it, the candles up to now",
    )
    limit: int = Field(100, ge=1, le=MAX_CANDLE_SLOTS)


# CCXT's OHLCV: [open time (ms since the epoch), open, high, low, close, volume]. (Not a
# tuple schema: its OpenAPI 3.1 `prefixItems` is not read by every client, schemathesis
# among them.)
Candle = Annotated[list[int | str], Field(min_length=6, max_length=6)]


MarketCode = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{1,11}$", examples=["CEA"])]


@router.get(
    "/{market_code}/book",
    response={200: BookOut, 404: NotFoundOut, **HOSTILE_INPUT, **COMMON},
    auth=MARKET_DATA_AUTH,
)
def book(request, market_code: MarketCode, query: Query[BookQuery]):
    """The order book by price level, the 24 h statistics and the latest trades. Staff
    and traders alike: a staff token, a trader token or a signed-in session."""
    market = Market.objects.filter(code=market_code.upper()).first()
    if market is None:
        return Status(404, {"error": "not_found", "message": f"No market {market_code}."})
    order_book = cached_order_book(market_code=market.code, depth=query.depth)
    stats = market_stats(market=market)
    return {
        **order_book.as_dict(),
        "last_price": str(stats.last_price) if stats.last_price is not None else None,
        "change_24h": str(stats.change_24h) if stats.change_24h is not None else None,
        "high_24h": str(stats.high_24h) if stats.high_24h is not None else None,
        "low_24h": str(stats.low_24h) if stats.low_24h is not None else None,
        "volume_24h": stats.volume_24h,
        "recent_trades": [
            {
                "price": str(trade.price),
                "quantity": trade.quantity,
                "aggressor_side": trade.aggressor_side,
                "time": trade.created_at.isoformat(),
            }
            for trade in recent_trades(market=market, limit=20)
        ],
    }


@router.get(
    "/{market_code}/candles",
    response={200: list[Candle], 404: NotFoundOut, **HOSTILE_INPUT, **COMMON},
    auth=MARKET_DATA_AUTH,
)
def market_candles(request, market_code: MarketCode, query: Query[CandlesQuery]):
    """Price candles of the market's trades, oldest first, as CCXT's OHLCV arrays:
    `[open time in ms, open, high, low, close, volume]`, prices in EUR and the volume in
    certificates as decimal strings. Intervals without a trade carry the previous close
    with volume "0"; intervals before the market's first trade are left out. At most
    `limit` candles: from `since` on, else the latest ones up to now."""
    market = Market.objects.filter(code=market_code.upper()).first()
    if market is None:
        return Status(404, {"error": "not_found", "message": f"No market {market_code}."})
    seconds = INTERVALS[query.timeframe]
    now = timezone.now()
    slots, end = query.limit, now
    if query.since is not None:
        first = query.since // (seconds * 1000)
        first += 1 if query.since % (seconds * 1000) else 0
        last_slot = slot_index(now, seconds)
        if first > last_slot:
            return []
        slots = min(query.limit, last_slot - first + 1)
        end = slot_start(first + slots - 1, seconds)
    series = candles(market=market, interval=query.timeframe, slots=slots, now=end)
    epoch = slot_start(0, seconds)
    return [
        [
            (candle.open_time - epoch) // timedelta(milliseconds=1),
            str(candle.open),
            str(candle.high),
            str(candle.low),
            str(candle.close),
            str(candle.volume),
        ]
        for candle in series.candles
    ]
