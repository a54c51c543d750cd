"""Reads of liquidity operations: lists with fill progress, one operation with its orders."""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from liquidity.ladder import Ladder, ladder_parse
from liquidity.models import LiquidityOperation, ProgramRefresh
from market.models import Order
from market.services.market_makers import DEACTIVATION_REASON

ORDERS = "ticket__placed_orders"  # an operation's orders are those its ticket placed
RESTING = Q(**{f"{ORDERS}__status__in": Order.RESTING})
# Cancelled because their market maker was deactivated (`market_maker_deactivate`), not
# by a withdrawal: derived from the orders, so the operation needs no field of its own.
DEACTIVATED = Q(
    **{
        f"{ORDERS}__status": Order.Status.CANCELLED,
        f"{ORDERS}__status_reason": DEACTIVATION_REASON,
    }
)
SIDES = (("BID", Order.Side.BUY), ("ASK", Order.Side.SELL))


class OperationState:
    ACTIVE = "active"
    PARTLY_FILLED = "partly filled"
    FILLED = "filled"
    WITHDRAWN = "withdrawn"
    # Some orders cancelled by market-maker deactivation, others still resting.
    PARTLY_CANCELLED = "partly cancelled"
    # Nothing resting any more: every order not filled was cancelled by deactivation.
    CANCELLED = "cancelled"


def _side_annotations() -> dict:
    annotations = {}
    for label, side in SIDES:
        on_side = Q(**{f"{ORDERS}__side": side})
        key = label.lower()
        annotations |= {
            f"{key}_orders": Count(ORDERS, filter=on_side),
            f"{key}_orders_resting": Count(ORDERS, filter=on_side & RESTING),
            f"{key}_orders_deactivated": Count(ORDERS, filter=on_side & DEACTIVATED),
            f"{key}_quantity_resting": Coalesce(
                Sum(
                    F(f"{ORDERS}__quantity") - F(f"{ORDERS}__filled_quantity"),
                    filter=on_side & RESTING,
                ),
                0,
            ),
        }
    return annotations


def with_progress(queryset: QuerySet[LiquidityOperation]) -> QuerySet[LiquidityOperation]:
    """Annotate fill progress in the same query: ordered, filled and still-resting counts,
    the orders cancelled by market-maker deactivation, and per side (`bid_…`, `ask_…`)
    the orders placed, resting and cancelled by deactivation and the certificates still
    resting."""
    return queryset.select_related(
        "market", "ticket", "created_by", "withdrawn_by", "program"
    ).annotate(
        quantity_total=Coalesce(Sum(f"{ORDERS}__quantity"), 0),
        quantity_filled=Coalesce(Sum(f"{ORDERS}__filled_quantity"), 0),
        orders_resting=Count(ORDERS, filter=RESTING),
        orders_deactivated=Count(ORDERS, filter=DEACTIVATED),
        **_side_annotations(),
    )


def operation_state(operation: LiquidityOperation) -> str:
    if operation.quantity_total and operation.quantity_filled >= operation.quantity_total:
        return OperationState.FILLED
    if operation.withdrawn_at is not None:
        return OperationState.WITHDRAWN
    if operation.orders_deactivated:
        return (
            OperationState.PARTLY_CANCELLED
            if operation.orders_resting
            else OperationState.CANCELLED
        )
    if operation.quantity_filled:
        return OperationState.PARTLY_FILLED
    return OperationState.ACTIVE


@dataclass(frozen=True)
class SideRemaining:
    """What is left of one side of an operation (annotated by `with_progress`)."""

    side: str  # BID or ASK
    orders: int
    orders_resting: int
    orders_deactivated: int
    quantity_resting: int


def sides_remaining(operation: LiquidityOperation) -> list[SideRemaining]:
    """Per side that placed orders, what still rests and what deactivation cancelled."""
    sides = []
    for label, _ in SIDES:
        key = label.lower()
        if getattr(operation, f"{key}_orders"):
            sides.append(
                SideRemaining(
                    side=label,
                    orders=getattr(operation, f"{key}_orders"),
                    orders_resting=getattr(operation, f"{key}_orders_resting"),
                    orders_deactivated=getattr(operation, f"{key}_orders_deactivated"),
                    quantity_resting=getattr(operation, f"{key}_quantity_resting"),
                )
            )
    return sides


