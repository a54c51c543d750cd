"""Preview, execute and withdraw liquidity operations.

The arithmetic lives in `liquidity.plan` (pure); this module reads its inputs, and, for
execution, locks them first so the plan that is placed is computed from the very balances
that are reserved.

Locking, as everywhere (see `market.services.ledger`): the market row, then the balance
rows of every candidate market maker in primary-key order, in one statement. Two staff
users executing at once therefore queue on the market row; the second one re-plans from
what the first left and is refused if its previewed plan no longer holds, unless it
carries the first one's idempotency key: then it gets the first one's operation.
"""

from dataclasses import dataclass, replace
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from liquidity import plan as planning
from liquidity.ladder import DEFAULT_LADDER, Ladder, ladder_parse
from liquidity.models import LiquidityOperation
from market.core.makers import book_side_of, side_asset
from market.core.money import parse_amount, parse_price
from market.core.placement import MarketRules, RestingOrder, trading_refusal
from market.db.balances import BalanceRow, active_maker_balances
from market.db.bulk import insert_instances
from market.db.orders import MarketRead, best_prices, best_prices_send
from market.db.pipeline import AllocatedIds, Statement, allocate_ids, pipelined_atomic
from market.models import MarketMakerClient, Order, TicketLog
from market.selectors import market_codes
from market.services.audit import ticket_record
from market.services.ledger import BalanceSheet
from market.services.orders import (
    market_rules,
    orders_cancel,
    released_by_asset,
    resting_orders_place,
)
from market.validation import FieldErrors, IdempotencyKeyReused

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
MAX_NOTES = 2000


class PlanChanged(ValidationError):
    """The market or the makers' funds moved since the preview; `plan` is the fresh one."""

    def __init__(self, plan: planning.LiquidityPlan):
        self.plan = plan
        super().__init__(
            "The market or the market makers' funds changed since the preview. "
            "Review the updated plan and confirm again."
        )


class InsufficientAssets(ValidationError):
    """A side lacks assets; `plan` names every shortfall."""

    def __init__(self, plan: planning.LiquidityPlan):
        self.plan = plan
        sides = ", ".join(f"{s.side} needs {s.shortfall} {s.asset} more" for s in plan.shortfalls)
        super().__init__(f"Insufficient assets: {sides or 'nothing to place'}.")


@dataclass(frozen=True)
class LiquidityRequest:
    market: MarketRules
    bid_amount_eur: Decimal
    ask_amount_eur: Decimal
    reference_price: Decimal | None = None
    notes: str = ""
    # Staff confirm a reference price further from the book's than the market's band.
    reference_outside_band: bool = False
    ladder: Ladder = DEFAULT_LADDER


def liquidity_request_parse(
    *,
    market_code,
    bid_amount_eur,
    ask_amount_eur,
    reference_price=None,
    notes="",
    reference_outside_band=False,
    ladder=None,
) -> LiquidityRequest:
    """Validate raw input; ValidationError keyed by field lists everything to fix.
    `reference_outside_band` (a bool, or a form's "on"/"true"/"1") counts only with a
    reference price. `ladder` is text, level objects or a `Ladder` (`ladder_parse`);
    None or blank is the default ladder."""
    errors = FieldErrors()
    collect = errors.collect
    market = market_rules(market_code)
    if market is None:
        errors.add(
            "certificate_type",
            f"Unknown market {market_code!r}: choose {', '.join(market_codes())}.",
        )
    elif paused := trading_refusal(market):
        errors.add("certificate_type", paused)
    bid = collect(parse_amount, bid_amount_eur, field="bid_amount_eur", allow_zero=True)
    ask = collect(parse_amount, ask_amount_eur, field="ask_amount_eur", allow_zero=True)
    if bid == 0 and ask == 0:
        errors.add(NON_FIELD_ERRORS, "Enter a BID or an ASK amount (or both) greater than zero.")
    if reference_price in ("", None):
        reference_price = None
    elif market is not None:
        reference_price = collect(
            parse_price, reference_price, tick=market.tick, field="reference_price"
        )
    ladder = collect(ladder_parse, ladder, field="ladder")
    notes = str(notes or "")
    if len(notes) > MAX_NOTES:
        errors.add("notes", f"Notes are at most {MAX_NOTES} characters.")
    if "\x00" in notes:
        errors.add("notes", "Null characters are not allowed.")
    errors.raise_any()
    outside_band = reference_price is not None and str(reference_outside_band).lower() in (
        "true",
        "on",
        "1",
        "yes",
    )
    return LiquidityRequest(market, bid, ask, reference_price, notes, outside_band, ladder)


