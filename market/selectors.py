"""Reads for the cash-market page and the JSON API: book, market data, a trader's orders.

Every function runs a fixed number of queries, whatever the number of resting orders or
trades (pinned by `market/tests/test_selectors.py`):

- `order_book`: 2 (one per side: the best `depth` rows of `BookLevel`, the levels the
  database keeps as the resting orders' sums, by its key; no order is read).
- `cached_order_book`: 1 on a cache hit (the market's `book_version`), 3 on a miss.
- `own_book_levels`: 0 on a cache hit, 3 on a miss (the market, then the trader's own
  resting orders summed by price, one query per side).
- `candles`: 3 (last trade id and previous close; the bucket aggregate; the open and close
  prices). `market_last_trade_id`: 1.
- `market_stats`: 2. `recent_trades`: 1.
  `open_orders_for` / `order_history_for`: 1. `market_codes` / `asset_codes`: 1.

Aggregates are computed in SQL. SQLite adds NUMERIC columns as floating point, so EUR sums
are quantized back to cents and certificate sums converted to int (PostgreSQL returns
SUM(bigint) as numeric).
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.cache import cache, caches
from django.db.models import Count, F, Max, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from market.core import placement as core
from market.core.book import GROUPINGS, OrderBook, build_order_book, group_levels
from market.core.candles import (
    DEFAULT_INTERVAL,
    CandleSeries,
    build_candles,
    interval_seconds,
    slot_start,
    window_slots,
)
from market.core.matching import opposite
from market.core.money import EUR
from market.core.placement import (
    Account,
    AmendingOrder,
    Amendment,
    MarketRules,
    OrderRequest,
    Outcome,
)
from market.db import trades as trade_reads
from market.db.balances import available_of
from market.db.orders import RestingBook, first_batch
from market.models import (
    Balance,
    BookLevel,
    Holder,
    Market,
    MarketMakerClient,
    Order,
    Trade,
    money_field,
)

CENT = Decimal("0.01")
PCT_PLACES = Decimal("0.01")
DEFAULT_DEPTH = 50
MAX_DEPTH = 500
MAX_TRADES = 500
MAX_ORDERS = 500
STATS_WINDOW = timedelta(hours=24)
# The estimate reads the book without a lock: an order of up to this many certificates
# gets every resting order its walk can reach in one read.
ESTIMATE_FIRST_BATCH_CAP = 4096
# Entries are keyed by version, so they never go stale; the timeout only frees memory.
BOOK_CACHE_TIMEOUT = 300
CANDLE_SLOTS = 72  # candles in a chart window (6 h of 5 min, 3 days of 1 h, …)
MAX_CANDLE_SLOTS = 500

Side = Order.Side


def _clamp(value: int, maximum: int, name: str) -> int:
    value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return min(value, maximum)


# --- Markets and assets -------------------------------------------------------------------


def markets_list() -> list[Market]:
    """Every market, by code. One query."""
    return list(Market.objects.order_by("code"))


def market_codes() -> tuple[str, ...]:
    """The code of every market, which is also the code of the certificate it trades."""
    return tuple(Market.objects.order_by("code").values_list("code", flat=True))


def asset_codes() -> tuple[str, ...]:
    """Every asset a balance can hold: EUR, then each market's certificate."""
    return (EUR, *market_codes())


# --- Order book -------------------------------------------------------------------------


def price_levels(*, market: Market, side: str, depth: int):
    """The best `depth` price levels of one side, best first, as a values_list queryset of
    (price, remaining quantity, order count).

    Read from `BookLevel`, the rows the database keeps for every level with an order
    resting at it: `depth` rows by the `book_level_key` index, however many orders rest at
    those levels.
    """
    return (
        BookLevel.objects.filter(market=market, side=side)
        .order_by("-price" if side == Side.BUY else "price")
        .values_list("price", "quantity", "order_count")[:depth]
    )