def _orders(count: int) -> str:
    return f"{count} order{'' if count == 1 else 's'}"


def deactivation_note(operation: LiquidityOperation) -> str:
    """ "3 of 12 orders cancelled by market-maker deactivation", or "" if none were."""
    if not operation.orders_deactivated:
        return ""
    total = sum(side.orders for side in sides_remaining(operation))
    cancelled = operation.orders_deactivated
    return f"{cancelled} of {_orders(total)} cancelled by market-maker deactivation"


def fill_pct(operation: LiquidityOperation) -> Decimal:
    """Certificates filled in % of those ordered, to one decimal, rounded down so a
    partly filled operation never shows 100 %."""
    if not operation.quantity_total:
        return Decimal("0.0")
    pct = Decimal(operation.quantity_filled * 100) / operation.quantity_total
    return pct.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


def operation_ladder(operation: LiquidityOperation) -> Ladder | None:
    """The ladder `operation` placed (operations recorded before ladders were used the
    default); None if the record cannot be read (edited by hand). No query."""
    try:
        return ladder_parse(operation.ladder or None)
    except ValidationError:
        return None


@dataclass(frozen=True)
class OperationFilters:
    market: str | None = None
    created_by: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    program: int | None = None  # a liquidity program's refreshes only


def operation_creators() -> list:
    """Every user who created an operation, by username (the "created by" filter). One
    query."""
    return list(
        get_user_model()
        .objects.filter(liquidity_operations__isnull=False)
        .distinct()
        .order_by("username")
    )


def operations_list(*, filters: OperationFilters = OperationFilters()):
    """Operations newest first with their progress; slice it to paginate."""
    queryset = LiquidityOperation.objects.all()
    if filters.market:
        queryset = queryset.filter(market__code=filters.market.upper())
    if filters.created_by:
        queryset = queryset.filter(created_by_id=filters.created_by)
    if filters.program:
        queryset = queryset.filter(program_id=filters.program)
    if filters.date_from:
        queryset = queryset.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        queryset = queryset.filter(created_at__date__lte=filters.date_to)
    return with_progress(queryset).order_by("-id")


def operation_detail(*, operation_id: int) -> LiquidityOperation | None:
    return with_progress(LiquidityOperation.objects.filter(pk=operation_id)).first()


def operation_orders(*, operation: LiquidityOperation) -> list[Order]:
    """The operation's orders, each with its market maker, in one query."""
    return list(
        operation.orders.select_related("owner__market_maker", "market").order_by(
            "side", "price", "id"
        )
    )


@dataclass(frozen=True)
class OperationRow:
    """An operation (annotated by `with_progress`) as lists show it."""

    operation: LiquidityOperation
    state: str
    fill_pct: Decimal
    deactivation_note: str = ""
    sides: tuple[SideRemaining, ...] = ()
    ladder: Ladder | None = None


def operation_rows(operations) -> list[OperationRow]:
    """Rows for operations annotated by `with_progress`; no query of their own."""
    return [
        OperationRow(
            operation,
            operation_state(operation),
            fill_pct(operation),
            deactivation_note(operation),
            tuple(sides_remaining(operation)),
            operation_ladder(operation),
        )
        for operation in operations
    ]


# ------------------------------------------------------------------------ program refreshes


@dataclass(frozen=True)
class RefreshFilters:
    program: int | None = None
    outcome: str | None = None
    since: date | None = None
    until: date | None = None


def program_refreshes(*, filters: RefreshFilters = RefreshFilters()) -> QuerySet[ProgramRefresh]:
    """Refreshes of every program (or one), newest first."""
    queryset = ProgramRefresh.objects.all()
    if filters.program:
        queryset = queryset.filter(program_id=filters.program)
    if filters.outcome:
        queryset = queryset.filter(outcome=filters.outcome)
    if filters.since:
        queryset = queryset.filter(created_at__date__gte=filters.since)
    if filters.until:
        queryset = queryset.filter(created_at__date__lte=filters.until)
    return queryset.order_by("-id")
