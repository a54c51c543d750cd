"""JSON API for liquidity programs: standing targets per market that workers keep placed
(`liquidity.programs`, read by `liquidity.program_status`). Mounted under
`/api/v1/liquidity/` beside `liquidity.api`, with the same authentication and error
shapes. A program's settings are those of `liquidity.programs.SETTINGS`; unknown keys
are refused (422)."""

from datetime import datetime, time
from decimal import Decimal
from typing import Literal

from django.core.exceptions import ValidationError
from ninja import Field, Query, Router, Schema, Status

from config.api_schemas import COMMON, HOSTILE_INPUT, Id, NotFoundOut, Out, ValidationErrorOut
from config.api_schemas import In as Forbid
from config.http import client_ip
from liquidity.api import Money, Percent
from liquidity.models import LiquidityAlert, LiquidityProgram, ProgramRefresh
from liquidity.program_status import ProgramStatus, program_status, programs_list
from liquidity.programs import (
    Stopped,
    program_activate,
    program_create,
    program_ladder,
    program_pause,
    program_stop,
    program_update,
    programs_kill,
)

router = Router(tags=["Liquidity programs"])

CENT = Decimal("0.01")
StateName = Literal["draft", "active", "paused", "stopped"]


# --- requests ----------------------------------------------------------------------------


class LadderLevelIn(Forbid):
    distance_pct: Percent = Field(examples=["0.2"])
    share_pct: Percent = Field(examples=["50"])


class ProgramChangeIn(Forbid):
    """Settings to change; those left out are kept. `null` clears an optional one."""

    name: str | None = Field(None, examples=["CEA standing"])
    certificate_type: str | None = Field(None, examples=["CEA"])
    bid_target_eur: Money | None = Field(None, examples=["100000.00"])
    ask_target_eur: Money | None = Field(None, examples=["50000.00"])
    ladder: list[LadderLevelIn] | str | None = Field(
        None,
        description="Levels best first, shares adding up to 100; or the text notation "
        '"0.2:50, 0.4:30, 0.5:20". null or "" is the default ladder.',
    )
    reference_mode: Literal["book", "fixed"] | None = None
    fixed_reference_price: Money | None = Field(None, examples=["14.00"])
    refresh_interval_seconds: int | None = Field(None, examples=[60])
    refresh_tolerance_pct: Percent | None = Field(None, examples=["0.5"])
    replenish_threshold_pct: Percent | None = Field(None, examples=["30"])
    replenish_delay_seconds: int | None = Field(None, examples=[30])
    price_floor: Money | None = None
    price_ceiling: Money | None = None
    max_imbalance_eur: Money | None = None
    active_from: str | None = Field(None, examples=["08:00"], description="HH:MM")
    active_until: str | None = Field(None, examples=["18:00"], description="HH:MM")
    active_weekdays: str | None = Field(None, examples=["12345"], description="ISO, 1 = Monday")
    timezone: str | None = Field(None, examples=["Europe/Berlin"])
    low_funds_eur: Money | None = None
    alert_after_refreshes: int | None = Field(None, examples=[3])
    notes: str | None = None


class ProgramIn(ProgramChangeIn):
    """A new program (draft): a name and a market, and the settings that differ from the
    defaults (at least one target above zero)."""

    name: str = Field(examples=["CEA standing"])
    certificate_type: str = Field(examples=["CEA"])


class ProgramFiltersIn(Schema):
    state: StateName | None = None
    certificate_type: str | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


def _settings_given(payload: ProgramChangeIn) -> dict:
    """What the request names, as the service reads it (levels as plain objects)."""
    return payload.model_dump(exclude_unset=True)


# --- responses ---------------------------------------------------------------------------


class LadderLevelOut(Out):
    distance_pct: str
    share_pct: str


class ProgramOut(Out):
    id: int
    name: str
    certificate_type: str
    state: StateName
    bid_target_eur: str
    ask_target_eur: str
    ladder: list[LadderLevelOut]
    reference_mode: Literal["book", "fixed"]
    fixed_reference_price: str | None
    refresh_interval_seconds: int
    refresh_tolerance_pct: str
    replenish_threshold_pct: str
    replenish_delay_seconds: int
    price_floor: str | None
    price_ceiling: str | None
    max_imbalance_eur: str | None
    active_from: str | None = Field(description="HH:MM in `timezone`; null: all day")
    active_until: str | None
    active_weekdays: str
    timezone: str
    low_funds_eur: str | None
    alert_after_refreshes: int
    notes: str
    created_by: str
    created_at: str
    activated_by: str | None
    started_at: str | None
    stopped_at: str | None
    last_refresh_at: str | None
    next_refresh_at: str | None
    operation_id: int | None = Field(description="The operation whose ladder rests now")
    ladder_reference: str | None
    consecutive_failures: int
    last_error: str
    open_alerts: int