def own_price_levels(*, market: Market, side: str, owner_user_id: int):
    """Every level of one user's own resting orders on one side of a market, best first,
    as a values_list queryset of (price, remaining quantity, order count).

    GROUP BY price over the user's resting orders, with no LIMIT on purpose: with one,
    PostgreSQL walked the side's whole book in price order, filtering on the owner, until
    it had enough of the user's levels (every resting order of the side for a user who has
    none); without, it reads the user's own orders by `order_owner_idx` and sorts their
    few levels, whatever the size of the book.
    """
    return (
        Order.objects.filter(
            market=market, side=side, status__in=Order.RESTING, owner__user_id=owner_user_id
        )
        .values("price")
        .annotate(
            remaining=Sum(F("quantity") - F("filled_quantity")),
            order_count=Count("id"),
        )
        .order_by("-price" if side == Side.BUY else "price")
        .values_list("price", "remaining", "order_count")
    )


def _level_rows(market: Market, side: str, depth: int) -> list[tuple[Decimal, int, int]]:
    rows = price_levels(market=market, side=side, depth=depth)
    return [(price, int(remaining), int(count)) for price, remaining, count in rows]


def _grouping(grouping: int) -> int:
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}")
    return grouping


def order_book(*, market: Market, depth: int = DEFAULT_DEPTH, grouping: int = 1) -> OrderBook:
    """The book of `market`, at most `depth` (≤ `MAX_DEPTH`) levels per side, in steps of
    `grouping` ticks (one of `GROUPINGS`). Two queries.

    A grouped book reads the best depth × grouping price levels of each side: enough for
    `depth` complete grouped levels (`market.core.book`), at most 500 × 50 rows.

    `version` is `market.book_version` as loaded by the caller: read the market before the
    book (as `cached_order_book` does) so the content is never older than its version.
    """
    depth = _clamp(depth, MAX_DEPTH, "depth")
    grouping = _grouping(grouping)
    return build_order_book(
        market_code=market.code,
        bids=_level_rows(market, Side.BUY, depth * grouping),
        asks=_level_rows(market, Side.SELL, depth * grouping),
        tick=market.tick_size,
        version=market.book_version,
        grouping=grouping,
        depth=depth,
    )


def book_cache_key(*, market_code: str, version: int, depth: int, grouping: int = 1) -> str:
    return f"market:book:{market_code}:{version}:{depth}:{grouping}"


def market_book_version(*, market_code: str) -> int | None:
    """The market's `book_version` (the order book's ETag), None for an unknown code.
    One query."""
    return (
        Market.objects.filter(code=str(market_code).upper())
        .values_list("book_version", flat=True)
        .first()
    )


def cached_order_book(
    *, market_code: str, depth: int = DEFAULT_DEPTH, grouping: int = 1
) -> OrderBook:
    """`order_book` through Django's cache, keyed by (code, book_version, depth, grouping).

    One query (the market row) when the book has not changed since it was last computed;
    three on a miss. Every change to the resting book bumps `book_version` in the same
    transaction, so a cached entry is never served for a newer book. The version is read
    before the levels: under concurrent placement the levels may be newer than the key,
    never older, and the next bump moves the key on.

    Raises `Market.DoesNotExist` for an unknown market code.
    """
    depth = _clamp(depth, MAX_DEPTH, "depth")
    grouping = _grouping(grouping)
    market = Market.objects.only("id", "code", "tick_size", "book_version").get(
        code=str(market_code).upper()
    )
    key = book_cache_key(
        market_code=market.code, version=market.book_version, depth=depth, grouping=grouping
    )
    book = caches["book"].get(key)
    if book is None:
        book = order_book(market=market, depth=depth, grouping=grouping)
        caches["book"].set(key, book, BOOK_CACHE_TIMEOUT)
    return book


@dataclass(frozen=True)
class OwnLevels:
    """Where one trader's own resting orders sit in a (grouped) book: price → the
    certificates of theirs resting at that level, per side. For marking the book."""

    bids: Mapping[Decimal, int]
    asks: Mapping[Decimal, int]

    def __bool__(self) -> bool:
        return bool(self.bids or self.asks)


