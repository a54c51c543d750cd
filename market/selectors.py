"""Reads for the cash-market page and the JSON API: book, market data, a trader's orders.

Every function runs a fixed number of queries, whatever the number of resting orders or
trades (pinned by `market/tests/test_selectors.py`):

- `order_book`: 2 (one aggregate per side, GROUP BY price ... ORDER BY price LIMIT depth,
  served by the partial index `order_book_idx`, so it reads only the orders at the levels
  it returns).
- `cached_order_book`: 1 on a cache hit (the market's `book_version`), 3 on a miss.
- `market_stats`: 2. `recent_trades`: 1.
  `best_prices`: 1. `open_orders_for` / `order_history_for`: 1.

Aggregates are computed in SQL. SQLite adds NUMERIC columns as floating point, so EUR sums
are quantized back to cents and certificate sums converted to int (PostgreSQL returns
SUM(bigint) as numeric).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from django.core.cache import cache
from django.db.models import Count, F, Max, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from market.book import OrderBook, build_order_book
from market.models import Holder, Market, Order, Trade

CENT = Decimal("0.01")
PCT_PLACES = Decimal("0.01")
DEFAULT_DEPTH = 50
MAX_DEPTH = 500
MAX_TRADES = 500
MAX_ORDERS = 500
STATS_WINDOW = timedelta(hours=24)
# Entries are keyed by version, so they never go stale; the timeout only frees memory.
BOOK_CACHE_TIMEOUT = 300

Side = Order.Side


def _clamp(value: int, maximum: int, name: str) -> int:
    value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return min(value, maximum)


# --- Order book -------------------------------------------------------------------------


def price_levels(*, market: Market, side: str, depth: int):
    """The best `depth` price levels of one side, best first, as a values_list queryset of
    (price, remaining quantity, order count).

    GROUP BY price over resting orders, ORDER BY price, LIMIT depth. The filter matches
    the partial index's condition exactly, so PostgreSQL walks `order_book_idx` in price
    order and stops after `depth` groups: it reads only the orders at the levels returned.
    """
    return (
        Order.objects.filter(market=market, side=side, status__in=Order.RESTING)
        .values("price")
        .annotate(
            remaining=Sum(F("quantity") - F("filled_quantity")),
            order_count=Count("id"),
        )
        .order_by("-price" if side == Side.BUY else "price")
        .values_list("price", "remaining", "order_count")[:depth]
    )


def _level_rows(market: Market, side: str, depth: int) -> list[tuple[Decimal, int, int]]:
    rows = price_levels(market=market, side=side, depth=depth)
    return [(price, int(remaining), int(count)) for price, remaining, count in rows]


def order_book(*, market: Market, depth: int = DEFAULT_DEPTH) -> OrderBook:
    """The book of `market`, at most `depth` (≤ `MAX_DEPTH`) levels per side. Two queries.

    `version` is `market.book_version` as loaded by the caller: read the market before the
    book (as `cached_order_book` does) so the content is never older than its version.
    """
    depth = _clamp(depth, MAX_DEPTH, "depth")
    return build_order_book(
        market_code=market.code,
        bids=_level_rows(market, Side.BUY, depth),
        asks=_level_rows(market, Side.SELL, depth),
        tick=market.tick_size,
        version=market.book_version,
    )


def book_cache_key(*, market_code: str, version: int, depth: int) -> str:
    return f"market:book:{market_code}:{version}:{depth}"


def market_book_version(*, market_code: str) -> int | None:
    """The market's `book_version` (the order book's ETag), None for an unknown code.
    One query."""
    return (
        Market.objects.filter(code=str(market_code).upper())
        .values_list("book_version", flat=True)
        .first()
    )


def cached_order_book(*, market_code: str, depth: int = DEFAULT_DEPTH) -> OrderBook:
    """`order_book` through Django's cache, keyed by (code, book_version, depth).

    One query (the market row) when the book has not changed since it was last computed;
    three on a miss. Every change to the resting book bumps `book_version` in the same
    transaction, so a cached entry is never served for a newer book. The version is read
    before the levels: under concurrent placement the levels may be newer than the key,
    never older, and the next bump moves the key on.

    Raises `Market.DoesNotExist` for an unknown market code.
    """
    depth = _clamp(depth, MAX_DEPTH, "depth")
    market = Market.objects.only("id", "code", "tick_size", "book_version").get(
        code=str(market_code).upper()
    )
    key = book_cache_key(market_code=market.code, version=market.book_version, depth=depth)
    book = cache.get(key)
    if book is None:
        book = order_book(market=market, depth=depth)
        cache.set(key, book, BOOK_CACHE_TIMEOUT)
    return book


class BestPrices(NamedTuple):
    best_bid: Decimal | None
    best_ask: Decimal | None
    last_price: Decimal | None


def best_prices(*, market: Market) -> BestPrices:
    """Best bid, best ask and last trade price in one query (three top-1 index lookups),
    for the liquidity plan's reference price."""

    def best(side: str, ordering: str):
        return Subquery(
            Order.objects.filter(market=OuterRef("pk"), side=side, status__in=Order.RESTING)
            .order_by(ordering)
            .values("price")[:1]
        )

    row = (
        Market.objects.filter(pk=market.pk)
        .annotate(
            best_bid=best(Side.BUY, "-price"),
            best_ask=best(Side.SELL, "price"),
            last_price=Subquery(
                Trade.objects.filter(market=OuterRef("pk")).order_by("-id").values("price")[:1]
            ),
        )
        .values_list("best_bid", "best_ask", "last_price")
        .get()
    )
    return BestPrices(*(None if price is None else Decimal(price).quantize(CENT) for price in row))


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
            last_price=first_price(trades, "-id"),
            last_at=first_price(trades, "-id", "created_at"),
            open_price=Coalesce(
                first_price(trades.filter(created_at__lt=since), "-id"),
                first_price(trades.filter(created_at__gte=since, created_at__lte=now), "id"),
            ),
        )
        .values_list("last_price", "last_at", "open_price")
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


