"""JSON API for liquidity operations. Field names follow the reference plan's (e.g. each
price level's `percentage`) beside the project's own."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.core.exceptions import ValidationError
from ninja import Field, Header, Query, Router, Schema, Status
from ninja.errors import AuthorizationError

from config.api_schemas import (
    COMMON,
    HOSTILE_INPUT,
    KEY_PATTERN,
    ExactNumber,
    Id,
    IdempotencyKeyReusedOut,
    NotFoundOut,
    Out,
    RequestErrorOut,
    ValidationErrorOut,
)
from config.http import client_ip
from liquidity import selectors
from liquidity.ladder import DEFAULT_LADDER, FORMAT_HELP, MAX_LADDER_LEVELS, Ladder
from liquidity.models import LiquidityOperation
from liquidity.plan import LiquidityPlan, PriceLevel, SidePlan
from liquidity.services import (
    InsufficientAssets,
    NothingToWithdraw,
    PlanChanged,
    liquidity_execute,
    liquidity_preview,
    liquidity_request_parse,
    liquidity_withdraw,
)
from market.core.makers import ASSET_HOLDER, LIQUIDITY_PROVIDER, maker_type_for
from market.core.money import EUR
from market.models import MarketMakerClient
from market.permissions import MANAGE_MARKET_MAKERS
from market.services.market_makers import market_makers_create_bulk, market_makers_fund_bulk
from market.validation import IdempotencyKeyReused

router = Router(tags=["Liquidity"])

# Money and a ladder's percentages arrive as JSON numbers (read exactly from their text)
# or decimal strings; the strict parser checks both alike.
Money = Percent = ExactNumber


class LadderLevelIn(Schema):
    distance_pct: Percent = Field(
        examples=["0.2"], description="Distance from the reference price, in % (> 0, ≤ 50)"
    )
    share_pct: Percent = Field(examples=["50"], description="Share of each side, in % (> 0)")


class LiquidityIn(Schema):
    certificate_type: str = Field(examples=["CEA"])
    bid_amount_eur: Money = Field(examples=["100000.00"])
    ask_amount_eur: Money = Field(examples=["50000.00"])
    reference_price: Money | None = Field(None, examples=["14.00"])
    reference_outside_band: bool = Field(
        False,
        description="Use `reference_price` even if it lies further from the book's reference "
        "than the market's band; recorded on the operation and its ticket.",
    )
    ladder: list[LadderLevelIn] | None = Field(
        None,
        description=f"The price levels, best first (at most {MAX_LADDER_LEVELS}; distances "
        "increasing, shares adding up to 100, both with at most two decimals); omitted or "
        f"null: the default, {DEFAULT_LADDER.as_text()} (distance:share). {FORMAT_HELP}",
        examples=[DEFAULT_LADDER.as_data()],
    )
    notes: str = ""


class CreateIn(LiquidityIn):
    fingerprint: str | None = Field(
        None, description="The previewed plan's fingerprint; a changed market answers 409."
    )


class ProvisionIn(Schema):
    action: Literal["create_new", "fund_existing"]
    mm_type: Literal["LIQUIDITY_PROVIDER", "ASSET_HOLDER"]
    asset: str | None = Field(
        None,
        examples=["EUR"],
        description="EUR for liquidity providers (the default, as the reference plan has "
        "no asset field); the certificate (CEA, EUA...) for asset holders",
    )
    amount: Money = Field(description="create_new: the total shared; fund_existing: each")
    count: int | None = Field(None, ge=1, le=1000)
    mm_ids: list[Id] | None = None
    name_prefix: str = "Liquidity"


# --- responses --------------------------------------------------------------------------
# Exactly what the endpoints return: every field, with its type. Money and prices are
# decimal strings; certificates and counts are integers.


class NothingToWithdrawOut(Out):
    """409: the operation has no resting order left; nothing was written."""

    error: str = Field(examples=["nothing_to_withdraw"])
    message: str


class ShortfallOut(Out):
    side: str
    asset_type: str
    mm_type: str
    required: str
    available: str
    shortfall: str


class AllocationOut(Out):
    mm_id: int
    mm_code: str
    mm_name: str
    mm_type: str
    available: str
    allocation: str
    orders_count: int
    quantity: int
    value_eur: str


class LadderLevelOut(Out):
    distance_pct: str = Field(examples=["0.2"])
    share_pct: str = Field(examples=["50"])


class PriceLevelOut(Out):
    price: str
    distance_pct: str = Field(
        description="The ladder's distance of this level from the reference price, in % "
        "(0.2); the price may lie further out (it never crosses the book)"
    )
    share_pct: str = Field(description="The level's share of its side, in percent (33.33)")
    percentage: int = Field(
        description="The same share in whole percent, rounded half up (the reference "
        "plan's field; exact in `share_pct`)"
    )
    share: str = Field(description="The same share as a fraction (0.5)")
    quantity: int
    value_eur: str
    orders_count: int


class SidePlanOut(Out):
    side: str
    asset: str
    target_eur: str
    required: str
    available: str
    sufficient: bool
    total_amount: str
    total_quantity: int
    orders_count: int
    mms: list[AllocationOut]
    price_levels: list[PriceLevelOut]


class PlanOut(Out):
    certificate_type: str
    can_execute: bool
    reference_price: str
    reference_source: str
    reference_outside_band: bool
    ladder: list[LadderLevelOut]
    bid_plan: SidePlanOut
    ask_plan: SidePlanOut
    missing_assets: ShortfallOut | None
    shortfalls: list[ShortfallOut]
    suggested_actions: list[str]
    warnings: list[str]
    total_orders_count: int
    estimated_spread: str | None
    estimated_spread_pct: str | None
    fingerprint: str


class InsufficientAssetsOut(Out):
    """400 `insufficient_assets`: every short side, the first also flattened (the
    reference API's shape)."""

    error: str = Field(examples=["insufficient_assets"])
    message: str
    missing_assets: ShortfallOut | None
    shortfalls: list[ShortfallOut]
    suggested_actions: list[str]
    side: str | None = None
    asset_type: str | None = None
    mm_type: str | None = None
    required: str | None = None
    available: str | None = None
    shortfall: str | None = None


class PlanChangedOut(Out):
    error: str = Field(examples=["plan_changed"])
    message: str
    plan: PlanOut


class MakerUsedOut(Out):
    mm_id: int = Field(
        description="The market maker (the reference's name; also `market_maker_id`)"
    )
    mm_type: str = Field(description="LIQUIDITY_PROVIDER for a BID, ASSET_HOLDER for an ASK")
    amount: str = Field(
        description="The reference's amount: EUR committed by a provider (= `value_eur`), "
        "certificates offered by a holder (= `quantity`)"
    )
    market_maker_id: int
    code: str
    side: str
    asset: str
    quantity: int
    value_eur: str
    orders: int


class CreatedOut(Out):
    success: bool
    liquidity_operation_id: int
    ticket_id: str
    orders_created: int
    bid_liquidity_eur: str
    ask_liquidity_eur: str
    ask_quantity: int
    reference_price: str
    ladder: list[LadderLevelOut] | None
    market_makers_used: list[MakerUsedOut]


class ProvisionedMakerOut(Out):
    mm_id: int
    mm_code: str
    mm_name: str


class ProvisionedOut(Out):
    success: bool
    action: str
    market_makers: list[ProvisionedMakerOut]


class OperationOrderOut(Out):
    id: int
    mm_code: str
    side: str
    price: str
    quantity: int
    filled_quantity: int
    status: str


class SideRemainingOut(Out):
    """What is left of one side: orders placed, still resting, cancelled by market-maker
    deactivation, and the certificates still resting."""

    side: str
    orders: int
    orders_resting: int
    orders_cancelled_by_deactivation: int
    quantity_resting: int


class OperationOut(Out):
    id: int
    program_id: int | None = Field(
        description="The liquidity program whose refresh placed it; null for a one-shot"
    )
    ticket_id: str
    certificate_type: str
    state: str = Field(
        description="active, partly filled, filled, withdrawn, partly cancelled or "
        "cancelled (the last two: orders cancelled by market-maker deactivation)"
    )
    state_detail: str = Field(
        description='e.g. "3 of 12 orders cancelled by market-maker deactivation"; "" if none'
    )
    orders_cancelled_by_deactivation: int
    sides: list[SideRemainingOut]
    fill_pct: str
    quantity_total: int
    quantity_filled: int
    orders_resting: int
    reference_price: str
    reference_outside_band: bool
    ladder: list[LadderLevelOut] | None = Field(
        description="The ladder placed; null if its record cannot be read"
    )
    target_bid_eur: str
    target_ask_eur: str
    actual_bid_eur: str
    actual_ask_eur: str
    actual_ask_quantity: int
    orders_created: int
    market_makers_used: list[MakerUsedOut]
    notes: str
    created_by: str
    created_at: str
    withdrawn_at: str | None


class OperationDetailOut(OperationOut):
    orders: list[OperationOrderOut]


class OperationsOut(Out):
    count: int
    items: list[OperationOut]


class WithdrawnOut(Out):
    success: bool
    orders_cancelled: int
    operation: OperationOut


def maker_used_json(used: dict) -> dict:
    """One entry of an operation's `market_makers_used` (as recorded) with the reference's
    `mm_id`, `mm_type` and `amount` beside it."""
    mm_type = maker_type_for(used["side"])
    amount = used["value_eur"] if mm_type == LIQUIDITY_PROVIDER else str(used["quantity"])
    return {"mm_id": used["market_maker_id"], "mm_type": mm_type, "amount": amount, **used}


def shortfall_json(shortfall) -> dict:
    return {
        "side": shortfall.side,
        "asset_type": shortfall.asset,
        "mm_type": shortfall.maker_type,
        "required": str(shortfall.required),
        "available": str(shortfall.available),
        "shortfall": str(shortfall.shortfall),
    }


def side_json(side: SidePlan) -> dict:
    return {
        "side": side.side,
        "asset": side.asset,
        "target_eur": str(side.target_eur),
        "required": str(side.required),
        "available": str(side.available),
        "sufficient": side.sufficient,
        "total_amount": str(side.total_value_eur),
        "total_quantity": side.total_quantity,
        "orders_count": side.orders_count,
        "mms": [
            {
                "mm_id": allocation.market_maker_id,
                "mm_code": allocation.code,
                "mm_name": allocation.name,
                "mm_type": side.maker_type,
                "available": str(allocation.available),
                "allocation": str(allocation.allocated),
                "orders_count": allocation.orders_count,
                "quantity": allocation.quantity,
                "value_eur": str(allocation.value_eur),
            }
            for allocation in side.allocations
        ],
        "price_levels": [level_json(level) for level in side.levels],
    }


def _plain(number: Decimal) -> str:
    return f"{number.normalize():f}"


def level_json(level: PriceLevel) -> dict:
    share_pct = level.share * 100
    return {
        "price": str(level.price),
        "distance_pct": _plain(level.distance_pct),
        "share_pct": _plain(share_pct),
        "percentage": int(share_pct.to_integral_value(rounding=ROUND_HALF_UP)),
        "share": _plain(level.share),
        "quantity": level.quantity,
        "value_eur": str(level.value_eur),
        "orders_count": level.orders_count,
    }


def ladder_json(ladder: Ladder | None) -> list[dict] | None:
    return ladder.as_data() if ladder is not None else None


def plan_json(plan: LiquidityPlan) -> dict:
    missing = plan.missing_assets
    return {
        "certificate_type": plan.certificate_type,
        "can_execute": plan.can_execute,
        "reference_price": str(plan.reference_price),
        "reference_outside_band": plan.reference_outside_band,
        "reference_source": plan.reference_source,
        "ladder": ladder_json(plan.ladder),
        "bid_plan": side_json(plan.bid_plan),
        "ask_plan": side_json(plan.ask_plan),
        "missing_assets": shortfall_json(missing) if missing else None,
        "shortfalls": [shortfall_json(s) for s in plan.shortfalls],
        "suggested_actions": list(plan.suggested_actions),
        "warnings": list(plan.warnings),
        "total_orders_count": plan.total_orders_count,
        "estimated_spread": str(plan.estimated_spread) if plan.estimated_spread else None,
        "estimated_spread_pct": (
            str(plan.estimated_spread_pct) if plan.estimated_spread_pct is not None else None
        ),
        "fingerprint": plan.fingerprint(),
    }


def operation_json(operation: LiquidityOperation, orders=None) -> dict:
    data = {
        "id": operation.pk,
        "program_id": operation.program_id,
        "ticket_id": operation.ticket.ticket_id,
        "certificate_type": operation.market.code,
        "state": selectors.operation_state(operation),
        "state_detail": selectors.deactivation_note(operation),
        "orders_cancelled_by_deactivation": operation.orders_deactivated,
        "sides": [
            {
                "side": side.side,
                "orders": side.orders,
                "orders_resting": side.orders_resting,
                "orders_cancelled_by_deactivation": side.orders_deactivated,
                "quantity_resting": side.quantity_resting,
            }
            for side in selectors.sides_remaining(operation)
        ],
        "fill_pct": str(selectors.fill_pct(operation)),
        "quantity_total": operation.quantity_total,
        "quantity_filled": operation.quantity_filled,
        "orders_resting": operation.orders_resting,
        "reference_price": str(operation.reference_price),
        "reference_outside_band": operation.reference_outside_band,
        "ladder": ladder_json(selectors.operation_ladder(operation)),
        "target_bid_eur": str(operation.target_bid_eur),
        "target_ask_eur": str(operation.target_ask_eur),
        "actual_bid_eur": str(operation.actual_bid_eur),
        "actual_ask_eur": str(operation.actual_ask_eur),
        "actual_ask_quantity": operation.actual_ask_quantity,
        "orders_created": operation.orders_created,
        "market_makers_used": [maker_used_json(used) for used in operation.market_makers_used],
        "notes": operation.notes,
        "created_by": operation.created_by.get_username(),
        "created_at": operation.created_at.isoformat(),
        "withdrawn_at": operation.withdrawn_at.isoformat() if operation.withdrawn_at else None,
    }
    if orders is not None:
        data["orders"] = [
            {
                "id": order.pk,
                "mm_code": order.owner.market_maker.code,
                "side": order.side,
                "price": str(order.price),
                "quantity": order.quantity,
                "filled_quantity": order.filled_quantity,
                "status": order.status,
            }
            for order in orders
        ]
    return data


def _request(payload: LiquidityIn):
    return liquidity_request_parse(
        market_code=payload.certificate_type,
        bid_amount_eur=payload.bid_amount_eur,
        ask_amount_eur=payload.ask_amount_eur,
        reference_price=payload.reference_price,
        notes=payload.notes,
        reference_outside_band=payload.reference_outside_band,
        ladder=None
        if payload.ladder is None
        else [level.model_dump() for level in payload.ladder],
    )


@router.post("/preview", response={200: PlanOut, 400: ValidationErrorOut, **COMMON})
def preview(request, payload: LiquidityIn):
    """The plan as the market stands now. Changes nothing."""
    return plan_json(liquidity_preview(request=_request(payload)))


@router.post(
    "/create",
    response={
        201: CreatedOut,
        200: CreatedOut,
        400: InsufficientAssetsOut | ValidationErrorOut,
        409: PlanChangedOut,
        **COMMON,
        422: IdempotencyKeyReusedOut | RequestErrorOut,
    },
)
def create(
    request,
    payload: CreateIn,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", max_length=64, pattern=KEY_PATTERN
    ),
):
    """Place the plan's orders in one transaction. A plan that no longer matches
    `fingerprint` answers 409 with the fresh plan; a short side answers 400
    `insufficient_assets` naming every shortfall.

    `Idempotency-Key` (per user, at most 64 characters): the same key with the same
    request (market, amounts, reference price, ladder, notes) answers 200 with the operation it
    made, whenever it is sent, even while the first call is still running; with a
    different request it answers 422 `idempotency_key_reused` and changes nothing."""
    liquidity_request = _request(payload)
    try:
        operation = liquidity_execute(
            request=liquidity_request,
            user=request.user,
            fingerprint=payload.fingerprint,
            idempotency_key=idempotency_key,
            ip=client_ip(request),
        )
    except IdempotencyKeyReused as error:
        return Status(422, {"error": "idempotency_key_reused", "message": error.messages[0]})
    except InsufficientAssets as error:
        plan = error.plan
        first = plan.missing_assets
        body = {
            "error": "insufficient_assets",
            "message": error.messages[0],
            "missing_assets": shortfall_json(first) if first else None,
            "shortfalls": [shortfall_json(s) for s in plan.shortfalls],
            "suggested_actions": list(plan.suggested_actions),
        }
        if first:
            body.update(shortfall_json(first))
        return Status(400, body)
    except PlanChanged as error:
        return Status(
            409,
            {
                "error": "plan_changed",
                "message": error.messages[0],
                "plan": plan_json(error.plan),
            },
        )
    replayed = operation.replayed
    operation = selectors.operation_detail(operation_id=operation.pk)
    return Status(
        200 if replayed else 201,
        {
            "success": True,
            "liquidity_operation_id": operation.pk,
            "ticket_id": operation.ticket.ticket_id,
            "orders_created": operation.orders_created,
            "bid_liquidity_eur": str(operation.actual_bid_eur),
            "ask_liquidity_eur": str(operation.actual_ask_eur),
            "ask_quantity": operation.actual_ask_quantity,
            "reference_price": str(operation.reference_price),
            "ladder": ladder_json(selectors.operation_ladder(operation)),
            "market_makers_used": [maker_used_json(used) for used in operation.market_makers_used],
        },
    )