def own_book_levels(
    *,
    user_id: int,
    market_code: str,
    version: int,
    depth: int = DEFAULT_DEPTH,
    grouping: int = 1,
) -> OwnLevels:
    """The user's own resting orders of a market at the levels a book of `depth` levels in
    steps of `grouping` ticks can show, as of the market's book `version`.

    Through Django's cache per (user, market, version, depth, grouping): every change to a
    resting order bumps the version, so an entry is never served for newer orders. No query
    on a hit; three on a miss (the market row, then one per side, as `own_price_levels`). Read
    after the version: the orders may be newer than the key, never older.

    Every one of the user's levels is read (`own_price_levels`) and the best `depth` grouped
    levels kept: a book of `depth` grouped levels spans at most depth × grouping tick
    prices, and any of the user's prices inside it is better than every one of theirs
    outside."""
    depth = _clamp(depth, MAX_DEPTH, "depth")
    grouping = _grouping(grouping)
    code = str(market_code).upper()
    key = f"market:own-levels:{user_id}:{code}:{version}:{depth}:{grouping}"
    levels = cache.get(key)
    if levels is None:
        market = Market.objects.only("id", "code", "tick_size").get(code=code)
        step = market.tick_size * grouping
        sides = {}
        for side in (Side.BUY, Side.SELL):
            rows = own_price_levels(market=market, side=side, owner_user_id=user_id)
            grouped = group_levels(
                [(price, int(quantity), int(count)) for price, quantity, count in rows],
                step=step,
                bids=side == Side.BUY,
            )
            sides[side] = {price: quantity for price, quantity, _ in grouped[:depth]}
        levels = OwnLevels(bids=sides[Side.BUY], asks=sides[Side.SELL])
        cache.set(key, levels, BOOK_CACHE_TIMEOUT)
    return levels


# --- Price chart -------------------------------------------------------------------------


def market_last_trade_id(*, market_code: str) -> int | None:
    """The id of the market's newest trade (0 before any), None for an unknown market: what
    changes a chart, besides the clock. One query."""
    return trade_reads.last_trade_id(market_code=str(market_code).upper())


def candles(
    *,
    market: Market,
    interval: str = DEFAULT_INTERVAL,
    slots: int = CANDLE_SLOTS,
    now: datetime | None = None,
) -> CandleSeries:
    """The market's candles over the `slots` (≤ `MAX_CANDLE_SLOTS`) intervals up to `now`,
    oldest first (`market.core.candles`: empty intervals carry the previous close with zero
    volume). Three queries whatever the number of trades: the newest trade id with the
    last price before the window, the per-slot aggregate in SQL (one row per slot), and the
    open and close prices of the slots. ValueError for an unknown interval."""
    seconds = interval_seconds(interval)
    slots = _clamp(slots, MAX_CANDLE_SLOTS, "slots")
    first, last = window_slots(now or timezone.now(), seconds, slots)
    start, end = slot_start(first, seconds), slot_start(last + 1, seconds)
    last_id, previous_close = trade_reads.last_trade_and_close_before(
        market_id=market.pk, before=start
    )
    buckets = trade_reads.candle_buckets(
        market_id=market.pk, seconds=seconds, start=start, end=end
    )
    return CandleSeries(
        market_code=market.code,
        interval=interval,
        interval_seconds=seconds,
        start=start,
        end=end,
        slots=slots,
        candles=build_candles(
            buckets,
            seconds=seconds,
            first_slot=first,
            last_slot=last,
            previous_close=previous_close,
        ),
        last_trade_id=last_id or None,
    )


# --- Market data ------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketStats:
    """Last price and the 24 h figures of one market.

    `open_24h` is the price 24 h ago: the last trade before the window, or — for a market
    that started trading within it — the first trade in the window; None without trades.
    `change_24h` = last − open (EUR), `change_24h_pct` = change / open × 100 (2 places, half
    up). High, low and volumes cover trades in the window [now − 24 h, now]; without trades
    in it high and low are None and volumes 0.
    """

    market_code: str
    last_price: Decimal | None
    last_trade_at: datetime | None
    open_24h: Decimal | None
    change_24h: Decimal | None
    change_24h_pct: Decimal | None
    high_24h: Decimal | None
    low_24h: Decimal | None
    volume_24h: int  # certificates
    volume_eur_24h: Decimal  # EUR, 2 places
    trades_24h: int
    window_start: datetime

    @property
    def direction(self) -> str:
        """ "up", "down" or "flat", for colouring the change."""
        if not self.change_24h:
            return "flat"
        return "up" if self.change_24h > 0 else "down"