def market_snapshot(market: MarketRules) -> planning.MarketSnapshot:
    """What the plan needs of `market` and its book now."""
    return _snapshot(market, best_prices(market.market_id))


def _snapshot(market: MarketRules, prices) -> planning.MarketSnapshot:
    best_bid, best_ask, last_price = prices
    return planning.MarketSnapshot(
        code=market.code,
        tick_size=market.tick,
        default_reference_price=market.default_reference_price,
        best_bid=best_bid,
        best_ask=best_ask,
        last_price=last_price,
        band=market.band,
        reference_band_pct=market.price_band_pct,
    )


@dataclass(frozen=True)
class MakerBalances:
    """The funded balances of active makers, as read (and, for execution, locked)."""

    balances: list[BalanceRow]  # for the BalanceSheet
    holder_of: dict[int, int]  # market maker id -> its holder id
    funds: dict[str, list[planning.MakerFunds]]  # maker type -> what each one holds
    row_of: dict[int, BalanceRow]  # market maker id -> its balance row

    def now(self) -> "MakerBalances":
        """The same makers holding what their rows hold now: a `BalanceSheet` over
        `balances` moves the rows themselves (a withdrawal before a new plan)."""
        funds = {
            kind: [replace(f, available=self.row_of[f.market_maker_id].available) for f in fs]
            for kind, fs in self.funds.items()
        }
        return MakerBalances(self.balances, self.holder_of, funds, self.row_of)


def maker_balances(market: MarketRules, *, lock: bool) -> MakerBalances:
    """Balances of active makers: EUR of providers, the certificate of holders, each with
    its maker's id, code, name and type. Empty ones too: they get nothing, but a BID
    shortfall allows for every provider it may be spread over (`liquidity.plan`).

    One query whatever the number of makers; with `lock`, the rows are locked in
    primary-key order (only the balance rows, not the joined ones). Plain rows are read:
    per-row model hydration with annotations dominated the read.
    """
    return _makers_of(_maker_balances_send(market.code, lock=lock).rows())


def _maker_balances_send(code: str, *, lock: bool) -> Statement:
    """`maker_balances`' statement for the market `code`, sent at once."""
    return active_maker_balances(
        [(mm_type, side_asset(book_side_of(mm_type), code)) for mm_type in (LP, AH)], lock=lock
    )


def _makers_of(rows) -> MakerBalances:
    balances, holder_of, funds, row_of = [], {}, {LP: [], AH: []}, {}
    for balance_id, holder_id, asset, available, locked, maker_id, code, name, mm_type in rows:
        row = BalanceRow(balance_id, holder_id, asset, available, locked)
        balances.append(row)
        row_of[maker_id] = row
        holder_of[maker_id] = holder_id
        funds[mm_type].append(planning.MakerFunds(maker_id, code, name, available))
    return MakerBalances(balances, holder_of, funds, row_of)


def _build(request: LiquidityRequest, market: MarketRules, makers: MakerBalances, snapshot):
    return plan_for(
        market=snapshot,
        makers=makers,
        bid_amount_eur=request.bid_amount_eur,
        ask_amount_eur=request.ask_amount_eur,
        reference_price=request.reference_price,
        reference_outside_band=request.reference_outside_band,
        ladder=request.ladder,
    )


def plan_for(
    *,
    market: planning.MarketSnapshot,
    makers: MakerBalances,
    bid_amount_eur: Decimal,
    ask_amount_eur: Decimal,
    reference_price: Decimal | None = None,
    reference_outside_band: bool = False,
    ladder: Ladder = DEFAULT_LADDER,
) -> planning.LiquidityPlan:
    """The plan over `makers` (as `maker_balances` read them) on `market`."""
    return planning.build_plan(
        market=market,
        bid_amount_eur=bid_amount_eur,
        ask_amount_eur=ask_amount_eur,
        liquidity_providers=makers.funds[LP],
        asset_holders=makers.funds[AH],
        reference_price_override=reference_price,
        reference_outside_band=reference_outside_band,
        ladder=ladder,
    )


def liquidity_preview(*, request: LiquidityRequest) -> planning.LiquidityPlan:
    """The plan for `request` as the market stands now. Read-only; a constant number of
    queries whatever the number of market makers."""
    market = request.market
    try:
        return _build(request, market, maker_balances(market, lock=False), market_snapshot(market))
    except planning.PlanError as error:
        raise ValidationError({error.field: error.message}) from None