@router.post("/provision", response={201: ProvisionedOut, 400: ValidationErrorOut, **COMMON})
def provision(request, payload: ProvisionIn):
    """Create N market makers sharing a total (`create_new`), or fund the listed ones with
    an amount each (`fund_existing`). Needs the market-maker permission too, as on the
    Create Liquidity page."""
    if not request.user.has_perm(MANAGE_MARKET_MAKERS):
        raise AuthorizationError(message="Provisioning needs the market-maker permission.")
    asset = payload.asset
    if asset is None:
        if payload.mm_type == ASSET_HOLDER:
            raise ValidationError(
                {"asset": "Name the certificate to provision an asset holder with, e.g. CEA."}
            )
        asset = EUR
    if payload.action == "create_new":
        created = market_makers_create_bulk(
            count=payload.count or 1,
            mm_type=payload.mm_type,
            asset=asset,
            total_amount=payload.amount,
            name_prefix=payload.name_prefix,
            created_by=request.user,
            ip=client_ip(request),
        )
        makers = [result.market_maker for result in created]
    else:
        ids = payload.mm_ids or []
        market_makers_fund_bulk(
            market_makers=ids,
            asset=asset,
            amount_each=payload.amount,
            actor=request.user,
            ip=client_ip(request),
        )
        makers = list(MarketMakerClient.objects.filter(pk__in=ids).order_by("pk"))
    return Status(
        201,
        {
            "success": True,
            "action": payload.action,
            "market_makers": [
                {"mm_id": m.pk, "mm_code": m.code, "mm_name": m.name} for m in makers
            ],
        },
    )


