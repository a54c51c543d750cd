"""Statements of the order book: the market row and its lock, the resting book in priority
order, best prices, the book version, and the writes of the placement core's rows.

The hot path reads with hand-written SQL: the ORM compiles a query each time, and a
placement reads the market and the book inside its market lock. Side and statuses are
literals in these statements: the partial index `order_book_idx` must still match a
prepared statement's generic plan.
"""

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from market.core.limits import previous_close_on
from market.core.matching import BUY, SELL, BookOrder
from market.core.placement import (
    RESTING,
    AmendingOrder,
    CancellingOrder,
    MarketRules,
    OrderRow,
    OrderUpdate,
    QuantityUpdate,
    TradeRow,
    reserve_asset_of,
)
from market.db import pipeline
from market.db.bulk import insert_rows, update_rows
from market.models import Market, Order, Trade

_MARKET_COLUMNS = (
    "id",
    "code",
    "tick_size",
    "buy_fee_rate",
    "sell_fee_rate",
    "trading_enabled",
    "default_reference_price",
    "price_band_pct",
    "slippage_pct",
    "max_order_quantity",
    "max_order_value",
    "last_price",
    "last_trade_date",
    "previous_close",
)
_RESTING_SQL = ", ".join(f"'{status}'" for status in RESTING)
BOOK_FIRST_BATCH = 8  # most orders reach a few resting orders
BOOK_BATCH_GROWTH = 8  # each further batch is this many times the one before


def first_batch(quantity: int | None, *, cap: int) -> int:
    """How many resting orders to read first for an order of `quantity` certificates:
    each resting order the walk reads either fills at least one certificate or stops the
    walk, so quantity + 1 rows always suffice (up to `cap`); an order sized by an EUR
    budget starts at `BOOK_FIRST_BATCH`."""
    if quantity is None:
        return BOOK_FIRST_BATCH
    return max(1, min(quantity + 1, cap))


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


class MarketRead:
    """A market row, read (and, with `lock`, locked) by a statement sent at once; `rules()`
    waits for it. None for an unknown market."""

    def __init__(self, *, market_id: int | None = None, code: str | None = None, lock=False):
        column, value = ("id", market_id) if market_id is not None else ("code", code)
        self._statement = pipeline.send(
            f"SELECT {', '.join(_MARKET_COLUMNS)} FROM {_table(Market)} "
            f"WHERE {column} = %s{pipeline.for_update() if lock else ''}",
            [value],
            model=Market,
            columns=_MARKET_COLUMNS,
        )

    _NOT_READ = object()
    _row = _NOT_READ

    def wait(self) -> None:
        """Wait for the row (and, with `lock`, for the lock)."""
        if self._row is self._NOT_READ:
            self._row = self._statement.one()

    def rules(self, *, today: date | None = None) -> MarketRules | None:
        """The market's rules, its previous close as of `today` (UTC, by default now's):
        a writer that keeps the previous close passes the day it writes with."""
        self.wait()
        row = self._row
        if row is None:
            return None
        *settings, last_price, last_trade_date, previous_close = row
        return MarketRules(
            *settings,
            previous_close_on(
                today or timezone.now().date(),
                last_price=last_price,
                last_trade_date=last_trade_date,
                previous_close=previous_close,
            ),
        )


_BOOK_COLUMNS = (
    "id",
    "owner_id",
    "price",
    "quantity",
    "filled_quantity",
    "filled_value",
    "fee_rate",
    "fee_paid",
    "reserved",
)