class ProgramsOut(Out):
    count: int
    items: list[ProgramOut]


class TransitionRefusedOut(Out):
    """409: the program's state does not allow it (e.g. pausing a draft, activating a
    second program on a market); nothing was changed."""

    error: str = Field(examples=["invalid_transition"])
    message: str


class StoppedOut(Out):
    program: ProgramOut
    orders_withdrawn: int
    released: dict[str, str] = Field(description="Funds released per asset")
    ticket_id: str


class KilledOut(Out):
    programs_stopped: list[int]
    orders_withdrawn: int
    released: dict[str, str]
    ticket_id: str


class LadderRowOut(Out):
    side: Literal["BID", "ASK"]
    level: int
    price: str
    distance_pct: str | None
    quantity: int
    orders: int
    value_eur: str
    placed_at: str


class MakerOut(Out):
    code: str
    name: str
    mm_type: str
    asset: str
    available: str
    locked: str
    value_eur: str | None


class InventoryTotalOut(Out):
    asset: str
    available: str
    locked: str


class PositionOut(Out):
    bought_quantity: int
    bought_eur: str
    sold_quantity: int
    sold_eur: str
    fees_eur: str
    net_quantity: int


class PnlOut(Out):
    reference: str
    cash_eur: str
    inventory_eur: str
    fees_eur: str
    pnl_eur: str


class RefreshOut(Out):
    id: int
    outcome: str
    reason: str
    operation_id: int | None
    ticket_id: str | None
    reference_price: str | None
    orders_withdrawn: int
    orders_placed: int
    bid_placed_eur: str
    ask_placed_eur: str
    worker: str
    created_at: str


class AlertOut(Out):
    id: int
    kind: str
    subject: str
    message: str
    created_at: str


class StatusOut(Out):
    program: ProgramOut
    now: str
    reference: str | None
    ladder_reference: str | None
    hours: str
    in_hours: bool
    ladder: list[LadderRowOut]
    bid_resting_eur: str
    ask_resting_eur: str
    makers: list[MakerOut] = Field(description="The first 50 by code")
    makers_count: int
    inventory_totals: list[InventoryTotalOut]
    position: PositionOut
    pnl: PnlOut | None
    last_refresh_at: str | None
    next_refresh_at: str | None
    last_refresh: RefreshOut | None
    refreshes: list[RefreshOut] = Field(description="The last 10, newest first")
    alerts: list[AlertOut] = Field(description="Open alerts")
    warnings: list[str]


def _text(value) -> str | None:
    return None if value is None else str(value)


def _cents(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(CENT))


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _hhmm(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


def program_json(program: LiquidityProgram, *, open_alerts: int) -> dict:
    return {
        "id": program.pk,
        "name": program.name,
        "certificate_type": program.market.code,
        "state": program.state,
        "bid_target_eur": str(program.bid_target_eur),
        "ask_target_eur": str(program.ask_target_eur),
        "ladder": program_ladder(program).as_data(),
        "reference_mode": program.reference_mode,
        "fixed_reference_price": _text(program.fixed_reference_price),
        "refresh_interval_seconds": program.refresh_interval_seconds,
        "refresh_tolerance_pct": str(program.refresh_tolerance_pct),
        "replenish_threshold_pct": str(program.replenish_threshold_pct),
        "replenish_delay_seconds": program.replenish_delay_seconds,
        "price_floor": _text(program.price_floor),
        "price_ceiling": _text(program.price_ceiling),
        "max_imbalance_eur": _text(program.max_imbalance_eur),
        "active_from": _hhmm(program.active_from),
        "active_until": _hhmm(program.active_until),
        "active_weekdays": program.active_weekdays,
        "timezone": program.timezone,
        "low_funds_eur": _text(program.low_funds_eur),
        "alert_after_refreshes": program.alert_after_refreshes,
        "notes": program.notes,
        "created_by": program.created_by.get_username(),
        "created_at": program.created_at.isoformat(),
        "activated_by": program.activated_by.get_username() if program.activated_by else None,
        "started_at": _when(program.started_at),
        "stopped_at": _when(program.stopped_at),
        "last_refresh_at": _when(program.last_refresh_at),
        "next_refresh_at": _when(program.next_refresh_at),
        "operation_id": program.operation_id,
        "ladder_reference": _text(program.ladder_reference),
        "consecutive_failures": program.consecutive_failures,
        "last_error": program.last_error,
        "open_alerts": open_alerts,
    }


def refresh_json(refresh: ProgramRefresh) -> dict:
    return {
        "id": refresh.pk,
        "outcome": refresh.outcome,
        "reason": refresh.reason,
        "operation_id": refresh.operation_id,
        "ticket_id": refresh.ticket.ticket_id if refresh.ticket_id else None,
        "reference_price": _text(refresh.reference_price),
        "orders_withdrawn": refresh.orders_withdrawn,
        "orders_placed": refresh.orders_placed,
        "bid_placed_eur": str(refresh.bid_placed_eur),
        "ask_placed_eur": str(refresh.ask_placed_eur),
        "worker": refresh.worker,
        "created_at": refresh.created_at.isoformat(),
    }


def alert_json(alert: LiquidityAlert) -> dict:
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "subject": alert.subject,
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
    }