def liquidity_execute(
    *,
    request: LiquidityRequest,
    user,
    fingerprint: str | None = None,
    idempotency_key: str | None = None,
    ip: str | None = None,
) -> LiquidityOperation:
    """Place the plan's orders in one transaction and record the operation.

    Under the market lock and the makers' balance locks the plan is rebuilt; if it differs
    from the previewed `fingerprint` the call raises `PlanChanged` with the fresh plan, and
    if a side is short, `InsufficientAssets`. Actual amounts are summed from the orders
    placed.

    Idempotency, per user and `idempotency_key`: when the key names an operation the user
    made before, the same request (`_same_request`) returns that operation with
    `replayed` set and writes nothing; a different request raises `IdempotencyKeyReused`.
    The key is looked up before the transaction, again under the market lock (a twin that
    waited on the lock gets the operation its twin committed, not a plan that twin
    changed), and again after a refusal or a unique-key error (a twin on another market
    waits on the makers' balance rows or on the key's unique index instead).

    On PostgreSQL the transaction is pipelined (`market.db.pipeline`): the market lock,
    the makers' balance locks and the book's best prices take one round trip; the ids
    of the rows to write are allocated while the plan is built (as many order ids as
    the makers could get orders, `liquidity.plan.most_orders`: unused ones are a gap);
    once the plan holds, its rows are queued as they are computed, so the database
    writes the orders while the ticket, the operation and the ledger rows are still
    being built, and the COMMIT travels with the last write; a failed write raises at
    the COMMIT and nothing is kept.
    """
    if idempotency_key:
        existing = _executed_before(user, idempotency_key, request)
        if existing is not None:
            return existing
    try:
        with pipelined_atomic():
            return _execute_locked(
                request=request,
                user=user,
                fingerprint=fingerprint,
                idempotency_key=idempotency_key,
                ip=ip,
            )
    except IdempotencyKeyReused:
        raise
    except (IntegrityError, ValidationError):
        if idempotency_key:
            existing = _executed_before(user, idempotency_key, request)
            if existing is not None:
                return existing
        raise


def _executed_before(user, idempotency_key: str, request: LiquidityRequest):
    """The operation `user` made under `idempotency_key`, marked `replayed`, if it is
    `request`'s; None if the key is new; `IdempotencyKeyReused` if it made another one."""
    operation = (
        LiquidityOperation.objects.select_related("ticket", "market")
        .filter(created_by=user, idempotency_key=idempotency_key)
        .first()
    )
    if operation is None:
        return None
    if not _same_request(operation, request):
        raise IdempotencyKeyReused(
            message=(
                f"Liquidity operation {operation.ticket.ticket_id} was already executed with "
                "this idempotency key, for a different request; nothing was changed."
            )
        )
    operation.replayed = True
    return operation


def _same_request(operation: LiquidityOperation, request: LiquidityRequest) -> bool:
    """Whether `operation` is what `request` asks for: the same market, BID and ASK
    amounts, reference price (as asked, blank for the market's), its override, the ladder
    and notes.
    The previewed fingerprint is not part of it: it is the request's precondition, not the
    request, and a retry may carry a fresher one."""
    asked = operation.ticket.request_payload.get("reference_price") or None
    return (
        operation.market_id == request.market.market_id
        and operation.target_bid_eur == request.bid_amount_eur
        and operation.target_ask_eur == request.ask_amount_eur
        and (Decimal(asked) if asked else None) == request.reference_price
        and operation.notes == request.notes
        and bool(operation.ticket.request_payload.get("reference_outside_band"))
        == request.reference_outside_band
        and _recorded_ladder(operation) == request.ladder
    )


def _recorded_ladder(operation: LiquidityOperation) -> Ladder:
    """The ladder an operation placed; operations made before ladders were recorded
    used the default."""
    return ladder_parse(operation.ladder or None)


