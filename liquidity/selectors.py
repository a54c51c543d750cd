"""Reads of liquidity operations: lists with fill progress, one operation with its orders."""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from liquidity.models import LiquidityOperation
from market.models import Order

ORDERS = "ticket__placed_orders"  # an operation's orders are those its ticket placed
RESTING = Q(**{f"{ORDERS}__status__in": Order.RESTING})


class OperationState:
    ACTIVE = "active"
    PARTLY_FILLED = "partly filled"
    FILLED = "filled"
    WITHDRAWN = "withdrawn"


def with_progress(queryset: QuerySet[LiquidityOperation]) -> QuerySet[LiquidityOperation]:
    """Annotate fill progress in the same query: ordered, filled and still-resting counts."""
    return queryset.select_related("market", "ticket", "created_by").annotate(
        quantity_total=Coalesce(Sum(f"{ORDERS}__quantity"), 0),
        quantity_filled=Coalesce(Sum(f"{ORDERS}__filled_quantity"), 0),
        orders_resting=Count(ORDERS, filter=RESTING),
    )


def operation_state(operation: LiquidityOperation) -> str:
    if operation.quantity_total and operation.quantity_filled >= operation.quantity_total:
        return OperationState.FILLED
    if operation.withdrawn_at is not None:
        return OperationState.WITHDRAWN
    if operation.quantity_filled:
        return OperationState.PARTLY_FILLED
    return OperationState.ACTIVE


def fill_pct(operation: LiquidityOperation) -> Decimal:
    """Certificates filled in % of those ordered, to one decimal, rounded down so a
    partly filled operation never shows 100 %."""
    if not operation.quantity_total:
        return Decimal("0.0")
    pct = Decimal(operation.quantity_filled * 100) / operation.quantity_total
    return pct.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


@dataclass(frozen=True)
class OperationFilters:
    market: str | None = None
    created_by: int | None = None
    date_from: date | None = None
    date_to: date | None = None


def operations_list(*, filters: OperationFilters = OperationFilters()):
    """Operations newest first with their progress; slice it to paginate."""
    queryset = LiquidityOperation.objects.all()
    if filters.market:
        queryset = queryset.filter(market__code=filters.market.upper())
    if filters.created_by:
        queryset = queryset.filter(created_by_id=filters.created_by)
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


def operation_rows(operations) -> list[OperationRow]:
    """Rows for operations annotated by `with_progress`; no query of their own."""
    return [
        OperationRow(operation, operation_state(operation), fill_pct(operation))
        for operation in operations
    ]