def _price(value) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(CENT)


def market_stats(*, market: Market, now: datetime | None = None) -> MarketStats:
    """Last price and 24 h change / high / low / volume. Two queries, whatever the number
    of trades or orders: the last trade and the open price as subqueries of the market
    row, and one aggregate over the window.

    Trades of one market are written under its lock, so their ids follow their times: the
    last trade is the highest id, the price 24 h ago the highest id before the window.
    """
    now = now or timezone.now()
    since = now - STATS_WINDOW
    trades = Trade.objects.filter(market=OuterRef("pk"))

    def first_price(queryset, ordering: str, field: str = "price"):
        return Subquery(queryset.order_by(ordering).values(field)[:1])

    # COALESCE evaluates the window's opening trade only when nothing traded before it.
    last_price, last_at, open_price = (
        Market.objects.filter(pk=market.pk)
        .annotate(
            latest_price=first_price(trades, "-id"),
            latest_at=first_price(trades, "-id", "created_at"),
            open_price=Coalesce(
                first_price(trades.filter(created_at__lt=since), "-id"),
                first_price(trades.filter(created_at__gte=since, created_at__lte=now), "id"),
            ),
        )
        .values_list("latest_price", "latest_at", "open_price")
        .get()
    )
    window = Trade.objects.filter(
        market=market, created_at__gte=since, created_at__lte=now
    ).aggregate(
        high=Max("price"),
        low=Min("price"),
        volume=Sum("quantity"),
        value=Sum("value"),
        count=Count("id"),
    )
    last_price, open_24h = _price(last_price), _price(open_price)
    change = change_pct = None
    if last_price is not None and open_24h is not None:
        change = last_price - open_24h
        change_pct = (change / open_24h * 100).quantize(PCT_PLACES, rounding=ROUND_HALF_UP)
    return MarketStats(
        market_code=market.code,
        last_price=last_price,
        last_trade_at=last_at,
        open_24h=open_24h,
        change_24h=change,
        change_24h_pct=change_pct,
        high_24h=_price(window["high"]),
        low_24h=_price(window["low"]),
        volume_24h=int(window["volume"] or 0),
        volume_eur_24h=Decimal(window["value"] or 0).quantize(CENT, rounding=ROUND_HALF_UP),
        trades_24h=int(window["count"] or 0),
        window_start=since,
    )


@dataclass(frozen=True)
class RecentTrade:
    id: int
    price: Decimal
    quantity: int
    value: Decimal
    aggressor_side: str  # "BUY" (a buyer lifted an offer) or "SELL" (a seller hit a bid)
    created_at: datetime


def recent_trades(*, market: Market, limit: int = 30) -> list[RecentTrade]:
    """The latest trades of `market`, newest first (by id). One query."""
    limit = _clamp(limit, MAX_TRADES, "limit")
    rows = (
        Trade.objects.filter(market=market)
        .order_by("-id")
        .values_list("id", "price", "quantity", "value", "aggressor_side", "created_at")[:limit]
    )
    return [
        RecentTrade(
            id=pk,
            price=_price(price),
            quantity=int(quantity),
            value=Decimal(value).quantize(CENT),
            aggressor_side=side,
            created_at=created_at,
        )
        for pk, price, quantity, value, side, created_at in rows
    ]


# --- A trader's own orders --------------------------------------------------------------

CLOSED = (Order.Status.FILLED, Order.Status.CANCELLED)


def _orders_of(holder: Holder, market: Market | None, statuses, limit: int) -> list[Order]:
    queryset = Order.objects.filter(owner=holder, status__in=statuses)
    if market is not None:
        queryset = queryset.filter(market=market)
    limit = _clamp(limit, MAX_ORDERS, "limit")
    return list(queryset.select_related("market", "owner").order_by("-id")[:limit])


def open_orders_for(
    *, holder: Holder, market: Market | None = None, limit: int = 50
) -> list[Order]:
    """`holder`'s resting orders (OPEN, PARTIALLY_FILLED), newest first; with their market
    and owner loaded. One query."""
    return _orders_of(holder, market, Order.RESTING, limit)


