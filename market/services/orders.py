"""Placing and cancelling orders: the placement core's outcome, written under the locks.

What an order does is decided by `market.core.placement`; this module reads its inputs
under the locks, calls it, and hands its rows to the database layer (`market.db`).

Locking (see `market.services.ledger`): the market row first — which serialises matching
for that market across every process and host — then every balance row the transaction
touches, in primary-key order, in one statement. Nothing in the book changes without the
market lock, so the resting orders read after taking it stay valid until commit.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from market.core import placement as core
from market.core.matching import opposite
from market.core.money import ZERO, parse_amount, parse_price, parse_quantity
from market.core.placement import Account, MarketRules, OrderRequest, Outcome, RestingOrder
from market.db import orders as db
from market.db.balances import BalanceLock
from market.db.pipeline import allocate_ids, one_statement, pipelined_atomic
from market.models import Holder, MarketMakerClient, Order, TicketLog, Trade
from market.permissions import CANCEL_ORDERS
from market.services.audit import ticket_number, ticket_rows_insert, tickets_record
from market.services.holders import trader_holder_for
from market.services.ledger import BalanceSheet
from market.validation import FieldErrors, IdempotencyKeyReused

Side, Type, Status, TimeInForce = Order.Side, Order.Type, Order.Status, Order.TimeInForce
MAX_CLIENT_ORDER_ID = 64
# The first batch of the book travels with the market lock: enough for most walks in that
# one round trip, without reading much more than the walk needs while the lock is held.
PLACEMENT_FIRST_BATCH_CAP = 64


@dataclass
class Placement:
    """What `order_place` did: the order as written, its trades, and what the trader reads.
    `created` is False when the idempotency key named an order placed before."""

    order: Order
    message: str
    trades: list[Trade] = field(default_factory=list)
    created: bool = True


@dataclass(frozen=True)
class Cancelled:
    """An order a cancellation closed, and what it released."""

    id: int
    owner_id: int
    reserve_asset: str
    released: Decimal


def _choice(value, choices, field_name: str, label: str) -> str:
    text = str(value or "").upper()
    if text not in choices:
        raise ValidationError({field_name: f"Choose a {label}: {', '.join(choices)}."})
    return text


def market_rules(code) -> MarketRules | None:
    """The market with this code, unlocked; None for an unknown one (or text no market
    code can be: only a valid code reaches the database)."""
    code = str(code or "").upper()
    if not code.isascii() or not code.isalnum() or len(code) > 12:
        return None
    return db.MarketRead(code=code).rules()


def order_request_parse(
    *,
    market_code: str,
    side: str,
    order_type: str,
    quantity=None,
    price=None,
    eur_budget=None,
    client_order_id: str | None = None,
    time_in_force=None,
    post_only=False,
) -> OrderRequest:
    """Validate raw order input (form, API or code) into an `OrderRequest`.

    `time_in_force` is GTC (the default, also for an empty value), IOC or FOK; a market
    order is IOC by nature (GTC or IOC given, it is stored as IOC; FOK is refused).
    `post_only` (limit GTC only) is a bool or the text a form or API sends ("on",
    "true", "1"; "", "false", "0" for off).

    Raises ValidationError keyed by field with every problem a user can fix.
    """
    errors = FieldErrors()
    collect = errors.collect
    market = market_rules(market_code)
    if market is None:
        errors.add("market", f"Unknown market {market_code!r}.")
    side = collect(_choice, side, Side.values, "side", "side")
    order_type = collect(_choice, order_type, Type.values, "order_type", "order type")
    if client_order_id is not None:
        client_order_id = str(client_order_id).strip() or None
        if client_order_id and len(client_order_id) > MAX_CLIENT_ORDER_ID:
            errors.add(
                "client_order_id",
                f"The idempotency key is at most {MAX_CLIENT_ORDER_ID} characters.",
            )
        elif client_order_id and "\x00" in client_order_id:
            errors.add("client_order_id", "Null characters are not allowed.")
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
            price = collect(parse_price, price, tick=market.tick)
    else:
        price = None
    time_in_force = collect(
        _choice, time_in_force or TimeInForce.GTC, TimeInForce.values, "time_in_force",
        "time in force",
    )  # fmt: skip
    post_only = collect(_flag, post_only, "post_only")
    if time_in_force is not None and post_only is not None and order_type is not None:
        refusal = core.time_in_force_refusal(order_type, time_in_force, post_only)
        if refusal is not None:
            errors.add(refusal.field, refusal.message)
        elif order_type == Type.MARKET:
            time_in_force = TimeInForce.IOC
    errors.raise_any()
    return OrderRequest(
        market, side, order_type, quantity, price, eur_budget, client_order_id,
        time_in_force, post_only,
    )  # fmt: skip


def _flag(value, field_name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "0", "false", "off", "no"):
        return False
    if text in ("1", "true", "on", "yes"):
        return True
    raise ValidationError({field_name: "Give true or false."})


def _refused(refusal: core.Refusal) -> ValidationError:
    key = NON_FIELD_ERRORS if refusal.field == core.NON_FIELD else refusal.field
    return ValidationError({key: refusal.message})


def order_place(
    *, owner: Holder, request: OrderRequest, actor=None, ip: str | None = None
) -> Placement:
    """Place an order: reserve, match price-time, settle every fill at once.

    Invariants on return (or nothing changed, on error): the book is not crossed;
    every open order's `reserved` equals what it may still spend and the owner's locked
    balance includes it; fees went to the house; a market order never rests. An order
    with a `client_order_id` the owner already used returns that order (`created=False`)
    when it is the same order (market, side, type, price, quantity or EUR amount); a
    different order under that key raises `IdempotencyKeyReused` and changes nothing.

    Locks the market row, then every balance row it touches (taker, makers and, when a fee
    is paid, the house's EUR) in primary-key order. On PostgreSQL the transaction is
    pipelined (`market.db.pipeline`): three round trips hold the market lock, the last one
    carrying every write and the COMMIT.

    Raises ValidationError (keyed by field) for a closed market, insufficient funds, or a
    market order that cannot trade at all.
    """
    existing = _already_placed(owner, request)
    if existing is not None:
        return existing
    try:
        with pipelined_atomic():
            placed = _place_locked(owner=owner, request=request, actor=actor, ip=ip)
        if isinstance(placed, core.Refusal):
            raise _refused(placed)
    except (IntegrityError, ValidationError):
        # A twin request with the same key (on either market) may have committed while
        # this one waited on a lock: it gets that order back, not a unique-key error or a
        # refusal judged on what the twin left behind (or, for a different order under
        # the same key, `IdempotencyKeyReused`).
        existing = _already_placed(owner, request)
        if existing is not None:
            return existing
        raise
    outcome, ticket_ids, now = placed
    return _placement(outcome, ticket_ids, now)


def _already_placed(owner: Holder, request: OrderRequest) -> Placement | None:
    """The order `owner` placed before under the request's key, if it is this request;
    `IdempotencyKeyReused` if that key placed a different order."""
    if not request.client_order_id:
        return None
    order = Order.objects.filter(owner=owner, client_order_id=request.client_order_id).first()
    if order is None:
        return None
    if not _same_order(order, request):
        raise IdempotencyKeyReused(
            "client_order_id",
            f"Order #{order.pk} was already placed with this idempotency key, and it is a "
            "different order; nothing was changed.",
        )
    message = f"Order #{order.pk} was already placed with this idempotency key."
    return Placement(order=order, message=message, created=False)


def _same_order(order: Order, request: OrderRequest) -> bool:
    """Whether `order` is what `request` asks for: the same market, side, type, limit
    price, size, time in force and post-only. A market buy by EUR amount is sized by its
    amount (its stored quantity is what it bought)."""
    if request.eur_budget is not None:
        size_matches = order.eur_budget == request.eur_budget
    else:
        size_matches = order.eur_budget is None and order.quantity == request.quantity
    return (
        size_matches
        and order.market_id == request.market.market_id
        and order.side == request.side
        and order.order_type == request.order_type
        and order.price == request.price
        and order.time_in_force == request.time_in_force
        and order.post_only == request.post_only
    )


def _place_locked(*, owner: Holder, request: OrderRequest, actor, ip):
    """The placement under the locks: (outcome, ticket ids, now) with every write
    queued, or the core's refusal, found before anything is written.

    A refusal is returned, not raised, so that its transaction ends with a COMMIT (of
    nothing but the locks, released alike) rather than a ROLLBACK: psycopg forgets every
    statement it prepared on the connection at a ROLLBACK, and a refused order would
    otherwise cost the next placements on it their prepared statements."""
    # Round trip 1: the market lock, and the first batch of the book read right after it.
    market_read = db.MarketRead(market_id=request.market.market_id, lock=True)
    book = db.RestingBook(
        market_id=request.market.market_id,
        side=opposite(request.side),
        limit_price=request.price,
        first=db.first_batch(request.quantity, cap=PLACEMENT_FIRST_BATCH_CAP),
    )
    # One clock for the whole placement, read once the market lock is held (trades' times
    # follow their ids): the day the previous close is read for is the day its trades are
    # written on (`db.record_trading`), even across midnight.
    market_read.wait()
    now = timezone.now()
    market = market_read.rules(today=now.date())
    account = Account(owner.pk, owner.kind)
    walk = core.match_order(market=market, account=account, request=request, book=book)
    if walk.refusal is not None:
        return walk.refusal

    # Round trip 2: the balances (the house's EUR row by the same ordered statement) and
    # the ids of the rows this order will write.
    balances = BalanceLock(walk.balance_keys, house=walk.takes_fees)
    fills = len(walk.result.fills)
    ids = allocate_ids({Order: 1, Trade: fills, TicketLog: fills})
    sheet = BalanceSheet(balances.rows(), house_id=balances.house_id)
    (order_id,) = ids.take(Order)
    outcome = core.settle(
        walk,
        available=sheet.available_of(owner.pk),
        house_id=sheet.house_id,
        order_id=order_id,
        trade_ids=ids.take(Trade),
    )
    if outcome.refusal is not None:
        return outcome.refusal

    # Round trip 3: every write, queued, then the COMMIT.
    sheet.apply(outcome.moves, field=request.amount_field)
    ticket_ids = ids.take(TicketLog)
    _write_placement(outcome, ticket_ids, sheet=sheet, market=market, actor=actor, ip=ip, now=now)
    return outcome, ticket_ids, now


def _write_placement(outcome: Outcome, ticket_ids, *, sheet, market, actor, ip, now) -> None:
    """Queue the rows of a placement whose moves `sheet` holds: the order, its trades with
    their tickets, the resting orders it filled, the balances; then the market's last
    price (it traded) or its book version (it rests)."""
    with one_statement():
        _write_rows(outcome, ticket_ids, sheet=sheet, market=market, actor=actor, ip=ip, now=now)


def _write_rows(outcome: Outcome, ticket_ids, *, sheet, market, actor, ip, now) -> None:
    db.insert_orders([outcome.order], now=now)
    if outcome.trades:
        ticket_rows_insert(_trade_tickets(outcome, ticket_ids, actor=actor, ip=ip, now=now))
        db.insert_trades(outcome.trades, ticket_ids=ticket_ids, now=now)
        db.update_orders(outcome.maker_updates, now=now)
    sheet.flush()
    if outcome.trades:
        db.record_trading(market, last_price=outcome.trades[-1].price, today=now.date())
    else:
        db.bump_book_version(market.market_id)


def _trade_tickets(outcome: Outcome, ticket_ids, *, actor, ip, now) -> list[tuple]:
    """One TRADE ticket per trade, as rows of `audit.COLUMNS`."""
    code, taker = outcome.asset, outcome.order.id
    actor_id = actor.pk if actor is not None else None
    rows = []
    for trade, ticket_id in zip(outcome.trades, ticket_ids, strict=True):
        maker = trade.sell_order_id if trade.buy_order_id == taker else trade.buy_order_id
        after = {
            "market": code,
            "price": str(trade.price),
            "quantity": trade.quantity,
            "value": str(trade.value),
            "buyer_fee": str(trade.buyer_fee),
            "seller_fee": str(trade.seller_fee),
            "aggressor_side": trade.aggressor_side,
        }
        rows.append(
            (
                ticket_id,
                ticket_number(ticket_id, now.year),
                "TRADE",
                "Trade",
                str(trade.id),
                actor_id,
                None,
                TicketLog.Status.SUCCESS,
                {"taker_order": taker, "maker_order": maker},
                {},
                after,
                [],
                ["trade", code],
                ip,
                now,
                None,  # a trade is no staff action: no idempotency key
            )
        )
    return rows


def _saved(model, **values):
    instance = model(**values)
    instance._state.adding, instance._state.db = False, connection.alias
    return instance


def _placement(outcome: Outcome, ticket_ids, now) -> Placement:
    """The result as model instances, built after COMMIT (not under the market lock)."""
    order = _saved(Order, **outcome.order._asdict(), created_at=now, updated_at=now)
    trades = [
        _saved(Trade, **trade._asdict(), ticket_id=ticket_id, created_at=now)
        for trade, ticket_id in zip(outcome.trades, ticket_ids, strict=True)
    ]
    return Placement(order=order, message=outcome.message(order.pk), trades=trades)


# --- Cancelling ----------------------------------------------------------------------------


def orders_cancel(*, orders: Iterable[Order | int], reason: str) -> list[Cancelled]:
    """Cancel resting orders (any markets, any owners) and release their reservations.

    Locks the markets involved in primary-key order, then the orders, then the balances.
    Orders that are no longer resting by then are skipped. Constant number of queries.
    Callers check permission (`order_cancel`, `orders_cancel_by_staff`).
    """
    ids = [order.pk if isinstance(order, Order) else int(order) for order in orders]
    if not ids:
        return []
    with transaction.atomic():
        codes = db.lock_markets(db.market_ids_of(ids))
        locked = db.lock_resting_orders(ids, market_codes=codes)
        if not locked:
            return []
        updates, moves = core.cancel(locked, reason=reason)
        sheet = BalanceSheet.lock({(order.owner_id, order.reserve_asset) for order in locked})
        sheet.apply(moves)
        db.update_orders(updates, now=timezone.now())
        sheet.flush()
        db.bump_book_version(*codes)
    return [Cancelled(o.id, o.owner_id, o.reserve_asset, o.reserved) for o in locked]


def resting_orders_cancel(
    *, market: MarketRules, orders: Iterable[int], sheet: BalanceSheet, reason: str
) -> list[Cancelled] | None:
    """Cancel resting orders of one market into the caller's transaction and sheet: the
    caller holds the market's row lock and `sheet`'s balance locks, and flushes the sheet
    (with whatever else it moves) afterwards. Orders no longer resting are skipped.

    Returns None, having written nothing, when `sheet` lacks the balance row of an
    order's owner: the caller then cancels with `orders_cancel`, which locks them."""
    locked = db.lock_resting_orders(orders, market_codes={market.market_id: market.code})
    if not sheet.covers((order.owner_id, order.reserve_asset) for order in locked):
        return None
    if not locked:
        return []
    updates, moves = core.cancel(locked, reason=reason)
    sheet.apply(moves)
    db.update_orders(updates, now=timezone.now())
    db.bump_book_version(market.market_id)
    return [Cancelled(o.id, o.owner_id, o.reserve_asset, o.reserved) for o in locked]


def released_by_asset(cancelled: Iterable[Cancelled]) -> dict[str, Decimal]:
    """What a cancellation released, summed per asset."""
    released: dict[str, Decimal] = {}
    for order in cancelled:
        released[order.reserve_asset] = released.get(order.reserve_asset, ZERO) + order.released
    return released


def orders_cancel_by_staff(
    *, order_ids: Sequence[int], user, ip: str | None = None, via: str = "back office"
) -> tuple[list[Cancelled], list[TicketLog]]:
    """Cancel any resting orders on behalf of staff allowed to cancel orders: one
    `ORDER_CANCELLED` ticket per order cancelled. Orders no longer resting are skipped.
    Raises ValidationError for a user without the permission, changing nothing."""
    if not user.has_perm(CANCEL_ORDERS):
        raise ValidationError("You may not cancel other holders' orders.")
    with transaction.atomic():
        cancelled = orders_cancel(orders=order_ids, reason="cancelled by staff")
        makers = dict(
            MarketMakerClient.objects.filter(
                holder_id__in={order.owner_id for order in cancelled}
            ).values_list("holder_id", "pk")
        )
        tickets = tickets_record(
            [
                TicketLog(
                    action_type="ORDER_CANCELLED",
                    entity_type="Order",
                    entity_id=str(order.id),
                    user=user,
                    market_maker_id=makers.get(order.owner_id),
                    request_payload={"order_id": order.id, "via": via},
                    after_state={"status": Status.CANCELLED, "released": str(order.released)},
                    tags=["order", "staff"],
                    ip_address=ip,
                )
                for order in cancelled
            ]
        )
    return cancelled, tickets


def order_cancel(*, order_id: int, user, ip: str | None = None) -> Cancelled:
    """Cancel one resting order on behalf of `user`: its owner, or staff allowed to cancel
    orders (audited). Anyone else is told the order is not theirs, and nothing changes."""
    order = Order.objects.select_related("owner").filter(pk=order_id).first()
    by_owner = order is not None and order.owner.user_id == user.pk
    if order is None or not (by_owner or user.has_perm(CANCEL_ORDERS)):
        raise ValidationError(f"Order #{order_id} is not one of your orders.")
    if not order.is_resting:
        raise ValidationError(f"Order #{order_id} is {order.get_status_display().lower()}.")
    if by_owner:
        cancelled = orders_cancel(orders=[order.pk], reason="cancelled by owner")
    else:
        cancelled, _ = orders_cancel_by_staff(order_ids=[order.pk], user=user, ip=ip)
    if not cancelled:
        order.refresh_from_db()
        raise ValidationError(f"Order #{order_id} is {order.get_status_display().lower()}.")
    return cancelled[0]


# --- Cancelling all, amending -----------------------------------------------------------


def orders_cancel_all(*, user, market_code: str, ip: str | None = None) -> list[Cancelled]:
    """Cancel every resting order of `user`'s trader holder in one market, in one
    transaction, releasing their reservations; returns what was cancelled (empty when
    nothing rested). The orders are picked under the market's lock, so none placed
    before the cancellation is missed. Raises ValidationError for an unknown market."""
    rules = market_rules(market_code)
    if rules is None:
        raise ValidationError({"market": f"Unknown market {market_code!r}."})
    holder = trader_holder_for(user)
    with transaction.atomic():
        db.lock_markets([rules.market_id])
        ids = db.resting_order_ids(owner_id=holder.pk, market_id=rules.market_id)
        return orders_cancel(orders=ids, reason="cancelled by owner (cancel all)")


@dataclass
class Amended:
    """What `order_amend` did. `order` is the order as it now stands: the same order,
    smaller (`keeps_priority`), or the new order that replaced it (`replaced_id` names the
    old one, now cancelled "replaced by #N"); `trades` are the new order's, if it crossed."""

    order: Order
    message: str
    keeps_priority: bool
    replaced_id: int | None = None
    trades: list[Trade] = field(default_factory=list)


def order_for_amend(*, order_id: int, user) -> Order:
    """`user`'s own resting limit order `order_id` (market loaded), or ValidationError."""
    order = Order.objects.select_related("owner", "market").filter(pk=order_id).first()
    if order is None or order.owner.user_id != user.pk:
        raise ValidationError(f"Order #{order_id} is not one of your orders.")
    if order.order_type != Type.LIMIT or not order.is_resting:
        state = order.get_status_display().lower()
        raise ValidationError(f"Order #{order_id} is {state}; only a resting order is amended.")
    return order


def amend_inputs_parse(*, order: Order, price=None, quantity=None):
    """(new price or None, new open quantity or None) from raw input; empty keeps it.
    Raises ValidationError keyed by field."""
    errors = FieldErrors()
    if price not in (None, ""):
        price = errors.collect(parse_price, price, tick=order.market.tick_size)
    else:
        price = None
    if quantity not in (None, ""):
        quantity = errors.collect(parse_quantity, quantity, field="quantity")
    else:
        quantity = None
    errors.raise_any()
    return price, quantity


def order_amend(
    *, order_id: int, user, price=None, quantity=None, ip: str | None = None
) -> Amended:
    """Amend `user`'s resting limit order: a new limit `price` and/or open `quantity`
    (the certificates still to trade; raw input, empty or None keeps it).

    Only a smaller open quantity at the same price keeps the order's place in the queue:
    the same order, its surplus reservation released. Otherwise it is cancel-replace,
    atomically: the old order is cancelled ("replaced by #N") and its whole reservation
    released, then a new limit order (same side, post-only if the old one was) is placed
    with those funds plus the available balance, through the placement core (it may trade
    at once). Refused, changing nothing, when funds fall short, when the old order no
    longer rests, or when the new order would be refused.

    Locks: the market row, then the order row, then the balances the new order's walk
    touches (or the owner's reserve asset) in primary-key order; ledger RELEASE/RESERVE
    entries name the orders.
    """
    order = order_for_amend(order_id=order_id, user=user)
    new_price, new_quantity = amend_inputs_parse(order=order, price=price, quantity=quantity)
    with pipelined_atomic():
        amended = _amend_locked(
            order=order, user=user, price=new_price, quantity=new_quantity, ip=ip
        )
    if isinstance(amended, ValidationError):
        raise amended
    amendment, outcome, ticket_ids, now = amended
    if outcome is None:
        order.refresh_from_db()
        return Amended(order=order, message=amendment.message(), keeps_priority=True)
    placement = _placement(outcome, ticket_ids, now)
    return Amended(
        order=placement.order,
        message=amendment.message(placement.order.pk),
        keeps_priority=False,
        replaced_id=order.pk,
        trades=placement.trades,
    )


def _amend_locked(*, order: Order, user, price, quantity, ip):
    """The amendment under the locks: (amendment, its placement's outcome or None, ticket
    ids, now) with every write queued, or the refusal, a ValidationError found before
    anything is written (returned, not raised, as `_place_locked` returns its refusals).
    """
    market_read = db.MarketRead(market_id=order.market_id, lock=True)
    market_read.wait()
    now = timezone.now()
    market = market_read.rules(today=now.date())
    locked = db.lock_amending_order(order.pk, market_id=market.market_id)
    if locked is None:
        order.refresh_from_db()
        state = order.get_status_display().lower()
        return ValidationError(f"Order #{order.pk} is {state}; nothing was changed.")
    plan = core.amend_plan(market=market, order=locked, price=price, quantity=quantity)
    if plan.refusal is not None:
        return _refused(plan.refusal)
    account = Account(order.owner_id, order.owner.kind)
    walk, keys, house = None, {(locked.owner_id, order.reserve_asset)}, False
    if plan.request is not None:
        book = db.RestingBook(
            market_id=market.market_id,
            side=opposite(locked.side),
            limit_price=plan.price,
            first=db.first_batch(plan.open_quantity, cap=PLACEMENT_FIRST_BATCH_CAP),
        )
        walk = core.match_order(market=market, account=account, request=plan.request, book=book)
        if walk.refusal is not None:
            return _refused(walk.refusal)
        keys, house = walk.balance_keys, walk.takes_fees
    balances = BalanceLock(keys, house=house)
    fills = len(walk.result.fills) if walk else 0
    ids = allocate_ids({Order: 0 if walk is None else 1, Trade: fills, TicketLog: fills})
    sheet = BalanceSheet(balances.rows(), house_id=balances.house_id)
    new_ids = ids.take(Order)
    amendment = core.amend_settle(
        plan,
        account=account,
        walk=walk,
        available=sheet.available_of(locked.owner_id),
        house_id=sheet.house_id,
        new_order_id=new_ids[0] if new_ids else None,
        trade_ids=ids.take(Trade),
    )
    if amendment.refusal is not None:
        return _refused(amendment.refusal)
    outcome = amendment.placement
    ticket_ids = ids.take(TicketLog)
    if outcome is None:
        sheet.apply(amendment.moves, field="quantity")
        db.shrink_order(amendment.shrunk, now=now)
        sheet.flush()
        db.bump_book_version(market.market_id)
    else:
        sheet.apply((*amendment.moves, *outcome.moves), field="quantity")
        db.update_orders([amendment.cancelled], now=now)
        _write_placement(
            outcome, ticket_ids, sheet=sheet, market=market, actor=user, ip=ip, now=now
        )
    return amendment, outcome, ticket_ids, now


# --- Resting orders of a liquidity operation ---------------------------------------------


def resting_orders_place(
    *,
    market: MarketRules,
    orders: Sequence[RestingOrder],
    sheet: BalanceSheet,
    best_bid: Decimal | None,
    best_ask: Decimal | None,
    ticket_id: int | None = None,
    order_ids: Sequence[int] | None = None,
) -> list[int]:
    """Rest many fee-free limit orders at once, reserving their funds; never trades.

    The caller must hold, in the current transaction, the market's row lock (under which
    it read `best_bid` and `best_ask`) and a `BalanceSheet` covering every owner's reserve
    asset, and must `flush()` the sheet afterwards. Refuses (ValidationError) orders that
    would cross the book. An INSERT per side whatever the number of orders. Returns the
    orders' ids: `order_ids` if the caller allocated them (`allocate_ids`, one per order,
    e.g. in the same statement as its other rows' ids), else allocated here. `ticket_id`
    names the audited action that placed them.
    """
    if not orders:
        return []
    # Ids ahead (a refusal below leaves a gap, as a rolled-back insert would), so each
    # reservation names its order whatever order an INSERT would return ids in.
    ids = (
        list(order_ids)
        if order_ids is not None
        else allocate_ids({Order: len(orders)}).take(Order)
    )
    if len(ids) != len(orders):
        raise ValueError(f"{len(ids)} ids for {len(orders)} orders")
    refusal = core.rest_refusal(market=market, orders=orders, best_bid=best_bid, best_ask=best_ask)
    if refusal is not None:
        raise _refused(refusal)
    now = timezone.now()
    # A side at a time (at most two INSERTs, whatever the number of orders): in a
    # pipelined transaction PostgreSQL inserts the bids while the asks' rows are built.
    # Should the sheet refuse the asks' reservations, the bids' are already in it and the
    # caller must roll back (as every caller does on an error).
    for side in (Side.BUY, Side.SELL):
        part = [(order, pk) for order, pk in zip(orders, ids, strict=True) if order.side == side]
        if not part:
            continue
        resting = core.rest_rows(
            market=market,
            orders=[order for order, _ in part],
            ticket_id=ticket_id,
            order_ids=[pk for _, pk in part],
        )
        db.insert_orders(resting.orders, now=now)
        sheet.apply(resting.reservations)
    db.bump_book_version(market.market_id)
    return ids