def holder_balances(*, holder: Holder) -> dict:
    """`holder`'s balance rows (`Balance`) by asset (EUR, CEA, EUA). One query."""
    from market.models import Balance

    return {row.asset: row for row in Balance.objects.filter(holder=holder)}


@dataclass(frozen=True)
class OrderEstimate:
    """What an order would do against the book as it is now: the order-entry preview.

    Computed like `order_place` walks the book (price-time, fees on cumulative value, the
    resting order's price), over price levels rather than single orders, without locks:
    the book may move before the order arrives. The trader's own resting orders on the
    other side stop the walk (self-trade prevention), so their level and everything
    behind it is left out.

    `total` is, for a buy, the EUR it costs (immediate fills plus, for a limit order, the
    rest at its limit price, fees included: an upper bound); for a sell, the EUR it brings
    in after fees. `fee` is likewise the fee on everything the order may trade.
    """

    side: str
    order_type: str
    asset: str
    fee_rate: Decimal
    quantity: int  # certificates the order trades or rests: filled + resting
    fill_quantity: int  # certificates that trade at once
    fill_value: Decimal
    rest_quantity: int  # a limit order's remainder that rests in the book
    unfilled_quantity: int  # a market order's remainder that is cancelled
    average_price: Decimal | None  # over fill + rest, 4 places
    fee: Decimal
    total: Decimal
    reservation: Decimal  # what placement checks against the available balance
    reserve_asset: str
    available_eur: Decimal
    available_certificates: Decimal
    eur_after: Decimal  # available EUR once the order is placed (fills settled)
    certificates_after: Decimal
    insufficient: bool
    warnings: tuple[str, ...]

    @property
    def buying(self) -> bool:
        return self.side == Side.BUY


