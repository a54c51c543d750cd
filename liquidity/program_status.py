"""Reads of liquidity programs: the list, and one program's status (what a market maker's
`status` screen shows): the reference, the ladder resting, the makers' inventory, fills
and P&L since start, the refreshes, warnings and alerts.

A constant number of queries whatever the number of programs, makers or orders: the
status page polls it, and so do `manage.py liquidity_status` and the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Case, Count, F, Min, Q, Sum, Value, When
from django.utils import timezone

from liquidity import program_rules as rules
from liquidity.models import LiquidityAlert, LiquidityProgram, ProgramRefresh
from liquidity.programs import (
    active_hours,
    program_inputs,
    program_settings,
)
from market.core.makers import book_side_of, side_asset
from market.db.orders import MarketRead
from market.models import Balance, MarketMakerClient, Order

MAKERS_SHOWN = 50
REFRESHES_SHOWN = 10
ZERO = Decimal("0")


@dataclass(frozen=True)
class LadderRow:
    """One price level of the ladder resting now."""

    side: str  # BID or ASK
    level: int  # 1 = nearest the reference
    price: Decimal
    distance_pct: Decimal | None  # from the reference now, 2 places
    quantity: int  # certificates still resting
    orders: int
    placed_at: datetime

    @property
    def value_eur(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True)
class MakerInventory:
    code: str
    name: str
    mm_type: str
    asset: str
    available: Decimal
    locked: Decimal
    value_eur: Decimal | None  # at the reference


@dataclass(frozen=True)
class ProgramStatus:
    program: LiquidityProgram
    now: datetime
    reference: Decimal | None
    ladder_reference: Decimal | None
    hours: str
    in_hours: bool
    ladder: tuple[LadderRow, ...]
    bid_resting_eur: Decimal
    ask_resting_eur: Decimal
    makers: tuple[MakerInventory, ...]
    makers_count: int
    inventory_totals: dict[str, tuple[Decimal, Decimal]]  # asset -> (available, locked)
    position: rules.Position
    pnl: rules.MarkToMarket | None
    last_refresh: ProgramRefresh | None
    refreshes: tuple[ProgramRefresh, ...]
    alerts: tuple[LiquidityAlert, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def next_refresh_at(self) -> datetime | None:
        return self.program.next_refresh_at

    @property
    def makers_hidden(self) -> int:
        return max(0, self.makers_count - len(self.makers))


def programs_list():
    """Programs, running ones first, with their market, open alerts and resting orders
    counted in the same query."""
    running = Q(state__in=[LiquidityProgram.State.ACTIVE, LiquidityProgram.State.PAUSED])
    return (
        LiquidityProgram.objects.select_related("market", "operation")
        .annotate(
            open_alerts=Count("alerts", filter=Q(alerts__resolved_at__isnull=True), distinct=True)
        )
        .annotate(not_running=Case(When(running, then=Value(0)), default=Value(1)))
        .order_by("not_running", "market__code", "-pk")
    )


def program_status(*, program_id: int, now: datetime | None = None) -> ProgramStatus | None:
    """The status of program `program_id` now, or None if there is none."""
    program = (
        LiquidityProgram.objects.select_related("market", "operation", "activated_by")
        .filter(pk=program_id)
        .first()
    )
    if program is None:
        return None
    now = now or timezone.now()
    market = MarketRead(market_id=program.market_id).rules(today=now.date())
    inputs = program_inputs(program, market)
    reference = inputs.reference
    ladder = _ladder_rows(program, reference)
    bid_resting = sum((row.value_eur for row in ladder if row.side == "BID"), ZERO)
    ask_resting = sum((row.value_eur for row in ladder if row.side == "ASK"), ZERO)
    makers, count, totals = _inventory(program, reference)
    refreshes = tuple(
        ProgramRefresh.objects.filter(program=program)
        .select_related("operation__ticket", "ticket")
        .order_by("-pk")[:REFRESHES_SHOWN]
    )
    alerts = tuple(
        LiquidityAlert.objects.filter(program=program, resolved_at__isnull=True).order_by("pk")
    )
    hours = active_hours(program)
    status = ProgramStatus(
        program=program,
        now=now,
        reference=reference,
        ladder_reference=program.ladder_reference,
        hours=hours.describe(),
        in_hours=hours.contains(now),
        ladder=ladder,
        bid_resting_eur=bid_resting,
        ask_resting_eur=ask_resting,
        makers=makers,
        makers_count=count,
        inventory_totals=totals,
        position=inputs.position,
        pnl=rules.mark_to_market(inputs.position, reference=reference) if reference else None,
        last_refresh=refreshes[0] if refreshes else None,
        refreshes=refreshes,
        alerts=alerts,
    )
    return _with_warnings(status, market, inputs.reference_error)


def _ladder_rows(program: LiquidityProgram, reference: Decimal | None) -> tuple[LadderRow, ...]:
    if program.operation_id is None:
        return ()
    rows = (
        Order.objects.filter(ticket_id=program.operation.ticket_id, status__in=Order.RESTING)
        .values("side", "price")
        .annotate(
            remaining=Sum(F("quantity") - F("filled_quantity")),
            orders=Count("pk"),
            placed_at=Min("created_at"),
        )
    )
    bids = sorted((r for r in rows if r["side"] == "BUY"), key=lambda r: -r["price"])
    asks = sorted((r for r in rows if r["side"] == "SELL"), key=lambda r: r["price"])
    ladder = []
    for side, side_rows in (("BID", bids), ("ASK", asks)):
        for level, row in enumerate(side_rows, start=1):
            distance = None
            if reference:
                distance = (abs(row["price"] - reference) * 100 / reference).quantize(
                    Decimal("0.01")
                )
            ladder.append(
                LadderRow(
                    side,
                    level,
                    row["price"],
                    distance,
                    row["remaining"],
                    row["orders"],
                    row["placed_at"],
                )
            )
    return tuple(ladder)


def _inventory(program: LiquidityProgram, reference: Decimal | None):
    """The active makers' funds for this market (EUR of providers, the certificate of
    holders): the first `MAKERS_SHOWN` by code, their number, and totals per asset."""
    code = program.market.code
    funded = Q()
    for mm_type in MarketMakerClient.Type.values:
        funded |= Q(
            holder__market_maker__mm_type=mm_type,
            asset=side_asset(book_side_of(mm_type), code),
        )
    balances = Balance.objects.filter(funded, holder__market_maker__is_active=True)
    totals = {
        row["asset"]: (row["available"] or ZERO, row["locked"] or ZERO)
        for row in balances.values("asset").annotate(
            available=Sum("available"), locked=Sum("locked")
        )
    }
    count = balances.count()
    shown = []
    for maker_code, name, mm_type, asset, available, locked in balances.order_by(
        "holder__market_maker__code"
    ).values_list(
        "holder__market_maker__code",
        "holder__market_maker__name",
        "holder__market_maker__mm_type",
        "asset",
        "available",
        "locked",
    )[:MAKERS_SHOWN]:
        held = available + locked
        value = held if asset == "EUR" else (held * reference if reference else None)
        shown.append(MakerInventory(maker_code, name, mm_type, asset, available, locked, value))
    return tuple(shown), count, totals


def _with_warnings(status: ProgramStatus, market, reference_error) -> ProgramStatus:
    program = status.program
    warnings = []
    if reference_error:
        warnings.append(reference_error)
    if program.state == LiquidityProgram.State.PAUSED:
        warnings.append("Paused: its orders stay in the book and no worker refreshes it.")
    if program.last_error:
        warnings.append(f"The last refresh could not run: {program.last_error}")
    if program.state == LiquidityProgram.State.ACTIVE and not status.in_hours:
        warnings.append(f"Outside active hours ({status.hours}): nothing rests until they start.")
    reference = status.reference
    if reference is not None and program.state in (
        LiquidityProgram.State.ACTIVE,
        LiquidityProgram.State.PAUSED,
    ):
        _, _, withheld = rules.side_targets(
            program_settings(program), reference=reference, position=status.position
        )
        warnings.extend(withheld)
        band = market.band
        if band is not None:
            if not band.contains(reference):
                warnings.append(
                    f"The reference €{reference:,} lies outside today's price band "
                    f"{band.describe()}."
                )
            elif any(row.price <= band.low or row.price >= band.high for row in status.ladder):
                warnings.append(
                    f"The ladder reached the edge of the price band {band.describe()}."
                )
        threshold = program.replenish_threshold_pct
        for side, resting, target in (
            ("BID", status.bid_resting_eur, program.bid_target_eur),
            ("ASK", status.ask_resting_eur, program.ask_target_eur),
        ):
            if status.ladder and target and resting < target * (100 - threshold) / 100:
                warnings.append(
                    f"The {side} side rests €{resting:,.2f} of its €{target:,.2f} target."
                )
    for alert in status.alerts:
        if alert.kind == LiquidityAlert.Kind.MAKER_LOW_FUNDS:
            warnings.append(alert.message)
    return ProgramStatus(**{**status.__dict__, "warnings": tuple(warnings)})


@dataclass(frozen=True)
class KillSwitchReach:
    """What stopping would touch: the programs running (active or paused) and the
    orders they have resting."""

    programs: int
    orders_resting: int


def kill_switch_reach(*, program_id: int | None = None) -> KillSwitchReach:
    """What the kill switch (or, with `program_id`, stopping that program) would stop
    and withdraw now: two queries."""
    running = LiquidityProgram.objects.filter(
        state__in=[LiquidityProgram.State.ACTIVE, LiquidityProgram.State.PAUSED]
    )
    if program_id is not None:
        running = running.filter(pk=program_id)
    orders = Order.objects.filter(
        ticket__liquidity_operation__program__in=running, status__in=Order.RESTING
    )
    return KillSwitchReach(running.count(), orders.count())


def open_alerts() -> list[LiquidityAlert]:
    """The open alerts of every program, oldest first, with their program: one query."""
    return list(
        LiquidityAlert.objects.filter(resolved_at__isnull=True)
        .select_related("program")
        .order_by("created_at", "pk")
    )


def open_alerts_count() -> int:
    """How many alerts are open, over every program (the navigation's badge)."""
    return LiquidityAlert.objects.filter(resolved_at__isnull=True).count()


__all__ = [
    "KillSwitchReach",
    "LadderRow",
    "MakerInventory",
    "ProgramStatus",
    "kill_switch_reach",
    "open_alerts",
    "open_alerts_count",
    "program_status",
    "programs_list",
]