def order_history_for(
    *, holder: Holder, market: Market | None = None, limit: int = 50
) -> list[Order]:
    """`holder`'s closed orders (FILLED, CANCELLED), newest placed first; with their market
    and owner loaded. One query."""
    return _orders_of(holder, market, CLOSED, limit)


# --- Order entry: balances and the live estimate (read-only, no locks) -------------------


def holder_balances(*, holder: Holder) -> dict[str, Balance]:
    """`holder`'s balance rows by asset (EUR and every market's certificate). One query."""
    return {row.asset: row for row in Balance.objects.filter(holder=holder)}


def order_estimate(
    *, holder: Holder, request: OrderRequest, available: Mapping[str, Decimal] | None = None
) -> Outcome:
    """What placing `request` would do against the book as it is now: the placement core
    (`market.core.placement.place`) on an unlocked read, so the estimate and the placement
    are one computation; nothing is written, and the book may move before the order
    arrives. `available` is the holder's available balance by asset (read here if not
    given). Queries: the book (in one read for an order of up to
    `ESTIMATE_FIRST_BATCH_CAP` certificates, else in batches growing eightfold as the
    walk reads them), and the balances."""
    book = RestingBook(
        market_id=request.market.market_id,
        side=opposite(request.side),
        limit_price=request.price,
        first=first_batch(request.quantity, cap=ESTIMATE_FIRST_BATCH_CAP),
    )
    if available is None:
        available = available_of(holder.pk)
    return core.place(
        market=request.market,
        account=Account(holder.pk, holder.kind),
        request=request,
        book=book,
        available=lambda keys: available,
    )


def amending_order(order: Order) -> AmendingOrder:
    """A resting limit order as the amend rule reads it."""
    return AmendingOrder(
        order.pk, order.owner_id, order.side, order.price, order.quantity,
        order.filled_quantity, order.filled_value, order.fee_rate, order.fee_paid,
        order.reserved, order.post_only,
    )  # fmt: skip


def amend_estimate(
    *,
    holder: Holder,
    order: Order,
    price: Decimal | None,
    quantity: int | None,
    available: Mapping[str, Decimal] | None = None,
) -> Amendment:
    """What amending `order` (to `price` and open `quantity`, None keeping either) would
    do now: the placement core's `amend` on an unlocked read, as `order_amend` computes
    it under the locks. The book is read only when the order would be replaced."""
    market = order.market.rules
    plan = core.amend_plan(
        market=market, order=amending_order(order), price=price, quantity=quantity
    )
    book = ()
    if plan.request is not None:
        book = RestingBook(
            market_id=market.market_id,
            side=opposite(order.side),
            limit_price=plan.price,
            first=first_batch(plan.open_quantity, cap=ESTIMATE_FIRST_BATCH_CAP),
        )
    if available is None:
        available = available_of(holder.pk)
    return core.amend(
        market=market,
        account=Account(holder.pk, holder.kind),
        order=plan.order,
        price=price,
        quantity=quantity,
        book=book,
        available=available,
    )


def order_max_amount(
    *,
    holder: Holder,
    market: MarketRules,
    side: str,
    order_type: str,
    price: Decimal | None = None,
    by_eur: bool = False,
) -> Decimal | int | None:
    """The most a trader can put into an order (the order form's MAX), by
    `market.core.placement.max_amount`; the book is read only for a market buy by
    quantity. At most two queries for most books."""
    book = ()
    if side == Order.Side.BUY and order_type == Order.Type.MARKET and not by_eur:
        book = RestingBook(market_id=market.market_id, side=Order.Side.SELL)
    return core.max_amount(
        market=market,
        account=Account(holder.pk, holder.kind),
        side=side,
        order_type=order_type,
        price=price,
        by_eur=by_eur,
        available=available_of(holder.pk),
        book=book,
    )


# --- Market makers with their balances -----------------------------------------------------


@dataclass(frozen=True)
class AssetBalance:
    asset: str
    available: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.locked


