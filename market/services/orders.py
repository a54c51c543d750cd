"""Placing and cancelling orders: reservation, matching and immediate settlement.

Locking (see `market.services.ledger`): the market row first — which serialises matching
for that market across every process and host — then every balance row the transaction
touches, in primary-key order, in one statement. Nothing in the book changes without the
market lock, so the resting orders read after taking it stay valid until commit.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from market import sql
from market.bulk import insert_objects, insert_rows, update_rows
from market.matching import BookOrder, MatchResult, buy_reservation_needed, match
from market.models import Asset, Holder, Market, MarketCode, Order, TicketLog, Trade
from market.money import fee_on, format_eur, parse_amount, parse_price, parse_quantity
from market.services.audit import ticket_record, tickets_record
from market.services.ledger import BalanceLock, BalanceSheet, InsufficientFunds
from market.validation import FieldErrors

Side, Type, Status = Order.Side, Order.Type, Order.Status
BOOK_BATCH = 100
BOOK_FIRST_BATCH = 8
ZERO = Decimal("0")
MAX_CLIENT_ORDER_ID = 64


@dataclass
class OrderRequest:
    """A validated order, before it meets the market."""

    market: Market
    side: str
    order_type: str
    quantity: int | None
    price: Decimal | None
    eur_budget: Decimal | None
    client_order_id: str | None


@dataclass
class Placement:
    order: Order
    trades: list[Trade] = field(default_factory=list)
    created: bool = True

    @property
    def message(self) -> str:
        order = self.order
        if not self.created:
            return f"Order #{order.pk} was already placed with this idempotency key."
        traded = ""
        if order.filled_quantity:
            average = format_eur(order.average_price)
            traded = f"{order.filled_quantity:,} {order.market.code} at avg {average}"
        if order.status == Status.FILLED:
            return f"Order #{order.pk} filled: {traded}."
        if order.status == Status.CANCELLED:
            head = f"Order #{order.pk}: {traded}; " if traded else f"Order #{order.pk}: "
            return head + f"{order.status_reason}."
        if order.filled_quantity:
            return f"Order #{order.pk} partly filled ({traded}); the rest rests in the book."
        return f"Order #{order.pk} rests in the book."


def _choice(value, choices, field_name: str, label: str) -> str:
    text = str(value or "").upper()
    if text not in choices:
        raise ValidationError({field_name: f"Choose a {label}: {', '.join(choices)}."})
    return text


def order_request_parse(
    *,
    market_code: str,
    side: str,
    order_type: str,
    quantity=None,
    price=None,
    eur_budget=None,
    client_order_id: str | None = None,
) -> OrderRequest:
    """Validate raw order input (form, API or code) into an `OrderRequest`.

    Raises ValidationError keyed by field with every problem a user can fix.
    """
    errors = FieldErrors()
    collect = errors.collect
    code = str(market_code or "").upper()
    # Only a known code reaches the database (PostgreSQL refuses a NUL in any text).
    market = _MarketRead("code", code).one() if code in MarketCode.values else None
    if market is None:
        errors.add("market", f"Unknown market {market_code!r}: choose CEA or EUA.")
    side = collect(_choice, side, Side.values, "side", "side")
    order_type = collect(_choice, order_type, Type.values, "order_type", "order type")
    if client_order_id is not None:
        client_order_id = str(client_order_id).strip() or None
        if client_order_id and len(client_order_id) > MAX_CLIENT_ORDER_ID:
            errors.add(
                "client_order_id",
                f"The idempotency key is at most {MAX_CLIENT_ORDER_ID} characters.",
            )
    by_budget = eur_budget not in (None, "")
    if by_budget:
        if order_type != Type.MARKET or side != Side.BUY:
            errors.add(
                "eur_budget", "An EUR amount is only for market buys; give a quantity instead."
            )
        elif quantity not in (None, ""):
            errors.add("quantity", "Give either a quantity or an EUR amount, not both.")
        else:
            eur_budget = collect(parse_amount, eur_budget, field="eur_budget")
        quantity = None
    else:
        eur_budget = None
        quantity = collect(parse_quantity, quantity, field="quantity")
    if order_type == Type.LIMIT:
        if price in (None, ""):
            errors.add("price", "A limit order needs a price.")
        elif market is not None:
            price = collect(parse_price, price, tick=market.tick_size)
    else:
        price = None
    errors.raise_any()
    return OrderRequest(market, side, order_type, quantity, price, eur_budget, client_order_id)


_MARKET_COLUMNS = tuple(field.attname for field in Market._meta.concrete_fields)


class _MarketRead:
    """A market row read (and, with `lock`, locked) by hand-written SQL: the hot path
    reads it twice per order, and the ORM compiles a query each time."""

    def __init__(self, column: str, value, *, lock: bool = False):
        self._statement = sql.send(
            f"SELECT {', '.join(_MARKET_COLUMNS)} FROM {Market._meta.db_table} "
            f"WHERE {column} = %s{sql.for_update() if lock else ''}",
            [value],
            model=Market,
            columns=_MARKET_COLUMNS,
        )

    def one(self) -> Market | None:
        row = self._statement.one()
        return None if row is None else Market.from_db(connection.alias, _MARKET_COLUMNS, row)


_BOOK_COLUMNS = (
    "id",
    "owner_id",
    "market_id",
    "side",
    "order_type",
    "price",
    "quantity",
    "filled_quantity",
    "filled_value",
    "fee_rate",
    "fee_paid",
    "reserved",
    "status",
)


class _RestingBook:
    """The opposite side of the book in priority order (best price first, oldest first
    within a price), read in batches as the walk needs them. The first batch is sent at
    once, in the same round trip as the market lock, and is small: most orders reach a
    few makers. Only the orders the walk reaches become `Order` instances (`maker`)."""

    def __init__(self, market_id: int, taker: OrderRequest):
        opposite = Side.SELL if taker.side == Side.BUY else Side.BUY
        self._params: list = [market_id]
        # Side and statuses are literals: the partial index `order_book_idx` must still
        # match a prepared statement's generic plan.
        resting = ", ".join(f"'{status}'" for status in Order.RESTING)
        where = f"market_id = %s AND side = '{opposite}' AND status IN ({resting})"
        if taker.price is not None:
            where += " AND price <= %s" if opposite == Side.SELL else " AND price >= %s"
            self._params.append(taker.price)
        order = "price, id" if opposite == Side.SELL else "price DESC, id"
        self._sql = (
            f"SELECT {', '.join(_BOOK_COLUMNS)} FROM {Order._meta.db_table} "
            f"WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s"
        )
        self._first = self._send(BOOK_FIRST_BATCH, 0)
        self._rows: dict[int, tuple] = {}

    def _send(self, limit: int, offset: int) -> sql.Statement:
        return sql.send(
            self._sql, [*self._params, limit, offset], model=Order, columns=_BOOK_COLUMNS
        )

    def __iter__(self) -> Iterator[BookOrder]:
        batch, limit, offset = self._first.rows(), BOOK_FIRST_BATCH, 0
        while True:
            for row in batch:
                self._rows[row[0]] = row
                yield BookOrder(
                    order_id=row[0],
                    owner_id=row[1],
                    price=row[5],
                    remaining=row[6] - row[7],
                    fee_rate=row[9],
                    filled_value=row[8],
                    fee_paid=row[10],
                )
            if len(batch) < limit:
                return
            offset += limit
            limit = BOOK_BATCH
            batch = self._send(limit, offset).rows()

    def maker(self, order_id: int) -> Order:
        """The resting order as a saved `Order` with the columns the walk read."""
        return Order.from_db(connection.alias, _BOOK_COLUMNS, self._rows[order_id])


def _reservation_for(request: OrderRequest, result: MatchResult, fee_rate: Decimal) -> Decimal:
    """What the incoming order must lock before it trades."""
    if request.side == Side.SELL:
        return Decimal(request.quantity)
    if request.order_type == Type.LIMIT:
        value = request.price * request.quantity
        return value + fee_on(value, fee_rate)
    if request.eur_budget is not None:
        return request.eur_budget
    # A market buy by quantity: the book is locked, so the walk's cost is exact.
    return result.total_debit


def _refuse_unfilled_market_order(request: OrderRequest, result: MatchResult) -> None:
    if request.order_type != Type.MARKET or result.filled_quantity:
        return
    if result.stopped_by_self_trade:
        message = "The only orders on the other side are your own; nothing was traded."
    elif request.eur_budget is not None:
        message = "This amount does not buy a single certificate at the best offer."
    else:
        other = "sell" if request.side == Side.BUY else "buy"
        message = f"There are no {other} orders to trade with."
    raise ValidationError(
        {"eur_budget" if request.eur_budget is not None else "quantity": message}
    )


def _status_after_fills(order: Order) -> str:
    if order.quantity is not None and order.filled_quantity >= order.quantity:
        return Status.FILLED
    return Status.PARTIALLY_FILLED if order.filled_quantity else Status.OPEN


def _still_needed(order: Order) -> Decimal:
    """What a resting order must keep locked; nothing once it is closed."""
    if order.status not in Order.RESTING:
        return Decimal("0")
    if order.side == Side.SELL:
        return Decimal(order.remaining_quantity)
    return buy_reservation_needed(
        price=order.price,
        remaining=order.remaining_quantity,
        filled_value=order.filled_value,
        fee_paid=order.fee_paid,
        fee_rate=order.fee_rate,
    )


def order_place(
    *, owner: Holder, request: OrderRequest, actor=None, ip: str | None = None
) -> Placement:
    """Place an order: reserve, match price-time, settle every fill at once.

    Invariants on return (or nothing changed, on error): the book is not crossed;
    every open order's `reserved` equals what it may still spend and the owner's locked
    balance includes it; fees went to the house; a market order never rests. An order
    with a `client_order_id` the owner already used returns that order (`created=False`).

    Locks the market row, then every balance row it touches (taker, makers, the house's
    EUR) in primary-key order. On PostgreSQL the transaction is pipelined
    (`market.sql`): three round trips hold the market lock, the last one carrying every
    write and the COMMIT.

    Raises ValidationError (keyed by field) for a closed market, insufficient funds, or a
    market order that cannot trade at all.
    """
    existing = _already_placed(owner, request.client_order_id)
    if existing is not None:
        return existing
    try:
        with sql.pipelined_atomic():
            return _place_locked(owner=owner, request=request, actor=actor, ip=ip)
    except (IntegrityError, ValidationError):
        # A twin request with the same key (on either market) may have committed while
        # this one waited on a lock: it gets that order back, not a unique-key error or a
        # refusal judged on what the twin left behind.
        existing = _already_placed(owner, request.client_order_id)
        if existing is not None:
            return existing
        raise


def _already_placed(owner: Holder, client_order_id: str | None) -> Placement | None:
    if not client_order_id:
        return None
    order = Order.objects.filter(owner=owner, client_order_id=client_order_id).first()
    return Placement(order=order, created=False) if order is not None else None


def _place_locked(*, owner: Holder, request: OrderRequest, actor, ip) -> Placement:
    # Round trip 1: the market lock, and the first batch of the book read right after it.
    locked_market = _MarketRead("id", request.market.pk, lock=True)
    book = _RestingBook(request.market.pk, request)
    market = locked_market.one()
    if not market.trading_enabled:
        raise ValidationError({"market": f"Trading in {market.code} is paused."})
    if owner.kind == Holder.Kind.HOUSE:
        raise ValidationError("The house fee account does not trade.")
    fee_rate = Decimal("0")
    if owner.pays_fees:
        fee_rate = market.buy_fee_rate if request.side == Side.BUY else market.sell_fee_rate

    result = match(
        taker_owner_id=owner.pk,
        side=request.side,
        book=book,
        taker_fee_rate=fee_rate,
        limit_price=request.price,
        quantity=request.quantity,
        eur_budget=request.eur_budget,
    )
    _refuse_unfilled_market_order(request, result)

    # Round trip 2: the balances (the house's EUR row by the same ordered statement) and
    # the ids of the rows this order will write.
    certificate = market.code
    reserve_asset = Asset.EUR if request.side == Side.BUY else certificate
    touched = {(owner.pk, Asset.EUR), (owner.pk, certificate)}
    for fill in result.fills:
        touched |= {(fill.maker.owner_id, Asset.EUR), (fill.maker.owner_id, certificate)}
    balances = BalanceLock(touched, house=True)
    ids = sql.allocate_ids({Order: 1, Trade: len(result.fills), TicketLog: len(result.fills)})
    sheet = balances.sheet()

    reservation = _reservation_for(request, result, fee_rate)
    available = sheet.available(owner.pk, reserve_asset)
    if available < reservation:
        raise InsufficientFunds(
            asset=reserve_asset,
            needed=reservation,
            available=available,
            field="eur_budget" if request.eur_budget is not None else "quantity",
        )

    # Round trip 3: every write, queued, then the COMMIT.
    now = timezone.now()
    order = Order(
        pk=ids.take(Order)[0],
        owner=owner,
        market=market,
        side=request.side,
        order_type=request.order_type,
        price=request.price,
        quantity=request.quantity,
        eur_budget=request.eur_budget,
        fee_rate=fee_rate,
        client_order_id=request.client_order_id,
        filled_quantity=result.filled_quantity,
        filled_value=result.filled_value,
        fee_paid=result.fee_paid,
        created_at=now,
    )
    if request.eur_budget is not None:
        order.quantity = result.filled_quantity
    order.status = _status_after_fills(order)
    if request.order_type == Type.MARKET and order.status != Status.FILLED:
        order.status, order.status_reason = Status.CANCELLED, "unfilled remainder cancelled"
    if result.stopped_by_self_trade and order.status in Order.RESTING:
        order.status = Status.CANCELLED
        order.status_reason = "rest cancelled: it would have traded with your own order"
    # What stays locked behind the order once its fills are paid for.
    spent = result.total_debit if request.side == Side.BUY else Decimal(result.filled_quantity)
    order.reserved = _still_needed(order)
    insert_objects(Order, [order])

    sheet.reserve(owner.pk, reserve_asset, reservation, order=order, field="quantity")
    makers = {fill.maker.order_id: book.maker(fill.maker.order_id) for fill in result.fills}
    trades = _record_trades(
        market,
        order,
        result,
        makers,
        trade_ids=ids.take(Trade),
        ticket_ids=ids.take(TicketLog),
        now=now,
        actor=actor,
        ip=ip,
    )
    for trade in trades:
        sheet.settle_fill(trade=trade, house_id=sheet.house_id)
    sheet.release(owner.pk, reserve_asset, reservation - spent - order.reserved, order=order)

    _apply_fills_to_makers(result, makers, sheet, certificate, now)
    update_rows(
        Order,
        list(makers.values()),
        ["filled_quantity", "filled_value", "fee_paid", "reserved", "status", "updated_at"],
    )
    sheet.flush()
    _bump_book_version(market.pk)
    return Placement(order=order, trades=trades)


def _bump_book_version(*market_ids: int) -> None:
    placeholders = ", ".join(["%s"] * len(market_ids))
    sql.write(
        f"UPDATE {Market._meta.db_table} SET book_version = book_version + 1 "
        f"WHERE id IN ({placeholders})",
        market_ids,
    )


def _record_trades(
    market, order, result, makers, *, trade_ids, ticket_ids, now, actor, ip
) -> list[Trade]:
    if not result.fills:
        return []
    tickets = []
    trades = []
    for fill, trade_id in zip(result.fills, trade_ids, strict=True):
        maker = makers[fill.maker.order_id]
        buy, sell = (order, maker) if order.side == Side.BUY else (maker, order)
        buyer_fee, seller_fee = (
            (fill.taker_fee, fill.maker_fee)
            if order.side == Side.BUY
            else (fill.maker_fee, fill.taker_fee)
        )
        tickets.append(
            TicketLog(
                action_type="TRADE",
                entity_type="Trade",
                entity_id=str(trade_id),
                user=actor,
                request_payload={"taker_order": order.pk, "maker_order": maker.pk},
                after_state={
                    "market": market.code,
                    "price": str(fill.price),
                    "quantity": fill.quantity,
                    "value": str(fill.value),
                    "buyer_fee": str(buyer_fee),
                    "seller_fee": str(seller_fee),
                    "aggressor_side": order.side,
                },
                tags=["trade", market.code],
                ip_address=ip,
                created_at=now,
            )
        )
        trades.append(
            Trade(
                pk=trade_id,
                market=market,
                buy_order=buy,
                sell_order=sell,
                buyer_id=buy.owner_id,
                seller_id=sell.owner_id,
                price=fill.price,
                quantity=fill.quantity,
                value=fill.value,
                buyer_fee=buyer_fee,
                seller_fee=seller_fee,
                aggressor_side=order.side,
                created_at=now,
            )
        )
    for trade, ticket in zip(trades, tickets_record(tickets, ids=ticket_ids), strict=True):
        trade.ticket = ticket
    insert_objects(Trade, trades)
    return trades


def _apply_fills_to_makers(result, makers, sheet: BalanceSheet, certificate, now) -> None:
    for fill in result.fills:
        maker = makers[fill.maker.order_id]
        maker.filled_quantity += fill.quantity
        maker.filled_value += fill.value
        maker.fee_paid += fill.maker_fee
        if maker.side == Side.BUY:
            maker.reserved -= fill.value + fill.maker_fee
        else:
            maker.reserved -= fill.quantity
        maker.status = _status_after_fills(maker)
        keep = _still_needed(maker)
        asset = Asset.EUR if maker.side == Side.BUY else certificate
        sheet.release(maker.owner_id, asset, maker.reserved - keep, order=maker)
        maker.reserved = keep
        # Set explicitly: the book is read without updated_at, and a bulk update writes
        # the value the object holds (auto_now only acts on save()).
        maker.updated_at = now


def _cancel_in_sheet(order: Order, sheet: BalanceSheet, reason: str, now) -> None:
    sheet.release(order.owner_id, order.reserve_asset, order.reserved, order=order)
    order.released = order.reserved
    order.reserved = Decimal("0")
    order.status = Status.CANCELLED
    order.status_reason = reason
    order.updated_at = now  # a bulk update writes what the object holds


def orders_cancel(*, orders: Sequence[Order] | Iterable[int], reason: str) -> list[Order]:
    """Cancel resting orders (any markets, any owners) and release their reservations.

    Locks the markets involved in primary-key order, then the orders, then the balances.
    Orders that are no longer resting by then are skipped. Constant number of queries.
    Callers check permission; `order_cancel` does it for one user's order.
    """
    ids = [order.pk if isinstance(order, Order) else int(order) for order in orders]
    if not ids:
        return []
    with transaction.atomic():
        market_ids = sorted(
            set(Order.objects.filter(pk__in=ids).values_list("market_id", flat=True))
        )
        list(Market.objects.select_for_update().filter(pk__in=market_ids).order_by("pk"))
        locked = list(
            Order.objects.select_for_update()
            .select_related("market")
            .filter(pk__in=ids, status__in=Order.RESTING)
            .order_by("pk")
        )
        if not locked:
            return []
        sheet = BalanceSheet.lock({(order.owner_id, order.reserve_asset) for order in locked})
        now = timezone.now()
        for order in locked:
            _cancel_in_sheet(order, sheet, reason, now)
        update_rows(Order, locked, ["reserved", "status", "status_reason", "updated_at"])
        sheet.flush()
        _bump_book_version(*sorted({order.market_id for order in locked}))
    return locked


def released_by_asset(cancelled: Iterable[Order]) -> dict[str, str]:
    """What `orders_cancel` released, summed per asset, as decimal strings for a ticket."""
    released: dict[str, Decimal] = {}
    for order in cancelled:
        released[order.reserve_asset] = released.get(order.reserve_asset, ZERO) + order.released
    return {asset: str(amount) for asset, amount in released.items()}


def order_cancel(*, order_id: int, user, ip: str | None = None) -> Order:
    """Cancel one resting order on behalf of `user`: its owner, or staff allowed to change
    orders. Anyone else is told the order is not theirs, and nothing changes."""
    order = Order.objects.select_related("owner").filter(pk=order_id).first()
    allowed = order is not None and (
        order.owner.user_id == user.pk or user.has_perm("market.change_order")
    )
    if not allowed:
        raise ValidationError(f"Order #{order_id} is not one of your orders.")
    if not order.is_resting:
        raise ValidationError(f"Order #{order_id} is {order.get_status_display().lower()}.")
    by_owner = order.owner.user_id == user.pk
    with transaction.atomic():
        cancelled = orders_cancel(
            orders=[order.pk], reason="cancelled by owner" if by_owner else "cancelled by staff"
        )
        if not cancelled:
            order.refresh_from_db()
            raise ValidationError(f"Order #{order_id} is {order.get_status_display().lower()}.")
        if not by_owner:
            ticket_record(
                action_type="ORDER_CANCELLED",
                entity_type="Order",
                entity_id=order.pk,
                user=user,
                market_maker=getattr(order.owner, "market_maker", None),
                payload={"order_id": order.pk},
                after={"status": Status.CANCELLED, "released": str(cancelled[0].released)},
                tags=["order", "staff"],
                ip=ip,
            )
    return cancelled[0]


class RestingOrderSpec(NamedTuple):
    """One market-maker limit order to rest in the book. (A named tuple: thousands are
    built per liquidity operation, and a frozen dataclass costs three times as much.)"""

    owner_id: int
    side: str
    price: Decimal
    quantity: int


def best_resting_prices(market: Market) -> tuple[Decimal | None, Decimal | None]:
    """(best bid, best ask) of the resting book; two index-only lookups."""
    resting = Order.objects.filter(market=market, status__in=Order.RESTING)
    best_bid = (
        resting.filter(side=Side.BUY).order_by("-price").values_list("price", flat=True).first()
    )
    best_ask = (
        resting.filter(side=Side.SELL).order_by("price").values_list("price", flat=True).first()
    )
    return best_bid, best_ask


def resting_orders_place(
    *,
    market: Market,
    specs: Sequence[RestingOrderSpec],
    sheet: BalanceSheet,
    liquidity_operation=None,
) -> list[int]:
    """Rest many fee-free limit orders at once, reserving their funds; never trades.

    The caller must hold, in the current transaction, the market's row lock and a
    `BalanceSheet` covering every owner's reserve asset, and must `flush()` the sheet
    afterwards. Refuses (ValidationError) any order that would cross the book, so no
    liquidity order ever trades on placement. One INSERT whatever the number of orders;
    returns the new orders' ids.
    """
    if not specs:
        return []
    best_bid, best_ask = best_resting_prices(market)
    bids = [spec.price for spec in specs if spec.side == Side.BUY]
    asks = [spec.price for spec in specs if spec.side == Side.SELL]
    if bids and asks and max(bids) >= min(asks):
        raise ValidationError("The planned bids and asks would cross each other.")
    if bids and best_ask is not None and max(bids) >= best_ask:
        raise ValidationError(f"A bid at {max(bids)} would cross the best ask {best_ask}.")
    if asks and best_bid is not None and min(asks) <= best_bid:
        raise ValidationError(f"An ask at {min(asks)} would cross the best bid {best_bid}.")

    rows, reservations = [], []
    now = timezone.now()
    operation_id = liquidity_operation.pk if liquidity_operation is not None else None
    tick, certificate = market.tick_size, market.code
    for spec in specs:
        owner_id, side, price, quantity = spec
        if quantity <= 0 or price <= 0 or price % tick:
            raise ValueError(f"Invalid resting order {spec}")
        if side == Side.BUY:
            reserved, asset = price * quantity, Asset.EUR
        else:
            reserved, asset = Decimal(quantity), certificate
        rows.append((owner_id, side, price, quantity, reserved))
        reservations.append((owner_id, asset, reserved))
    ids = insert_rows(
        Order,
        ("owner_id", "side", "price", "quantity", "reserved"),
        rows,
        returning_ids=True,
        constants={
            "market_id": market.pk,
            "order_type": Type.LIMIT,
            "status": Status.OPEN,
            "liquidity_operation_id": operation_id,
            "created_at": now,
            "updated_at": now,
            "filled_quantity": 0,
            "filled_value": ZERO,
            "fee_rate": ZERO,
            "fee_paid": ZERO,
            "status_reason": "",
        },
    )
    sheet.reserve_many(
        (owner_id, asset, reserved, order_id)
        for order_id, (owner_id, asset, reserved) in zip(ids, reservations, strict=True)
    )
    _bump_book_version(market.pk)
    return ids