def status_json(status: ProgramStatus) -> dict:
    position, pnl = status.position, status.pnl
    return {
        "program": program_json(status.program, open_alerts=len(status.alerts)),
        "now": status.now.isoformat(),
        "reference": _text(status.reference),
        "ladder_reference": _text(status.ladder_reference),
        "hours": status.hours,
        "in_hours": status.in_hours,
        "ladder": [
            {
                "side": row.side,
                "level": row.level,
                "price": str(row.price),
                "distance_pct": _text(row.distance_pct),
                "quantity": row.quantity,
                "orders": row.orders,
                "value_eur": str(row.value_eur),
                "placed_at": row.placed_at.isoformat(),
            }
            for row in status.ladder
        ],
        "bid_resting_eur": str(status.bid_resting_eur),
        "ask_resting_eur": str(status.ask_resting_eur),
        "makers": [
            {
                "code": maker.code,
                "name": maker.name,
                "mm_type": maker.mm_type,
                "asset": maker.asset,
                "available": str(maker.available),
                "locked": str(maker.locked),
                "value_eur": _cents(maker.value_eur),
            }
            for maker in status.makers
        ],
        "makers_count": status.makers_count,
        "inventory_totals": [
            {"asset": asset, "available": str(available), "locked": str(locked)}
            for asset, (available, locked) in sorted(status.inventory_totals.items())
        ],
        "position": {
            "bought_quantity": position.bought_quantity,
            "bought_eur": str(position.bought_eur),
            "sold_quantity": position.sold_quantity,
            "sold_eur": str(position.sold_eur),
            "fees_eur": str(position.fees_eur),
            "net_quantity": position.net_quantity,
        },
        "pnl": None
        if pnl is None
        else {
            "reference": str(pnl.reference),
            "cash_eur": str(pnl.cash_eur),
            "inventory_eur": str(pnl.inventory_eur),
            "fees_eur": str(pnl.fees_eur),
            "pnl_eur": str(pnl.pnl_eur),
        },
        "last_refresh_at": _when(status.program.last_refresh_at),
        "next_refresh_at": _when(status.next_refresh_at),
        "last_refresh": refresh_json(status.last_refresh) if status.last_refresh else None,
        "refreshes": [refresh_json(refresh) for refresh in status.refreshes],
        "alerts": [alert_json(alert) for alert in status.alerts],
        "warnings": list(status.warnings),
    }


def _listed():
    return programs_list().select_related("created_by", "activated_by")


def _program_body(program_id: int) -> dict:
    program = _listed().get(pk=program_id)
    return program_json(program, open_alerts=program.open_alerts)


def _not_found(program_id: int):
    return Status(404, {"error": "not_found", "message": f"No liquidity program {program_id}."})


def _refused(error: ValidationError):
    return Status(409, {"error": "invalid_transition", "message": " ".join(error.messages)})


# --- endpoints ---------------------------------------------------------------------------

ONE = {404: NotFoundOut, **HOSTILE_INPUT, **COMMON}
TRANSITION = {409: TransitionRefusedOut, **ONE}