def _estimate_levels(market: Market, holder: Holder, side: str, limit_price, depth: int):
    """Levels of `side` (best first) other traders rest, up to the holder's own best
    order on that side; and that own price (None without one). Two queries."""
    buying_side = side == Side.BUY
    own = (
        Order.objects.filter(owner=holder, market=market, side=side, status__in=Order.RESTING)
        .order_by("-price" if buying_side else "price")
        .values_list("price", flat=True)
        .first()
    )
    queryset = Order.objects.filter(market=market, side=side, status__in=Order.RESTING).exclude(
        owner=holder
    )
    bound = {}
    if limit_price is not None:
        bound["price__gte" if buying_side else "price__lte"] = limit_price
    if own is not None:
        bound["price__gt" if buying_side else "price__lt"] = own
    rows = (
        queryset.filter(**bound)
        .values("price")
        .annotate(remaining=Sum(F("quantity") - F("filled_quantity")))
        .order_by("-price" if buying_side else "price")
        .values_list("price", "remaining")[:depth]
    )
    return [(Decimal(price), int(remaining)) for price, remaining in rows], own


def order_estimate(*, holder: Holder, order, balances: dict | None = None) -> OrderEstimate:
    """Preview a parsed order (`market.services.orders.OrderRequest`) for `holder`.

    Read-only: three queries (balances unless given as `holder_balances` returns them,
    the holder's own best opposite price, the opposite side's levels within the limit
    price), whatever the size of the book.
    """
    from market.matching import BookOrder, buy_reservation_needed, match
    from market.money import fee_on, format_eur

    market = order.market
    buying = order.side == Side.BUY
    fee_rate = Decimal("0")
    if holder.pays_fees:
        fee_rate = market.buy_fee_rate if buying else market.sell_fee_rate
    if balances is None:
        balances = holder_balances(holder=holder)
    available_eur = balances["EUR"].available if "EUR" in balances else Decimal("0")
    available_cert = balances[market.code].available if market.code in balances else Decimal("0")

    opposite = Side.SELL if buying else Side.BUY
    levels, own_price = _estimate_levels(market, holder, opposite, order.price, MAX_DEPTH)
    book = [
        BookOrder(order_id=index, owner_id=0, price=price, remaining=remaining, fee_rate=0)
        for index, (price, remaining) in enumerate(levels)
    ]
    result = match(
        taker_owner_id=holder.pk,
        side=order.side,
        book=book,
        taker_fee_rate=fee_rate,
        limit_price=order.price,
        quantity=order.quantity,
        eur_budget=order.eur_budget,
    )
    filled, value = result.filled_quantity, result.filled_value
    book_quantity = sum(remaining for _, remaining in levels)
    warnings: list[str] = []
    other = "sell" if buying else "buy"
    is_limit = order.order_type == Order.Type.LIMIT

    rest = unfilled = 0
    if is_limit:
        rest = order.quantity - filled
        rest_value = order.price * rest
        fee = fee_on(value + rest_value, fee_rate)
        quantity = order.quantity
        traded_value = value + rest_value
        if buying:
            total = traded_value + fee
            reservation = order.price * order.quantity + fee_on(
                order.price * order.quantity, fee_rate
            )
            # Available falls by the fills' cost and what stays locked for the rest.
            still = buy_reservation_needed(
                price=order.price,
                remaining=rest,
                filled_value=value,
                fee_paid=result.fee_paid,
                fee_rate=fee_rate,
            )
            eur_after = available_eur - (value + result.fee_paid) - still
            cert_after = available_cert + filled
        else:
            total = traded_value - fee
            reservation = Decimal(order.quantity)
            eur_after = available_eur + value - result.fee_paid
            cert_after = available_cert - order.quantity
        if filled:
            warnings.append(
                f"Crosses the spread: {filled:,} trade at once, "
                + (f"{rest:,} rest in the book at your price." if rest else "none rest.")
            )
    else:
        fee = result.fee_paid
        quantity = filled
        traded_value = value
        if order.quantity is not None:
            unfilled = order.quantity - filled
        if buying:
            total = value + fee
            reservation = order.eur_budget if order.eur_budget is not None else total
            eur_after = available_eur - total
            cert_after = available_cert + filled
        else:
            total = value - fee
            reservation = Decimal(order.quantity)
            eur_after = available_eur + total
            cert_after = available_cert - filled
        if not levels:
            warnings.append(f"There are no {other} orders to trade with.")
        elif not filled and order.eur_budget is not None:
            warnings.append("This amount does not buy a single certificate at the best offer.")
        elif unfilled:
            warnings.append(
                f"Partial fill: only {filled:,} {market.code} can trade now; "
                f"the other {unfilled:,} will be cancelled."
            )
        elif order.eur_budget is not None and filled == book_quantity:
            warnings.append(
                f"The book holds only {filled:,} {market.code} on offer; "
                f"{format_eur(order.eur_budget - total)} of your amount stays unspent."
            )
    walked_all = filled == book_quantity
    blocked = rest if is_limit else (unfilled or order.eur_budget is not None)
    if own_price is not None and walked_all and blocked and _crosses(order, own_price):
        warnings.append(
            f"Your own {other} order at {format_eur(own_price)} stops the walk there "
            "(no trading with yourself)."
        )
    reserve_asset = "EUR" if buying else market.code
    available = available_eur if buying else available_cert
    insufficient = reservation > available
    if insufficient:
        needed = format_eur(reservation) if buying else f"{reservation:,.0f} {market.code}"
        have = format_eur(available) if buying else f"{available:,.0f} {market.code}"
        warnings.append(f"Insufficient {reserve_asset}: {needed} needed, {have} available.")
    if not market.trading_enabled:
        warnings.append(f"Trading in {market.code} is paused.")
    average = None
    if quantity:
        average = (traded_value / quantity).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return OrderEstimate(
        side=order.side,
        order_type=order.order_type,
        asset=market.code,
        fee_rate=fee_rate,
        quantity=quantity,
        fill_quantity=filled,
        fill_value=value,
        rest_quantity=rest,
        unfilled_quantity=unfilled,
        average_price=average,
        fee=fee,
        total=total,
        reservation=reservation,
        reserve_asset=reserve_asset,
        available_eur=available_eur,
        available_certificates=available_cert,
        eur_after=eur_after,
        certificates_after=cert_after,
        insufficient=insufficient,
        warnings=tuple(warnings),
    )