def _execute_locked(*, request, user, fingerprint, idempotency_key, ip) -> LiquidityOperation:
    # One round trip: the market lock, then the makers' balance locks (the fixed order,
    # as the statements run in the order sent) and the book's best prices. A market's
    # code never changes (it names its certificate's balances): the request's is current.
    market_id = request.market.market_id
    market_read = MarketRead(market_id=market_id, lock=True)
    makers_read = _maker_balances_send(request.market.code, lock=True)
    prices_read = best_prices_send(market_id)
    market = market_read.rules()
    if idempotency_key:
        # A twin with this key may have committed while this call waited on the lock.
        existing = _executed_before(user, idempotency_key, request)
        if existing is not None:
            return existing
    if paused := trading_refusal(market):  # paused since the request was read
        # The makers' balances were locked in the same round trip and are released by the
        # rollback: a pause between the parse and the lock is rare, a round trip on every
        # execution is not.
        raise ValidationError({"certificate_type": paused})
    makers = _makers_of(makers_read.rows())
    snapshot = _snapshot(market, prices_read.one())
    # The order ids, reserved while the plan is built: as many as it can place at most.
    funds = makers.funds
    most = planning.most_orders(
        bid_amount_eur=request.bid_amount_eur,
        ask_amount_eur=request.ask_amount_eur,
        liquidity_providers=funds[LP],
        asset_holders=funds[AH],
        ladder=request.ladder,
    )
    ids = allocate_ids({TicketLog: 1, LiquidityOperation: 1, Order: most})
    try:
        plan = _build(request, market, makers, snapshot)
    except planning.PlanError as error:
        raise ValidationError({error.field: error.message}) from None
    if fingerprint and plan.fingerprint() != fingerprint:
        raise PlanChanged(plan)
    if not plan.can_execute:
        raise InsufficientAssets(plan)

    return operation_place(
        market=market,
        makers=makers,
        snapshot=snapshot,
        plan=plan,
        user=user,
        action_type="LIQUIDITY_CREATED",
        payload={
            "certificate_type": market.code,
            "bid_amount_eur": str(request.bid_amount_eur),
            "ask_amount_eur": str(request.ask_amount_eur),
            "reference_price": str(request.reference_price or ""),
            "reference_outside_band": request.reference_outside_band,
            "ladder": request.ladder.as_text(),
            "notes": request.notes,
            "idempotency_key": idempotency_key or "",
        },
        notes=request.notes,
        idempotency_key=idempotency_key,
        ip=ip,
        ids=ids,
    )


def operation_place(
    *,
    market: MarketRules,
    makers: MakerBalances,
    snapshot: planning.MarketSnapshot,
    plan: planning.LiquidityPlan,
    user,
    action_type: str,
    payload: dict,
    after: dict | None = None,
    related: list[str] | None = None,
    program=None,
    notes: str = "",
    idempotency_key: str | None = None,
    ip: str | None = None,
    sheet: BalanceSheet | None = None,
    ids: AllocatedIds | None = None,
) -> LiquidityOperation:
    """Place an executable `plan`'s orders and record them: one ticket (`action_type`,
    `payload`, and what was placed, with `after`'s extra keys), one `LiquidityOperation`
    (linked to `program` for a program's refresh), the orders and their reservations.

    The caller holds, in the current transaction, the market's lock and the balance
    locks of `makers`, and built `plan` and `snapshot` under those locks from what the
    rows hold now. `sheet`, if given, is the caller's sheet over `makers.balances` with
    moves already applied (a withdrawal): they are written together, once. `ids`, if
    given, were allocated by the caller (`allocate_ids`): one ticket, one operation and
    at least as many orders as the plan places (the first ones are used)."""
    bid, ask = plan.bid_plan, plan.ask_plan
    # Every id ahead, in one statement sent first: no write then waits for one, and in a
    # pipelined execute each batch of rows is written while the next one is computed.
    if ids is None:
        ids = allocate_ids(
            {TicketLog: 1, LiquidityOperation: 1, Order: len(bid.orders) + len(ask.orders)}
        )
    holder_of = makers.holder_of
    orders = [
        RestingOrder(holder_of[order.market_maker_id], order.side, order.price, order.quantity)
        for order in (*bid.orders, *ask.orders)
    ]
    (ticket_id,) = ids.take(TicketLog)
    (operation_id,) = ids.take(LiquidityOperation)
    sheet = sheet or BalanceSheet(makers.balances)
    # The orders first, the bulk of the writes, so that the database is busy with them
    # while the ticket and the operation are assembled; the orders name the ticket row
    # written after them (foreign keys are checked at COMMIT).
    resting_orders_place(
        market=market,
        orders=orders,
        sheet=sheet,
        best_bid=snapshot.best_bid,
        best_ask=snapshot.best_ask,
        ticket_id=ticket_id,
        order_ids=ids.take(Order)[: len(orders)],
    )
    # What the orders add up to, as the sides summed them (no orders: a plain zero).
    zero = Decimal("0")
    bid_value = bid.total_value_eur if bid.orders else zero
    ask_value = ask.total_value_eur if ask.orders else zero
    makers_used = _makers_used(plan)
    ticket = ticket_record(
        pk=ticket_id,
        action_type=action_type,
        entity_type="LiquidityOperation",
        user=user,
        payload=payload,
        after={
            **(after or {}),
            "reference_price": str(plan.reference_price),
            "reference_outside_band": plan.reference_outside_band,
            "actual_bid_eur": str(bid_value),
            "actual_ask_eur": str(ask_value),
            "orders_created": len(orders),
            "market_makers_used": makers_used,
        },
        related=related or (),
        tags=["liquidity", market.code, *(["program"] if program is not None else [])],
        ip=ip,
    )
    operation = LiquidityOperation(
        pk=operation_id,
        ticket=ticket,
        market_id=market.market_id,
        program=program,
        reference_price=plan.reference_price,
        reference_source=plan.reference_source,
        reference_outside_band=plan.reference_outside_band,
        ladder=plan.ladder.as_data(),
        target_bid_eur=plan.bid_amount_eur,
        target_ask_eur=plan.ask_amount_eur,
        actual_bid_eur=bid_value,
        actual_ask_eur=ask_value,
        actual_ask_quantity=ask.total_quantity,
        market_makers_used=makers_used,
        orders_created=len(orders),
        notes=notes,
        plan_fingerprint=plan.fingerprint(),
        idempotency_key=idempotency_key,
        created_by=user,
    )
    insert_instances([operation])
    sheet.flush()
    return operation


