"""Reads for the trader API (`market.api_trader`): one trader's orders and fills.

Each function reads only `holder`'s rows and runs a fixed number of queries, whatever the
number of orders or trades (pinned by `market/tests/test_selectors_trader.py`):
`trader_orders`, `trader_order`, `trader_orders_by_id`, `trader_fills`, `order_fills`: 1
(none for no ids); `last_fill_times`: 2.
Lists are at most `MAX_LIMIT` long, oldest first (as CCXT returns them): from `since` on
when given, else the latest `limit`.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Max, Q

from market.models import Holder, Order, Trade

DEFAULT_LIMIT = 100
MAX_LIMIT = 500

Side = Order.Side


@dataclass(frozen=True)
class Fill:
    """One trade as one of its two sides saw it: the side's order, direction and fee, and
    whether that order took (the aggressor) or made (it rested in the book)."""

    id: int
    order_id: int
    market_code: str
    side: str  # BUY or SELL
    taker: bool
    price: Decimal
    quantity: int
    value: Decimal  # EUR, before fees
    fee: Decimal  # EUR, what this side paid
    created_at: datetime


def _window(queryset, *, since: datetime | None, limit: int, time_field: str) -> list:
    """At most `limit` rows, oldest first: the first ones at or after `since`, else the
    latest ones. Ids follow times (rows are written in order), so id orders the list."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    if since is not None:
        return list(queryset.filter(**{f"{time_field}__gte": since}).order_by("id")[:limit])
    return list(reversed(queryset.order_by("-id")[:limit]))


def trader_orders(
    *,
    holder: Holder,
    market_id: int | None = None,
    statuses: Collection[str] | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Order]:
    """`holder`'s orders (of one market, in some statuses, placed at or after `since`),
    oldest first, with their market loaded. One query (`order_owner_idx`)."""
    queryset = Order.objects.filter(owner=holder).select_related("market")
    if market_id is not None:
        queryset = queryset.filter(market_id=market_id)
    if statuses is not None:
        queryset = queryset.filter(status__in=list(statuses))
    return _window(queryset, since=since, limit=limit, time_field="created_at")


def trader_order(*, holder: Holder, order_id: int) -> Order | None:
    """One of `holder`'s orders, None for an id that is not theirs (or no order at all:
    the caller cannot tell the two apart). One query."""
    return Order.objects.select_related("market").filter(pk=order_id, owner=holder).first()


def trader_orders_by_id(*, holder: Holder, order_ids: Sequence[int]) -> list[Order]:
    """Those of `order_ids` that are `holder`'s orders, oldest first, with their market
    loaded. One query."""
    ids = list(order_ids)
    if not ids:
        return []
    return list(
        Order.objects.filter(owner=holder, pk__in=ids).select_related("market").order_by("id")
    )


def _fill_rows(queryset, holder_id: int):
    return queryset.values_list(
        "id",
        "market__code",
        "buyer_id",
        "buy_order_id",
        "sell_order_id",
        "aggressor_side",
        "price",
        "quantity",
        "value",
        "buyer_fee",
        "seller_fee",
        "created_at",
    )


def _fill(row, holder_id: int) -> Fill:
    (pk, code, buyer_id, buy_order, sell_order, aggressor, price, quantity, value, *fees) = row
    buyer_fee, seller_fee, created_at = fees
    # No trade has the same holder on both sides (`trade_no_self_trade`).
    side = Side.BUY if buyer_id == holder_id else Side.SELL
    return Fill(
        id=pk,
        order_id=buy_order if side == Side.BUY else sell_order,
        market_code=code,
        side=side,
        taker=aggressor == side,
        price=price,
        quantity=int(quantity),
        value=value,
        fee=buyer_fee if side == Side.BUY else seller_fee,
        created_at=created_at,
    )


def _holder_trades(holder: Holder):
    return Trade.objects.filter(Q(buyer=holder) | Q(seller=holder))


def trader_fills(
    *,
    holder: Holder,
    market_id: int | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Fill]:
    """`holder`'s trades (of one market, at or after `since`), oldest first. One query."""
    queryset = _holder_trades(holder)
    if market_id is not None:
        queryset = queryset.filter(market_id=market_id)
    rows = _window(
        _fill_rows(queryset, holder.pk), since=since, limit=limit, time_field="created_at"
    )
    return [_fill(row, holder.pk) for row in rows]


def order_fills(*, holder: Holder, order_ids: Sequence[int]) -> dict[int, list[Fill]]:
    """The trades of `holder`'s orders `order_ids`, oldest first, by order id (every id
    present). One query."""
    ids = list(order_ids)
    fills: dict[int, list[Fill]] = {pk: [] for pk in ids}
    if not ids:
        return fills
    # The holder's side of each trade is the one that names their order.
    queryset = Trade.objects.filter(
        Q(buyer=holder, buy_order_id__in=ids) | Q(seller=holder, sell_order_id__in=ids)
    )
    for row in _fill_rows(queryset.order_by("id"), holder.pk):
        fill = _fill(row, holder.pk)
        fills[fill.order_id].append(fill)
    return fills


def last_fill_times(*, order_ids: Sequence[int]) -> dict[int, datetime]:
    """When each of these orders last traded (orders that never did are absent). Two
    grouped queries, one per side of the trade, on the trades' order indexes."""
    ids = list(order_ids)
    if not ids:
        return {}
    times: dict[int, datetime] = {}
    for column in ("buy_order_id", "sell_order_id"):
        rows = (
            Trade.objects.filter(**{f"{column}__in": ids})
            .values(column)
            .annotate(last=Max("created_at"))
            .values_list(column, "last")
            .order_by()
        )
        times.update(rows)
    return times