class RestingBook:
    """One side of a market's book in priority order (best price first, oldest first within
    a price), as `BookOrder`s, read in growing batches as a walk consumes it. The first
    batch (`first`, see `first_batch`) is sent at once: in a pipelined placement it
    travels with the market lock."""

    def __init__(
        self,
        *,
        market_id: int,
        side: str,
        limit_price: Decimal | None = None,
        first: int = BOOK_FIRST_BATCH,
    ):
        if side not in (BUY, SELL):  # a literal in the statement, for the partial index
            raise ValueError(f"Unknown side {side!r}")
        params: list = [market_id]
        where = f"market_id = %s AND side = '{side}' AND status IN ({_RESTING_SQL})"
        if limit_price is not None:
            where += " AND price <= %s" if side == SELL else " AND price >= %s"
            params.append(limit_price)
        order = "price, id" if side == SELL else "price DESC, id"
        self._params = params
        self._sql = (
            f"SELECT {', '.join(_BOOK_COLUMNS)} FROM {_table(Order)} "
            f"WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s"
        )
        self._first_size = first
        self._first = self._send(first, 0)

    def _send(self, limit: int, offset: int) -> pipeline.Statement:
        return pipeline.send(
            self._sql, [*self._params, limit, offset], model=Order, columns=_BOOK_COLUMNS
        )

    def __iter__(self) -> Iterator[BookOrder]:
        batch, limit, offset = self._first.rows(), self._first_size, 0
        while True:
            for row in batch:
                yield BookOrder(*row)
            if len(batch) < limit:
                return
            offset += limit
            limit *= BOOK_BATCH_GROWTH
            batch = self._send(limit, offset).rows()