def _makers_used(plan: planning.LiquidityPlan) -> list[dict]:
    used = []
    for side_plan in (plan.bid_plan, plan.ask_plan):
        asset = side_asset(side_plan.side, plan.certificate_type)
        for allocation in side_plan.allocations:
            if not allocation.orders_count:
                continue
            used.append(
                {
                    "market_maker_id": allocation.market_maker_id,
                    "code": allocation.code,
                    "side": side_plan.side,
                    "asset": asset,
                    "quantity": allocation.quantity,
                    "value_eur": str(allocation.value_eur),
                    "orders": allocation.orders_count,
                }
            )
    return used


class NothingToWithdraw(ValidationError):
    """The operation has no resting order left (withdrawn, filled, or cancelled by
    market-maker deactivation): withdrawing would change nothing, so it is refused and
    nothing is written, not even a ticket."""


def withdraw_refusal(operation: LiquidityOperation, *, orders_resting: int) -> str | None:
    """Why `operation`, with `orders_resting` orders still resting, cannot be withdrawn,
    or None if it can. The one rule the service, the pages, the admin and the API keep."""
    if operation.withdrawn_at is not None:
        by = f" by {operation.withdrawn_by.get_username()}" if operation.withdrawn_by else ""
        return (
            f"{operation.ticket.ticket_id} was already withdrawn on "
            f"{operation.withdrawn_at:%Y-%m-%d %H:%M} UTC{by}: nothing is left to withdraw."
        )
    if not orders_resting:
        return (
            f"{operation.ticket.ticket_id} has no open orders left (filled or cancelled): "
            "nothing to withdraw."
        )
    return None


def liquidity_withdraw(*, operation: LiquidityOperation, user, ip: str | None = None):
    """Cancel the operation's still-resting orders and release exactly what they reserve,
    with one `LIQUIDITY_WITHDRAWN` ticket.

    Locks the operation row, then (in `orders_cancel`) the markets, orders and balances.
    An operation with nothing resting (already withdrawn, filled, or emptied by
    market-maker deactivation) raises `NothingToWithdraw` and writes nothing. Returns the
    orders cancelled.
    """
    with transaction.atomic():
        operation = (
            LiquidityOperation.objects.select_for_update(of=("self",))
            .select_related("ticket", "market", "withdrawn_by")
            .get(pk=operation.pk)
        )
        resting = list(
            Order.objects.filter(ticket_id=operation.ticket_id, status__in=Order.RESTING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if refusal := withdraw_refusal(operation, orders_resting=len(resting)):
            raise NothingToWithdraw(refusal, code="nothing_to_withdraw")
        cancelled = orders_cancel(orders=resting, reason="liquidity withdrawn")
        if not cancelled:  # all filled between the read and the orders' lock
            raise NothingToWithdraw(
                withdraw_refusal(operation, orders_resting=0), code="nothing_to_withdraw"
            )
        ticket_record(
            action_type="LIQUIDITY_WITHDRAWN",
            entity_type="LiquidityOperation",
            entity_id=operation.pk,
            user=user,
            payload={"operation_id": operation.pk},
            after={
                "orders_cancelled": len(cancelled),
                "released": {
                    asset: str(amount) for asset, amount in released_by_asset(cancelled).items()
                },
            },
            related=[operation.ticket.ticket_id],
            tags=["liquidity", operation.market.code],
            ip=ip,
        )
        operation.withdrawn_at = timezone.now()
        operation.withdrawn_by = user
        operation.save(update_fields=["withdrawn_at", "withdrawn_by"])
    return cancelled