def _crosses(order, own_price: Decimal) -> bool:
    """Whether an order's price reaches the holder's own opposite order (a market order
    always does)."""
    if order.price is None:
        return True
    if order.side == Side.BUY:
        return order.price >= own_price
    return order.price <= own_price


def order_max_amount(
    *, holder: Holder, market: Market, side: str, order_type: str, price=None, by_eur=False
):
    """The most a trader can put into an order (the order form's MAX): for a sell, every
    available certificate; for a market buy by EUR amount, the available EUR; for a limit
    buy, the certificates the available EUR reserves at `price` with the fee (None
    without a price); for a market buy by quantity, what the available EUR buys walking
    the book now. At most three queries."""
    from market.matching import BookOrder, affordable_quantity, match
    from market.money import MAX_QUANTITY

    balances = holder_balances(holder=holder)
    if side == Side.SELL:
        row = balances.get(market.code)
        return min(int(row.available) if row else 0, MAX_QUANTITY)
    available = balances["EUR"].available if "EUR" in balances else Decimal("0")
    if order_type == Order.Type.MARKET and by_eur:
        return available
    fee_rate = market.buy_fee_rate if holder.pays_fees else Decimal("0")
    if order_type == Order.Type.LIMIT:
        if price is None:
            return None
        return affordable_quantity(
            price=price,
            budget=available,
            spent_value=Decimal("0"),
            fee_rate=fee_rate,
            limit=MAX_QUANTITY,
        )
    levels, _ = _estimate_levels(market, holder, Side.SELL, None, MAX_DEPTH)
    book = [
        BookOrder(order_id=index, owner_id=0, price=level_price, remaining=remaining, fee_rate=0)
        for index, (level_price, remaining) in enumerate(levels)
    ]
    result = match(
        taker_owner_id=holder.pk,
        side=Side.BUY,
        book=book,
        taker_fee_rate=fee_rate,
        eur_budget=available,
    )
    return result.filled_quantity