def best_prices(
    market_id: int, *, excluding_ticket_id: int | None = None
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(best bid, best ask, last trade price) of a market: one statement of three top-1
    index lookups. `excluding_ticket_id` leaves out the orders that ticket placed (a
    liquidity program's own ladder is no yardstick for where it should stand)."""
    return best_prices_send(market_id, excluding_ticket_id=excluding_ticket_id).one()


def best_prices_send(
    market_id: int, *, excluding_ticket_id: int | None = None
) -> pipeline.Statement:
    """`best_prices`' statement, sent at once (in a pipelined transaction, with the
    statements around it); its `.one()` is the three prices."""
    orders, trades = _table(Order), _table(Trade)
    resting = f"market_id = %s AND status IN ({_RESTING_SQL})"
    params = [market_id]
    if excluding_ticket_id is not None:
        resting += " AND (ticket_id IS NULL OR ticket_id <> %s)"
        params.append(excluding_ticket_id)
    return pipeline.send(
        f"SELECT (SELECT max(price) FROM {orders} WHERE {resting} AND side = '{BUY}'), "
        f"(SELECT min(price) FROM {orders} WHERE {resting} AND side = '{SELL}'), "
        f"(SELECT price FROM {trades} WHERE market_id = %s ORDER BY id DESC LIMIT 1)",
        [*params, *params, market_id],
        # Typed as order prices (trade prices are the same column type): SQLite gives
        # its aggregates back as floats.
        model=Order,
        columns=("price", "price", "price"),
    )


def lock_markets(market_ids: Iterable[int]) -> dict[int, str]:
    """Lock market rows in primary-key order (the first lock of any writer of books);
    returns their codes by id."""
    ids = sorted(set(market_ids))
    if not ids:
        return {}
    among, params = pipeline.any_of("id", ids, db_type="bigint")
    rows = pipeline.send(
        f"SELECT id, code FROM {_table(Market)} WHERE {among} ORDER BY id{pipeline.for_update()}",
        params,
    ).rows()
    return dict(rows)


def bump_book_version(*market_ids: int) -> None:
    """Every change to a market's resting book bumps its version (the poll's ETag), in
    the same transaction, under the market's lock."""
    among, params = pipeline.any_of("id", market_ids, db_type="bigint")
    pipeline.write(
        f"UPDATE {_table(Market)} SET book_version = book_version + 1 WHERE {among}", params
    )


def record_trading(market: MarketRules, *, last_price: Decimal, today: date) -> None:
    """A placement that traded: bump the book version and keep the last trade's price and
    day, and the previous close as of `today` (`market.previous_close`, read under the
    same lock), in one statement."""
    pipeline.write(
        f"UPDATE {_table(Market)} SET book_version = book_version + 1, last_price = %s, "
        "last_trade_date = %s, previous_close = %s WHERE id = %s",
        [last_price, today, market.previous_close, market.market_id],
    )


_ORDER_COLUMNS = OrderRow._fields


def insert_orders(rows: Sequence[OrderRow], *, now: datetime) -> None:
    """Insert orders, each with the id allocated for it ahead, in one statement."""
    if any(row.id is None for row in rows):
        raise ValueError("insert_orders needs every order's id allocated ahead")
    insert_rows(Order, _ORDER_COLUMNS, rows, constants={"created_at": now, "updated_at": now})


_UPDATE_COLUMNS = OrderUpdate._fields[1:]


def update_orders(updates: Sequence[OrderUpdate], *, now: datetime) -> None:
    """Write resting orders' new state (fills, reservation, status) in one statement."""
    update_rows(Order, _UPDATE_COLUMNS, updates, constants={"updated_at": now})


_TRADE_COLUMNS = TradeRow._fields


def insert_trades(rows: Sequence[TradeRow], *, ticket_ids: Sequence[int], now: datetime):
    """Insert trades (with their allocated ids) and the ids of their audit tickets."""
    insert_rows(
        Trade,
        (*_TRADE_COLUMNS, "ticket_id"),
        [(*row, ticket) for row, ticket in zip(rows, ticket_ids, strict=True)],
        constants={"created_at": now},
    )


_CANCEL_COLUMNS = (
    "id",
    "owner_id",
    "market_id",
    "side",
    "reserved",
    "filled_quantity",
    "filled_value",
    "fee_paid",
)


def lock_resting_orders(
    order_ids: Iterable[int], *, market_codes: dict[int, str]
) -> list[CancellingOrder]:
    """The listed orders that still rest, locked in primary-key order, as the cancel rule
    needs them. Their markets must be locked first (`lock_markets`, which gives
    `market_codes`)."""
    ids = sorted(set(order_ids))
    if not ids:
        return []
    among, params = pipeline.any_of("id", ids, db_type="bigint")
    rows = pipeline.send(
        f"SELECT {', '.join(_CANCEL_COLUMNS)} FROM {_table(Order)} "
        f"WHERE {among} AND status IN ({_RESTING_SQL}) "
        f"ORDER BY id{pipeline.for_update()}",
        params,
        model=Order,
        columns=_CANCEL_COLUMNS,
    ).rows()
    return [
        CancellingOrder(order_id, owner_id, reserve_asset_of(side, market_codes[market_id]), *rest)
        for order_id, owner_id, market_id, side, *rest in rows
    ]


def market_ids_of(order_ids: Iterable[int]) -> list[int]:
    ids = sorted(set(order_ids))
    if not ids:
        return []
    among, params = pipeline.any_of("id", ids, db_type="bigint")
    rows = pipeline.send(
        f"SELECT DISTINCT market_id FROM {_table(Order)} WHERE {among}", params
    ).rows()
    return sorted(market_id for (market_id,) in rows)


_AMEND_COLUMNS = (
    "id",
    "owner_id",
    "side",
    "price",
    "quantity",
    "filled_quantity",
    "filled_value",
    "fee_rate",
    "fee_paid",
    "reserved",
    "post_only",
)


def lock_amending_order(order_id: int, *, market_id: int) -> AmendingOrder | None:
    """The resting limit order `order_id` of market `market_id`, locked, as the amend rule
    needs it; None if it no longer rests. Its market must be locked first."""
    row = pipeline.send(
        f"SELECT {', '.join(_AMEND_COLUMNS)} FROM {_table(Order)} "
        f"WHERE id = %s AND market_id = %s AND order_type = 'LIMIT' "
        f"AND status IN ({_RESTING_SQL}){pipeline.for_update()}",
        [order_id, market_id],
        model=Order,
        columns=_AMEND_COLUMNS,
    ).one()
    return None if row is None else AmendingOrder(*row)


def shrink_order(update: QuantityUpdate, *, now: datetime) -> None:
    """A resting order's smaller quantity and reservation, in place (its id, and so its
    place in the queue, stay)."""
    pipeline.write(
        f"UPDATE {_table(Order)} SET quantity = %s, reserved = %s, updated_at = %s WHERE id = %s",
        [update.quantity, update.reserved, now, update.id],
    )


def resting_order_ids(*, owner_id: int, market_id: int) -> list[int]:
    """The ids of one owner's resting orders in one market."""
    rows = pipeline.send(
        f"SELECT id FROM {_table(Order)} WHERE owner_id = %s AND market_id = %s "
        f"AND status IN ({_RESTING_SQL}) ORDER BY id",
        [owner_id, market_id],
    ).rows()
    return [order_id for (order_id,) in rows]