class OperationFiltersIn(Schema):
    certificate_type: str | None = None
    created_by: Id | None = None
    program: Id | None = Field(None, description="Only this liquidity program's refreshes")
    date_from: date | None = None
    date_to: date | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


@router.get("/operations", response={200: OperationsOut, **HOSTILE_INPUT, **COMMON})
def operations(request, filters: Query[OperationFiltersIn]):
    """Operations, newest first, with their state and fill progress."""
    queryset = selectors.operations_list(
        filters=selectors.OperationFilters(
            market=filters.certificate_type,
            created_by=filters.created_by,
            program=filters.program,
            date_from=filters.date_from,
            date_to=filters.date_to,
        )
    )
    page = queryset[filters.offset : filters.offset + filters.limit]
    return {
        "count": queryset.count(),
        "items": [operation_json(operation) for operation in page],
    }


@router.get(
    "/operations/{operation_id}",
    response={200: OperationDetailOut, 404: NotFoundOut, **HOSTILE_INPUT, **COMMON},
)
def operation(request, operation_id: int):
    found = selectors.operation_detail(operation_id=operation_id)
    if found is None:
        return Status(404, {"error": "not_found", "message": f"No operation {operation_id}."})
    return operation_json(found, selectors.operation_orders(operation=found))


@router.post(
    "/operations/{operation_id}/withdraw",
    response={
        200: WithdrawnOut,
        404: NotFoundOut,
        409: NothingToWithdrawOut,
        **HOSTILE_INPUT,
        **COMMON,
    },
)
def withdraw(request, operation_id: int):
    """Cancel the operation's still-resting orders and release their funds. An operation
    with none left (withdrawn, filled, or cancelled by market-maker deactivation) answers
    409 `nothing_to_withdraw`, and nothing is written."""
    found = LiquidityOperation.objects.filter(pk=operation_id).first()
    if found is None:
        return Status(404, {"error": "not_found", "message": f"No operation {operation_id}."})
    try:
        cancelled = liquidity_withdraw(operation=found, user=request.user, ip=client_ip(request))
    except NothingToWithdraw as error:
        return Status(409, {"error": "nothing_to_withdraw", "message": error.messages[0]})
    found = selectors.operation_detail(operation_id=operation_id)
    return {
        "success": True,
        "orders_cancelled": len(cancelled),
        "operation": operation_json(found),
    }