@dataclass(frozen=True)
class MarketMakerRow:
    """A market maker as the back office lists it: every balance (in `asset_codes`
    order) and how many orders it has resting."""

    maker: MarketMakerClient
    balances: tuple[AssetBalance, ...]
    open_orders: int

    def balance(self, asset: str) -> AssetBalance:
        for balance in self.balances:
            if balance.asset == asset:
                return balance
        return AssetBalance(asset, Decimal(0), Decimal(0))


def market_maker_rows(makers: Iterable[MarketMakerClient]) -> list[MarketMakerRow]:
    """Rows for `makers` (a page of them): three queries whatever their number (assets,
    balances, resting-order counts)."""
    makers = list(makers)
    assets = asset_codes()
    holder_ids = [maker.holder_id for maker in makers]
    balances: dict[int, dict[str, AssetBalance]] = {holder_id: {} for holder_id in holder_ids}
    for holder_id, asset, available, locked in Balance.objects.filter(
        holder_id__in=holder_ids
    ).values_list("holder_id", "asset", "available", "locked"):
        balances[holder_id][asset] = AssetBalance(asset, available, locked)
    counts = dict(
        Order.objects.filter(owner_id__in=holder_ids, status__in=Order.RESTING)
        .values("owner_id")
        .annotate(count=Count("id"))
        .values_list("owner_id", "count")
    )
    zero = Decimal(0)
    return [
        MarketMakerRow(
            maker,
            tuple(
                balances[maker.holder_id].get(asset) or AssetBalance(asset, zero, zero)
                for asset in assets
            ),
            counts.get(maker.holder_id, 0),
        )
        for maker in makers
    ]


def market_maker_totals(*, active: bool = True) -> list[AssetBalance]:
    """Available and locked per asset summed over (active) market makers. Two queries."""
    rows = Balance.objects.filter(holder__kind=Holder.Kind.MARKET_MAKER)
    if active:
        rows = rows.filter(holder__market_maker__is_active=True)
    totals = {
        asset: (available, locked)
        for asset, available, locked in rows.values("asset")
        .annotate(available=Sum("available"), locked=Sum("locked"))
        .values_list("asset", "available", "locked")
    }
    zero = Decimal(0)
    return [
        AssetBalance(
            asset, *(Decimal(v or 0).quantize(CENT) for v in totals.get(asset, (zero, zero)))
        )
        for asset in asset_codes()
    ]


def market_maker_balance_values(makers, assets: Sequence[str]) -> Iterator[tuple]:
    """`makers` (a queryset) as plain rows: code, name, type (its label), active,
    created at, then available and locked of each of `assets` (0 without a balance row;
    EUR to the cent, certificates as whole numbers). One query, read in chunks, whatever
    their number."""
    labels = dict(MarketMakerClient.Type.choices)
    columns = balance_annotations("holder_id", assets=assets)
    column_assets = [asset for asset in assets for _column in ("available", "locked")]
    values = makers.annotate(**columns).values_list(
        "code", "name", "mm_type", "is_active", "created_at", *columns
    )
    for code, name, mm_type, active, created_at, *amounts in values.iterator(chunk_size=500):
        balances = (
            (amount or Decimal(0)).quantize(CENT) if asset == EUR else int(amount or 0)
            for asset, amount in zip(column_assets, amounts, strict=True)
        )
        yield (code, name, labels.get(mm_type, mm_type), active, created_at, *balances)


def balance_annotations(
    holder_ref: str = "pk", *, assets: Sequence[str] | None = None
) -> dict[str, Subquery]:
    """Sortable annotations of every balance (of `assets`, else of every asset) for a
    queryset whose `holder_ref` is a holder id (`balance_<asset>_available`,
    `balance_<asset>_locked`, asset in lower case, in `assets` order): the admin's
    changelist columns, in the changelist's one query."""
    annotations = {}
    for asset in asset_codes() if assets is None else assets:
        rows = Balance.objects.filter(holder_id=OuterRef(holder_ref), asset=asset)
        for column in ("available", "locked"):
            annotations[balance_annotation(asset, column)] = Subquery(
                rows.values(column)[:1], output_field=money_field()
            )
    return annotations


def balance_annotation(asset: str, column: str) -> str:
    return f"balance_{asset.lower()}_{column}"