@router.get("/programs", response={200: ProgramsOut, **HOSTILE_INPUT, **COMMON})
def programs(request, filters: Query[ProgramFiltersIn]):
    """Programs, running ones first, then by market and newest first."""
    queryset = _listed()
    if filters.state:
        queryset = queryset.filter(state=filters.state)
    if filters.certificate_type:
        queryset = queryset.filter(market__code=filters.certificate_type.upper())
    page = queryset[filters.offset : filters.offset + filters.limit]
    return {
        "count": queryset.count(),
        "items": [program_json(program, open_alerts=program.open_alerts) for program in page],
    }


@router.post("/programs", response={201: ProgramOut, 400: ValidationErrorOut, **COMMON})
def create_program(request, payload: ProgramIn):
    """A new program in the draft state; it places nothing until activated. Settings left
    out take their defaults. Input to fix answers 400 `validation_error` keyed by field,
    and nothing is saved."""
    program = program_create(
        user=request.user, data=_settings_given(payload), ip=client_ip(request)
    )
    return Status(201, _program_body(program.pk))


@router.get("/programs/{program_id}", response={200: ProgramOut, **ONE})
def program(request, program_id: Id):
    found = _listed().filter(pk=program_id).first()
    if found is None:
        return _not_found(program_id)
    return program_json(found, open_alerts=found.open_alerts)


@router.patch(
    "/programs/{program_id}",
    response={200: ProgramOut, 400: ValidationErrorOut, 404: NotFoundOut, **COMMON},
)
def update_program(request, program_id: Id, payload: ProgramChangeIn):
    """Change the settings the body names; the rest are kept. An active program places
    the new settings on the next worker pass. Input to fix answers 400 keyed by field,
    and nothing is saved."""
    try:
        program_update(
            program_id=program_id,
            user=request.user,
            data=_settings_given(payload),
            ip=client_ip(request),
        )
    except LiquidityProgram.DoesNotExist:
        return _not_found(program_id)
    return _program_body(program_id)


@router.post("/programs/{program_id}/activate", response={200: ProgramOut, **TRANSITION})
def activate(request, program_id: Id):
    """Start a draft or stopped program, or resume a paused one: the next worker pass
    places its ladder. 409 if it is active already or another program runs on its
    market."""
    try:
        program_activate(program_id=program_id, user=request.user, ip=client_ip(request))
    except LiquidityProgram.DoesNotExist:
        return _not_found(program_id)
    except ValidationError as error:
        return _refused(error)
    return _program_body(program_id)


@router.post("/programs/{program_id}/pause", response={200: ProgramOut, **TRANSITION})
def pause(request, program_id: Id):
    """Pause an active program: its orders stay as they are and no worker refreshes it.
    409 unless it is active."""
    try:
        program_pause(program_id=program_id, user=request.user, ip=client_ip(request))
    except LiquidityProgram.DoesNotExist:
        return _not_found(program_id)
    except ValidationError as error:
        return _refused(error)
    return _program_body(program_id)


def _released(stopped: Stopped) -> dict[str, str]:
    return {asset: str(amount) for asset, amount in sorted(stopped.released.items())}


@router.post("/programs/{program_id}/stop", response={200: StoppedOut, **TRANSITION})
def stop(request, program_id: Id):
    """Stop an active or paused program and withdraw every order it has resting, in one
    transaction with one ticket. 409 for a draft or stopped program."""
    try:
        stopped = program_stop(program_id=program_id, user=request.user, ip=client_ip(request))
    except LiquidityProgram.DoesNotExist:
        return _not_found(program_id)
    except ValidationError as error:
        return _refused(error)
    return {
        "program": _program_body(program_id),
        "orders_withdrawn": stopped.orders_withdrawn,
        "released": _released(stopped),
        "ticket_id": stopped.ticket_id,
    }


@router.get("/programs/{program_id}/status", response={200: StatusOut, **ONE})
def status(request, program_id: Id):
    """What the program does now: the reference, the ladder resting, the makers'
    inventory, fills and P&L since start, the last refreshes, warnings and open alerts."""
    found = program_status(program_id=program_id)
    if found is None:
        return _not_found(program_id)
    return status_json(found)


@router.post("/kill-switch", response={200: KilledOut, **HOSTILE_INPUT, **COMMON})
def kill_switch(request):
    """Stop every active and paused program and withdraw all their orders, in one
    transaction with one ticket (`LIQUIDITY_KILL_SWITCH`), recorded even with nothing
    running."""
    stopped = programs_kill(user=request.user, ip=client_ip(request))
    return {
        "programs_stopped": [program.pk for program in stopped.programs],
        "orders_withdrawn": stopped.orders_withdrawn,
        "released": _released(stopped),
        "ticket_id": stopped.ticket_id,
    }
