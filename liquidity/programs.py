"""Liquidity programs: create, change, activate, pause, stop, the kill switch, and the
worker's refresh.

What a tick does is decided by `liquidity.program_rules.decide` (pure); this module reads
its inputs and carries the decision out.

Locks, in this order, as everywhere a program is touched: the program row(s) by primary
key, then the market row, then (only when the tick acts, not when it waits) the makers'
balance rows by primary key (all of them, before any order is cancelled: a provider's
EUR balance serves every market, and taking a subset first and the rest later could
deadlock with a refresh of another market), then the orders. A worker claims a due
program with `SELECT … FOR UPDATE SKIP LOCKED`: a program is refreshed by one worker at
a time, and a program another worker holds is
skipped, not waited for. The whole refresh is one transaction, so a worker killed in the
middle leaves nothing: PostgreSQL rolls it back when the connection drops, the program
is still due, and the next worker to look takes it.

A refresh withdraws what the program has resting and places the new ladder in that one
transaction: both ladders never rest at once, and a refresh that cannot run (funds short,
band, market paused) rolls back to a savepoint, so the old ladder stays whole, and records
why; the program tries again on its next tick.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from liquidity import plan as planning
from liquidity import program_rules as rules
from liquidity.ladder import Ladder, ladder_parse
from liquidity.models import LiquidityAlert, LiquidityOperation, LiquidityProgram, ProgramRefresh
from liquidity.permissions import MANAGE_LIQUIDITY
from liquidity.services import (
    InsufficientAssets,
    MakerBalances,
    maker_balances,
    market_snapshot,
    operation_place,
    plan_for,
)
from market.core.book import reference_price
from market.core.money import MAX_AMOUNT, parse_amount, parse_price
from market.core.placement import MarketRules, trading_refusal
from market.db.orders import MarketRead, best_prices
from market.db.pipeline import pipelined_atomic
from market.models import Market, Order
from market.services.audit import ticket_record
from market.services.ledger import BalanceSheet
from market.services.orders import orders_cancel, released_by_asset, resting_orders_cancel
from market.validation import FieldErrors

logger = logging.getLogger("liquidity.programs")

State = LiquidityProgram.State
RUNNING = (State.ACTIVE, State.PAUSED)
MAX_INTERVAL_SECONDS = 86_400
MIN_INTERVAL_SECONDS = 5
MAX_NAME = 100
MAX_NOTES = 2000

# --- Settings: parse and describe ---------------------------------------------------------

# Every setting a program has, in the order the forms and the API list them.
SETTINGS = (
    "name",
    "certificate_type",
    "bid_target_eur",
    "ask_target_eur",
    "ladder",
    "reference_mode",
    "fixed_reference_price",
    "refresh_interval_seconds",
    "refresh_tolerance_pct",
    "replenish_threshold_pct",
    "replenish_delay_seconds",
    "price_floor",
    "price_ceiling",
    "max_imbalance_eur",
    "active_from",
    "active_until",
    "active_weekdays",
    "timezone",
    "low_funds_eur",
    "alert_after_refreshes",
    "notes",
)
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _whole(value, *, field: str, low: int, high: int, unit: str = "") -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value  # before any text of it: a JSON 1e4000 is an int too long to print
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()):
        number = int(value)
    else:
        raise ValidationError({field: f"Enter a whole number{unit}, e.g. {low}."})
    if not low <= number <= high:
        raise ValidationError({field: f"Enter a number from {low:,} to {high:,}{unit}."})
    return number


def _percent(value, *, field: str, maximum: Decimal, allow_zero: bool = True) -> Decimal:
    return parse_amount(value, field=field, maximum=maximum, allow_zero=allow_zero)


def _time(value, *, field: str) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    match = _TIME.fullmatch(str(value).strip())
    if match is None:
        raise ValidationError({field: "Enter a time as HH:MM (24 hours), e.g. 08:00."})
    return time(int(match.group(1)), int(match.group(2)))


def _weekdays(value, *, field: str) -> str:
    if isinstance(value, list | tuple):
        value = "".join(str(day) for day in value)
    text = str(value).replace(",", "").replace(" ", "")
    if not text or not re.fullmatch(r"[1-7]+", text) or len(set(text)) != len(text):
        raise ValidationError(
            {field: "Enter the ISO weekdays it trades on, 1 (Monday) to 7, e.g. 12345."}
        )
    return "".join(sorted(text))


def _zone(value, *, field: str) -> str:
    name = str(value).strip()
    try:
        rules.ActiveHours(timezone=name).contains(timezone.now())
    except ValueError:
        raise ValidationError(
            {field: f"Unknown time zone {name[:64]!r}: use a name like Europe/Berlin or UTC."}
        ) from None
    return name


def _market(value, *, field: str) -> Market:
    code = str(value).strip() if value else ""
    # Only text a market code can be reaches the database (PostgreSQL refuses NUL).
    valid = code.isascii() and code.isalnum() and len(code) <= 12
    market = Market.objects.filter(code=code).first() if valid else None
    if market is None:
        codes = ", ".join(Market.objects.order_by("code").values_list("code", flat=True))
        raise ValidationError({field: f"Unknown market {str(value)[:20]!r}: choose {codes}."})
    return market


def program_values_parse(data: Mapping, *, program: LiquidityProgram | None = None) -> dict:
    """The model values `data` sets, validated; ValidationError keyed by field lists
    everything to fix. With `program`, `data` may name only what changes (the rest is
    kept) and the whole result is checked as it would be saved. Unknown keys are
    refused (a typo must not pass silently)."""
    errors = FieldErrors()
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        errors.add(NON_FIELD_ERRORS, f"Unknown setting(s): {', '.join(map(str, unknown))}.")
    given = {key: data[key] for key in SETTINGS if key in data}
    values: dict = {}
    collect = errors.collect

    if program is None or "name" in given:
        name = str(given.get("name") or "").strip()
        if not name:
            errors.add("name", "Give the program a name.")
        elif len(name) > MAX_NAME or "\x00" in name:
            errors.add("name", f"A name is at most {MAX_NAME} characters, without null bytes.")
        values["name"] = name
    if program is None or "certificate_type" in given:
        market = collect(_market, given.get("certificate_type"), field="certificate_type")
        if market is not None:
            if program is not None and market.pk != program.market_id and program.state in RUNNING:
                errors.add(
                    "certificate_type", "Stop the program before moving it to another market."
                )
            values["market"] = market
    market = values.get("market") or (program.market if program is not None else None)

    for key in ("bid_target_eur", "ask_target_eur"):
        if key in given:
            values[key] = collect(parse_amount, given[key], field=key, allow_zero=True)
    if "ladder" in given:
        ladder = collect(ladder_parse, given["ladder"], field="ladder")
        values["ladder"] = ladder.as_data() if ladder is not None else None
    if "reference_mode" in given:
        mode = str(given["reference_mode"])
        if mode not in LiquidityProgram.ReferenceMode.values:
            errors.add("reference_mode", "Choose book (the book's reference) or fixed.")
        values["reference_mode"] = mode
    for key in ("fixed_reference_price", "price_floor", "price_ceiling"):
        if key in given:
            if _blank(given[key]):
                values[key] = None
            elif market is not None:
                values[key] = collect(parse_price, given[key], tick=market.tick_size, field=key)
    for key, (low, high) in {
        "refresh_interval_seconds": (MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS),
        "replenish_delay_seconds": (0, MAX_INTERVAL_SECONDS),
        "alert_after_refreshes": (1, 100),
    }.items():
        if key in given:
            unit = " of seconds" if key.endswith("seconds") else ""
            values[key] = collect(_whole, given[key], field=key, low=low, high=high, unit=unit)
    if "refresh_tolerance_pct" in given:
        values["refresh_tolerance_pct"] = collect(
            _percent,
            given["refresh_tolerance_pct"],
            field="refresh_tolerance_pct",
            maximum=Decimal(50),
        )
    if "replenish_threshold_pct" in given:
        values["replenish_threshold_pct"] = collect(
            _percent,
            given["replenish_threshold_pct"],
            field="replenish_threshold_pct",
            maximum=Decimal(100),
        )
    for key in ("max_imbalance_eur", "low_funds_eur"):
        if key in given:
            values[key] = (
                None
                if _blank(given[key])
                else collect(parse_amount, given[key], field=key, maximum=MAX_AMOUNT)
            )
    for key in ("active_from", "active_until"):
        if key in given:
            values[key] = None if _blank(given[key]) else collect(_time, given[key], field=key)
    if "active_weekdays" in given:
        values["active_weekdays"] = collect(
            _weekdays, given["active_weekdays"], field="active_weekdays"
        )
    if "timezone" in given:
        values["timezone"] = collect(_zone, given["timezone"] or "UTC", field="timezone")
    if "notes" in given:
        notes = str(given["notes"] or "")
        if len(notes) > MAX_NOTES or "\x00" in notes:
            errors.add("notes", f"Notes are at most {MAX_NOTES} characters, without null bytes.")
        values["notes"] = notes
    errors.raise_any()
    _check_whole(values, program, errors)
    errors.raise_any()
    return values


def _check_whole(values: dict, program: LiquidityProgram | None, errors: FieldErrors) -> None:
    """Rules across settings, on the program as it would be saved."""

    def final(key, default=None):
        if key in values:
            return values[key]
        return getattr(program, key) if program is not None else default

    bid, ask = final("bid_target_eur", Decimal(0)), final("ask_target_eur", Decimal(0))
    if not bid and not ask:
        errors.add(NON_FIELD_ERRORS, "Enter a BID or an ASK target (or both) greater than zero.")
    mode = final("reference_mode", LiquidityProgram.ReferenceMode.BOOK)
    fixed = final("fixed_reference_price")
    if mode == LiquidityProgram.ReferenceMode.FIXED:
        market = values.get("market") or (program.market if program else None)
        if fixed is None:
            errors.add("fixed_reference_price", "Enter the fixed reference price.")
        elif market is not None:
            band = MarketRead(market_id=market.pk).rules().band
            if band is not None and not band.contains(fixed):
                errors.add(
                    "fixed_reference_price",
                    f"€{fixed:,} lies outside {market.code}'s price band {band.describe()}: "
                    "enter a price within it.",
                )
    floor, ceiling = final("price_floor"), final("price_ceiling")
    if floor is not None and ceiling is not None and floor >= ceiling:
        errors.add("price_ceiling", f"The ceiling must be above the floor (€{floor:,}).")
    start, end = final("active_from"), final("active_until")
    if (start is None) != (end is None):
        errors.add(
            "active_until", "Enter both the start and the end of the active hours, or neither."
        )
    elif start is not None and start == end:
        errors.add(
            "active_until", "The active hours end when they start: leave both blank for all day."
        )


def program_settings(program: LiquidityProgram) -> rules.ProgramSettings:
    """The pure rules' view of a program."""
    return rules.ProgramSettings(
        bid_target_eur=program.bid_target_eur,
        ask_target_eur=program.ask_target_eur,
        ladder=program_ladder(program),
        refresh_interval=timedelta(seconds=program.refresh_interval_seconds),
        refresh_tolerance_pct=program.refresh_tolerance_pct,
        replenish_threshold_pct=program.replenish_threshold_pct,
        replenish_delay=timedelta(seconds=program.replenish_delay_seconds),
        fixed_reference=program.reference_mode == LiquidityProgram.ReferenceMode.FIXED,
        price_floor=program.price_floor,
        price_ceiling=program.price_ceiling,
        max_imbalance_eur=program.max_imbalance_eur,
        hours=active_hours(program),
    )


def program_ladder(program: LiquidityProgram) -> Ladder:
    return ladder_parse(program.ladder or None)


def active_hours(program: LiquidityProgram) -> rules.ActiveHours:
    return rules.ActiveHours(
        start=program.active_from,
        end=program.active_until,
        weekdays=frozenset(int(day) for day in program.active_weekdays),
        timezone=program.timezone,
    )


def _snapshot_of(program: LiquidityProgram) -> dict:
    """A program's settings as its tickets record them."""
    return {
        "name": program.name,
        "certificate_type": program.market.code,
        "state": program.state,
        "bid_target_eur": str(program.bid_target_eur),
        "ask_target_eur": str(program.ask_target_eur),
        "ladder": program_ladder(program).as_text(),
        "reference_mode": program.reference_mode,
        "fixed_reference_price": str(program.fixed_reference_price or ""),
        "refresh_interval_seconds": program.refresh_interval_seconds,
        "refresh_tolerance_pct": str(program.refresh_tolerance_pct),
        "replenish_threshold_pct": str(program.replenish_threshold_pct),
        "replenish_delay_seconds": program.replenish_delay_seconds,
        "price_floor": str(program.price_floor or ""),
        "price_ceiling": str(program.price_ceiling or ""),
        "max_imbalance_eur": str(program.max_imbalance_eur or ""),
        "active_hours": active_hours(program).describe(),
        "low_funds_eur": str(program.low_funds_eur or ""),
        "alert_after_refreshes": program.alert_after_refreshes,
    }


# --- Staff actions -----------------------------------------------------------------------


def _require(user) -> None:
    if user is None or not user.has_perm(MANAGE_LIQUIDITY):
        raise PermissionDenied("You may not manage liquidity programs.")


def _locked(program_id: int) -> LiquidityProgram:
    program = (
        LiquidityProgram.objects.select_for_update(of=("self",))
        .select_related("market", "operation")
        .filter(pk=program_id)
        .first()
    )
    if program is None:
        raise LiquidityProgram.DoesNotExist(f"No liquidity program #{program_id}.")
    return program


def program_create(*, user, data: Mapping, ip: str | None = None) -> LiquidityProgram:
    """A new program in the draft state, from `data` (`program_values_parse`; a blank
    ladder is the default one). Audited (`LIQUIDITY_PROGRAM_CREATED`). Places nothing."""
    _require(user)
    values = program_values_parse(data)
    values.setdefault("ladder", program_ladder(LiquidityProgram()).as_data())
    with transaction.atomic():
        program = LiquidityProgram.objects.create(created_by=user, **values)
        ticket_record(
            action_type="LIQUIDITY_PROGRAM_CREATED",
            entity_type="LiquidityProgram",
            entity_id=program.pk,
            user=user,
            payload=_jsonable(data),
            after=_snapshot_of(program),
            tags=["liquidity", "program", program.market.code],
            ip=ip,
        )
    return program


def program_update(
    *, program_id: int, user, data: Mapping, ip: str | None = None
) -> LiquidityProgram:
    """Change a program's settings (only the keys `data` names). Locks the program row
    (waiting for a refresh in progress). An active program is looked at again on the next
    worker pass, so new targets or a new ladder are placed within one poll. Audited with
    the settings before and after (`LIQUIDITY_PROGRAM_UPDATED`)."""
    _require(user)
    with transaction.atomic():
        program = _locked(program_id)
        values = program_values_parse(data, program=program)
        before = _snapshot_of(program)
        for key, value in values.items():
            setattr(program, key, value)
        if program.state == State.ACTIVE:
            program.next_refresh_at = timezone.now()
        program.save()
        ticket_record(
            action_type="LIQUIDITY_PROGRAM_UPDATED",
            entity_type="LiquidityProgram",
            entity_id=program.pk,
            user=user,
            payload=_jsonable(data),
            before=before,
            after=_snapshot_of(program),
            tags=["liquidity", "program", program.market.code],
            ip=ip,
        )
    return program


def _transition_ticket(program, *, action: str, user, ip, before_state, after=None):
    return ticket_record(
        action_type=action,
        entity_type="LiquidityProgram",
        entity_id=program.pk,
        user=user,
        payload={"program_id": program.pk},
        before={"state": before_state},
        after={"state": program.state, **(after or {})},
        tags=["liquidity", "program", program.market.code],
        ip=ip,
    )


def program_activate(*, program_id: int, user, ip: str | None = None) -> LiquidityProgram:
    """Start (draft, stopped) or resume (paused) a program: the next worker pass places
    its ladder or carries on with the one resting. The user is who its refreshes act for
    on their tickets. Refused when another program already runs on the market.
    A start resets "since start" (fills and P&L); a resume keeps it."""
    _require(user)
    with transaction.atomic():
        program = _locked(program_id)
        if program.state == State.ACTIVE:
            raise ValidationError(f"{program.name} is already active.")
        other = (
            LiquidityProgram.objects.filter(market_id=program.market_id, state__in=RUNNING)
            .exclude(pk=program.pk)
            .first()
        )
        if other is not None:
            raise ValidationError(
                f"{other.name} (#{other.pk}) already runs on {program.market.code}: "
                "stop it first; two programs would fight over one book."
            )
        before = program.state
        now = timezone.now()
        if before != State.PAUSED:
            program.started_at = now
            program.operation = None
            program.ladder_reference = None
            program.consecutive_failures = program.short_refreshes = 0
            program.last_error = ""
        program.state = State.ACTIVE
        program.activated_by = user
        program.stopped_at = None
        program.next_refresh_at = now
        try:
            with transaction.atomic():
                program.save()
        except IntegrityError:  # another activation on this market committed meanwhile
            raise ValidationError(
                f"Another program already runs on {program.market.code}: stop it first."
            ) from None
        _transition_ticket(
            program, action="LIQUIDITY_PROGRAM_ACTIVATED", user=user, ip=ip, before_state=before
        )
    return program


def program_pause(*, program_id: int, user, ip: str | None = None) -> LiquidityProgram:
    """Pause an active program: its orders stay in the book as they are, and no worker
    refreshes it until it is activated again. Audited."""
    _require(user)
    with transaction.atomic():
        program = _locked(program_id)
        if program.state != State.ACTIVE:
            raise ValidationError(
                f"Only an active program can be paused; {program.name} is "
                f"{program.get_state_display().lower()}."
            )
        program.state = State.PAUSED
        program.next_refresh_at = None
        program.save(update_fields=["state", "next_refresh_at", "updated_at"])
        _transition_ticket(
            program, action="LIQUIDITY_PROGRAM_PAUSED", user=user, ip=ip, before_state="active"
        )
    return program


@dataclass(frozen=True)
class Stopped:
    """What stopping programs withdrew."""

    programs: list[LiquidityProgram]
    orders_withdrawn: int
    released: dict[str, Decimal]
    ticket_id: str


def program_stop(*, program_id: int, user, ip: str | None = None) -> Stopped:
    """Stop an active or paused program and withdraw every order it has resting, in one
    transaction, with one ticket (`LIQUIDITY_PROGRAM_STOPPED`) and a refresh row
    recording the withdrawal. Locks the program row (waiting for a refresh in progress)
    before the orders."""
    _require(user)
    with transaction.atomic():
        program = _locked(program_id)
        if program.state not in RUNNING:
            raise ValidationError(
                f"{program.name} is {program.get_state_display().lower()}: only an active or "
                "paused program can be stopped."
            )
        return _stop([program], user=user, ip=ip, action="LIQUIDITY_PROGRAM_STOPPED")


def programs_kill(*, user, ip: str | None = None) -> Stopped:
    """The kill switch: stop every active and paused program and withdraw all their
    orders, in one transaction with one ticket (`LIQUIDITY_KILL_SWITCH`). Locks the
    programs in primary-key order (waiting for refreshes in progress), then the markets,
    orders and balances. With nothing running it still records who pulled it."""
    _require(user)
    with transaction.atomic():
        programs = list(
            LiquidityProgram.objects.select_for_update(of=("self",))
            .select_related("market")
            .filter(state__in=RUNNING)
            .order_by("pk")
        )
        return _stop(programs, user=user, ip=ip, action="LIQUIDITY_KILL_SWITCH")


def _program_orders(programs, *, unwithdrawn: bool = False) -> list[int]:
    """Every order of these programs still resting, whichever of their operations
    placed it (the kill switch and stops). With `unwithdrawn`, only the operations not
    yet withdrawn are looked at (a withdrawal cancels all of an operation's resting
    orders in its transaction, so nothing else rests): the refresh's form, which reads
    the current ladder's orders instead of every order the program ever placed."""
    orders = Order.objects.filter(
        ticket__liquidity_operation__program__in=programs, status__in=Order.RESTING
    )
    if unwithdrawn:
        orders = orders.filter(ticket__liquidity_operation__withdrawn_at__isnull=True)
    return list(orders.order_by("pk").values_list("pk", flat=True))


def _stop(programs: list[LiquidityProgram], *, user, ip, action: str) -> Stopped:
    now = timezone.now()
    cancelled = orders_cancel(orders=_program_orders(programs), reason="liquidity program stopped")
    released = released_by_asset(cancelled)
    ticket = ticket_record(
        action_type=action,
        entity_type="LiquidityProgram",
        entity_id=programs[0].pk if len(programs) == 1 else "",
        user=user,
        payload={"program_ids": [program.pk for program in programs]},
        after={
            "orders_withdrawn": len(cancelled),
            "released": {asset: str(amount) for asset, amount in released.items()},
        },
        tags=["liquidity", "program", *sorted({program.market.code for program in programs})],
        ip=ip,
    )
    operations = [program.operation_id for program in programs if program.operation_id]
    LiquidityOperation.objects.filter(pk__in=operations, withdrawn_at__isnull=True).update(
        withdrawn_at=now, withdrawn_by=user
    )
    by_owner_ticket = _withdrawn_per_program(programs, cancelled)
    reason = (
        f"Kill switch pulled by {user.get_username()}."
        if action == "LIQUIDITY_KILL_SWITCH"
        else f"Stopped by {user.get_username()}."
    )
    for program in programs:
        program.state = State.STOPPED
        program.stopped_at = now
        program.next_refresh_at = None
        program.operation = None
        program.ladder_reference = None
        program.save(
            update_fields=[
                "state",
                "stopped_at",
                "next_refresh_at",
                "operation",
                "ladder_reference",
                "updated_at",
            ]
        )
    # A stopped program has nothing left to alert about.
    LiquidityAlert.objects.filter(program__in=programs, resolved_at__isnull=True).update(
        resolved_at=now
    )
    ProgramRefresh.objects.bulk_create(
        ProgramRefresh(
            program=program,
            outcome=ProgramRefresh.Outcome.WITHDRAWN,
            reason=reason,
            ticket=ticket,
            orders_withdrawn=by_owner_ticket.get(program.pk, 0),
            created_at=now,
        )
        for program in programs
    )
    return Stopped(programs, len(cancelled), released, ticket.ticket_id)


def _withdrawn_per_program(programs, cancelled) -> dict[int, int]:
    ids = [order.id for order in cancelled]
    if not ids:
        return {}
    counts = (
        Order.objects.filter(pk__in=ids)
        .values("ticket__liquidity_operation__program")
        .annotate(n=Count("pk"))
    )
    return {row["ticket__liquidity_operation__program"]: row["n"] for row in counts}


def _jsonable(data: Mapping) -> dict:
    """`data` as the ticket records it: numbers the API read as `Decimal` (and times,
    zones...) as their text, inside lists and objects too."""

    def plain(value):
        if isinstance(value, Mapping):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, str | int | bool) or value is None:
            return value
        return str(value)

    return plain(data)


# --- The worker's refresh ----------------------------------------------------------------


def programs_refresh_due(
    *, worker: str = "", now: datetime | None = None, limit: int = 20
) -> list[ProgramRefresh]:
    """Refresh active programs that are due, each in its own transaction, claimed with
    SKIP LOCKED: programs other workers hold are left to them. At most `limit` programs
    per call. Returns the refreshes recorded (ticks that only waited record none)."""
    done = []
    seen: set[int] = set()
    for _ in range(limit):
        tick_now = now or timezone.now()
        with transaction.atomic():
            program = (
                LiquidityProgram.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("market", "operation", "activated_by")
                .filter(state=State.ACTIVE)
                .filter(Q(next_refresh_at__isnull=True) | Q(next_refresh_at__lte=tick_now))
                .exclude(pk__in=seen)
                .order_by("next_refresh_at", "pk")
                .first()
            )
            if program is None:
                break
            seen.add(program.pk)
            try:
                with transaction.atomic():
                    refresh = _tick(program, now=tick_now, worker=worker)
            except Exception as error:  # one broken program must not stop the others
                logger.exception("liquidity program #%s: refresh crashed", program.pk)
                refresh = _crashed(program.pk, error, now=tick_now, worker=worker)
        if refresh is not None:
            done.append(refresh)
            _notify_after(refresh)
    return done


def _crashed(program_id: int, error: Exception, *, now, worker) -> ProgramRefresh:
    """Record, after a tick raised something unexpected (and was rolled back), that it
    could not run, and look again after one interval rather than at once."""
    program = LiquidityProgram.objects.select_related("market").get(pk=program_id)
    program.last_refresh_at = now
    program.next_refresh_at = now + timedelta(seconds=program.refresh_interval_seconds)
    reason = f"The refresh failed unexpectedly ({type(error).__name__}: {error}); see the log."
    return _failed(program, now=now, worker=worker, reason=reason)


def program_refresh(
    *, program_id: int, worker: str = "", now: datetime | None = None
) -> ProgramRefresh | None:
    """One tick of one active program now, whether or not it is due (tests, the demo
    seed). Waits for a worker holding it. None if it only waited (or is not active)."""
    with transaction.atomic():
        program = (
            LiquidityProgram.objects.select_for_update(of=("self",))
            .select_related("market", "operation", "activated_by")
            .filter(pk=program_id, state=State.ACTIVE)
            .first()
        )
        if program is None:
            return None
        refresh = _tick(program, now=now or timezone.now(), worker=worker)
    if refresh is not None:
        _notify_after(refresh)
    return refresh


@dataclass(frozen=True)
class ProgramInputs:
    market: MarketRules
    ladder: rules.LadderState
    position: rules.Position
    reference: Decimal | None
    reference_error: str | None


def _tick(program: LiquidityProgram, *, now: datetime, worker: str) -> ProgramRefresh | None:
    """Decide and carry out one tick of a locked active program (see the module)."""
    market = MarketRead(market_id=program.market_id, lock=True).rules(today=now.date())
    # The position only matters to the imbalance limit (`program_rules.side_targets`).
    inputs = program_inputs(program, market, with_position=program.max_imbalance_eur is not None)
    program.last_refresh_at = now
    if inputs.reference is None:
        program.next_refresh_at = now + timedelta(seconds=program.refresh_interval_seconds)
        refresh = _failed(program, now=now, worker=worker, reason=inputs.reference_error)
        _alerts_update(program, market=market, makers=None, reference=None, now=now)
        return refresh
    decision = rules.decide(
        settings=program_settings(program),
        ladder=inputs.ladder,
        reference=inputs.reference,
        position=inputs.position,
        now=now,
    )
    program.next_refresh_at = decision.next_at
    if refusal := _acting_refusal(program):
        refresh = _failed(program, now=now, worker=worker, reason=refusal)
        _alerts_update(program, market=market, makers=None, reference=None, now=now)
        return refresh
    if decision.action == "wait":
        # Nothing to do: whatever made earlier refreshes fail no longer holds.
        program.consecutive_failures = program.short_refreshes = 0
        program.last_error = ""
        program.save(
            update_fields=[
                "last_refresh_at",
                "next_refresh_at",
                "consecutive_failures",
                "short_refreshes",
                "last_error",
            ]
        )
        # Balances are read (not locked: nothing is moved) only for the low-funds alert.
        funds = maker_balances(market, lock=False) if program.low_funds_eur is not None else None
        _alerts_update(program, market=market, makers=funds, reference=inputs.reference, now=now)
        return None
    # Every maker's balance row, locked before any order is (see the module).
    makers = maker_balances(market, lock=True)
    savepoint = transaction.savepoint()
    try:
        refresh = _carry_out(program, market, makers, decision, now=now, worker=worker)
    except ValidationError as error:
        transaction.savepoint_rollback(savepoint)
        shortfall = getattr(error, "plan", None)
        refresh = _failed(
            program,
            now=now,
            worker=worker,
            reason=_message(error),
            short=bool(shortfall is not None and shortfall.shortfalls),
            reference=inputs.reference,
        )
    else:
        transaction.savepoint_commit(savepoint)
    # The balances as the refresh left them (a failed one moved `makers`' rows in memory
    # before its rollback), for the low-funds alert: read only if it is set.
    fresh = maker_balances(market, lock=False) if program.low_funds_eur is not None else None
    _alerts_update(program, market=market, makers=fresh, reference=inputs.reference, now=now)
    return refresh


def _acting_refusal(program: LiquidityProgram) -> str | None:
    """Why the user the refreshes act for (who activated the program) may not any more,
    or None: a program must not go on placing orders for staff who lost the right."""
    user = program.activated_by
    if user is not None and user.is_active and user.is_staff and user.has_perm(MANAGE_LIQUIDITY):
        return None
    name = user.get_username() if user is not None else "nobody"
    return (
        f"{name}, who activated the program, may no longer manage liquidity: pause or stop "
        "it, then activate it again as staff who can."
    )


def _message(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return " ".join(m for messages in error.message_dict.values() for m in messages)[:255]
    return " ".join(error.messages)[:255]


def program_inputs(
    program: LiquidityProgram, market: MarketRules, *, with_position: bool = True
) -> ProgramInputs:
    """What a tick decides on: the ladder resting, the position since start (without
    `with_position`, an empty one: its query reads every fill since start), and the
    reference now (the fixed price, or the book's leaving out the program's own orders)."""
    operation = program.operation
    ladder = rules.LadderState()
    if operation is not None:
        ladder = _ladder_state(program, operation)
    position = _position(program) if with_position else rules.Position()
    if program.reference_mode == LiquidityProgram.ReferenceMode.FIXED:
        return ProgramInputs(market, ladder, position, program.fixed_reference_price, None)
    best_bid, best_ask, last = best_prices(
        market.market_id, excluding_ticket_id=operation.ticket_id if operation else None
    )
    price, _ = reference_price(
        best_bid=best_bid,
        best_ask=best_ask,
        last_price=last,
        default=market.default_reference_price,
        tick=market.tick,
    )
    if price <= 0:
        return ProgramInputs(
            market, ladder, position, None, "The book's reference rounds to zero."
        )
    return ProgramInputs(market, ladder, position, price, None)


def _ladder_state(program: LiquidityProgram, operation: LiquidityOperation) -> rules.LadderState:
    """What the current operation placed, what of it filled and what still rests: one
    aggregate query."""
    resting = Q(status__in=Order.RESTING)
    totals = Order.objects.filter(ticket_id=operation.ticket_id).aggregate(
        bid_placed=Sum("quantity", filter=Q(side="BUY")),
        ask_placed=Sum("quantity", filter=Q(side="SELL")),
        bid_filled=Sum("filled_quantity", filter=Q(side="BUY")),
        ask_filled=Sum("filled_quantity", filter=Q(side="SELL")),
        resting=Count("pk", filter=resting),
        last_fill=Max("updated_at", filter=Q(filled_quantity__gt=0)),
    )
    return rules.LadderState(
        reference=program.ladder_reference,
        bid_target_eur=operation.target_bid_eur,
        ask_target_eur=operation.target_ask_eur,
        ladder=ladder_parse(operation.ladder or None),
        bid_placed=totals["bid_placed"] or 0,
        ask_placed=totals["ask_placed"] or 0,
        bid_filled=totals["bid_filled"] or 0,
        ask_filled=totals["ask_filled"] or 0,
        resting_orders=totals["resting"] or 0,
        last_fill_at=totals["last_fill"],
    )


def program_position(program: LiquidityProgram) -> rules.Position:
    """What the program's orders traded since it started (fees included): one query."""
    return _position(program)


def _position(program: LiquidityProgram) -> rules.Position:
    if program.started_at is None:
        return rules.Position()
    totals = Order.objects.filter(
        ticket__liquidity_operation__program=program,
        ticket__liquidity_operation__created_at__gte=program.started_at,
    ).aggregate(
        bought=Sum("filled_quantity", filter=Q(side="BUY")),
        bought_eur=Sum("filled_value", filter=Q(side="BUY")),
        sold=Sum("filled_quantity", filter=Q(side="SELL")),
        sold_eur=Sum("filled_value", filter=Q(side="SELL")),
        fees=Sum("fee_paid"),
    )
    zero = Decimal("0")
    return rules.Position(
        bought_quantity=totals["bought"] or 0,
        bought_eur=totals["bought_eur"] or zero,
        sold_quantity=totals["sold"] or 0,
        sold_eur=totals["sold_eur"] or zero,
        fees_eur=totals["fees"] or zero,
    )


def _withdraw_for_refresh(program, market: MarketRules, makers: MakerBalances):
    """Cancel the program's resting ladder into one sheet over the makers' locked rows,
    so the new ladder is planned from what the rows hold now and every balance is
    written once (`flush`). Returns (cancelled, sheet, makers as they stand now). Falls
    back to `orders_cancel` and a fresh read when an order's owner is not among the
    makers read (its maker was deactivated since)."""
    order_ids = _program_orders([program], unwithdrawn=True)
    reason = "liquidity program refresh"
    sheet = BalanceSheet(makers.balances)
    cancelled = resting_orders_cancel(market=market, orders=order_ids, sheet=sheet, reason=reason)
    if cancelled is not None:
        return cancelled, sheet, makers.now()
    cancelled = orders_cancel(orders=order_ids, reason=reason)
    makers = maker_balances(market, lock=True)
    return cancelled, BalanceSheet(makers.balances), makers


def _carry_out(
    program, market: MarketRules, makers: MakerBalances, decision: rules.Decision, *, now, worker
):
    """Withdraw what the program has resting and, unless the decision only withdraws,
    place the new ladder: in the caller's savepoint, so a refusal undoes both.

    The withdrawal and the new ladder run pipelined (`market.db.pipeline`): their writes
    are queued while the next rows are computed. What is recorded after them saves
    model instances, which is kept out of the pipeline: an ORM save needs the row count
    of its UPDATE at once, and a pipelined statement's is known only at a sync point."""
    with pipelined_atomic():
        done = _withdraw_and_place(program, market, makers, decision, now=now, worker=worker)
    return _refreshed(program, now=now, worker=worker, **done)


def _withdraw_and_place(
    program, market: MarketRules, makers: MakerBalances, decision: rules.Decision, *, now, worker
) -> dict:
    """`_carry_out`'s writes; returns what `_refreshed` records of them."""
    user = program.activated_by
    cancelled, sheet, makers = _withdraw_for_refresh(program, market, makers)
    released = released_by_asset(cancelled)
    if program.operation_id:
        LiquidityOperation.objects.filter(
            pk=program.operation_id, withdrawn_at__isnull=True
        ).update(withdrawn_at=now, withdrawn_by=user)
    payload = {
        "program_id": program.pk,
        "program": program.name,
        "action": decision.action,
        "reason": decision.reason,
        "worker": worker,
    }
    withdrawn = {
        "orders_withdrawn": len(cancelled),
        "released": {asset: str(amount) for asset, amount in released.items()},
    }
    outcome = {
        "place": ProgramRefresh.Outcome.PLACED,
        "recentre": ProgramRefresh.Outcome.RECENTRED,
        "replenish": ProgramRefresh.Outcome.REPLENISHED,
        "withdraw": ProgramRefresh.Outcome.WITHDRAWN,
    }[decision.action]
    reason = " ".join(
        (decision.reason, *[n for n in decision.warnings if n not in decision.reason])
    )
    if not decision.places:
        ticket = ticket_record(
            action_type="LIQUIDITY_PROGRAM_REFRESH",
            entity_type="LiquidityProgram",
            entity_id=program.pk,
            user=user,
            payload=payload,
            after=withdrawn,
            tags=["liquidity", "program", market.code],
        )
        sheet.flush()
        return {
            "outcome": outcome,
            "reason": reason,
            "ticket": ticket,
            "withdrawn": len(cancelled),
        }

    if paused := trading_refusal(market):
        raise ValidationError(paused)
    snapshot = market_snapshot(market)
    fixed = program.reference_mode == LiquidityProgram.ReferenceMode.FIXED
    try:
        plan = plan_for(
            market=snapshot,
            makers=makers,
            bid_amount_eur=decision.bid_target_eur,
            ask_amount_eur=decision.ask_target_eur,
            reference_price=program.fixed_reference_price if fixed else None,
            ladder=program_ladder(program),
        )
    except planning.PlanError as error:
        raise ValidationError(error.message) from None
    if not plan.can_execute:
        raise InsufficientAssets(plan)
    operation = operation_place(
        market=market,
        makers=makers,
        snapshot=snapshot,
        plan=plan,
        user=user,
        action_type="LIQUIDITY_PROGRAM_REFRESH",
        payload=payload,
        after=withdrawn,
        program=program,
        notes=f"{program.name}: {decision.reason}"[:2000],
        sheet=sheet,
    )
    program.short_refreshes = 0
    return {
        "outcome": outcome,
        "reason": reason,
        "ticket": operation.ticket,
        "withdrawn": len(cancelled),
        "operation": operation,
        "reference": plan.reference_price,
    }


def _refreshed(
    program, *, outcome, reason, ticket, withdrawn, now, worker, operation=None, reference=None
) -> ProgramRefresh:
    """Record a refresh that ran: the program now rests `operation`'s ladder (none after
    a withdrawal), placed around `reference`; its failure count starts again."""
    program.operation = operation
    program.ladder_reference = reference
    program.consecutive_failures = 0
    program.last_error = ""
    program.save()
    return ProgramRefresh.objects.create(
        program=program,
        outcome=outcome,
        reason=reason[:255],
        operation=operation,
        ticket=ticket,
        reference_price=reference,
        orders_withdrawn=withdrawn,
        orders_placed=operation.orders_created if operation else 0,
        bid_placed_eur=operation.actual_bid_eur if operation else Decimal("0"),
        ask_placed_eur=operation.actual_ask_eur if operation else Decimal("0"),
        worker=worker[:100],
        created_at=now,
    )


def _failed(program, *, now, worker, reason, short=False, reference=None) -> ProgramRefresh:
    program.consecutive_failures += 1
    if short:
        program.short_refreshes += 1
    program.last_error = reason[:255]
    program.save()
    logger.warning(
        "liquidity program %s (#%s) could not refresh: %s", program.name, program.pk, reason
    )
    return ProgramRefresh.objects.create(
        program=program,
        outcome=ProgramRefresh.Outcome.FAILED,
        reason=reason[:255],
        reference_price=reference,
        worker=worker[:100],
        created_at=now,
    )


# --- Alerts ------------------------------------------------------------------------------


def _alerts_update(program, *, market: MarketRules, makers, reference, now) -> None:
    """Open the alerts whose condition holds and resolve those whose condition cleared
    (`program_rules.alerts_due`); new ones are logged and, after commit, mailed."""
    low = []
    if program.low_funds_eur is not None and reference is not None:
        for kind, funds in makers.funds.items():
            for maker in funds:
                value = (
                    maker.available
                    if kind == "LIQUIDITY_PROVIDER"
                    else maker.available * reference
                )
                if value < program.low_funds_eur:
                    low.append((maker.code, value))
    wanted = rules.alerts_due(
        failures=program.consecutive_failures,
        short_refreshes=program.short_refreshes,
        last_error=program.last_error,
        low_funds=low,
        low_funds_eur=program.low_funds_eur,
        after=program.alert_after_refreshes,
    )
    open_alerts = {
        (alert.kind, alert.subject): alert
        for alert in LiquidityAlert.objects.filter(program=program, resolved_at__isnull=True)
    }
    # Without a reference, funds cannot be valued: low-funds alerts stay as they are.
    unknown = {LiquidityAlert.Kind.MAKER_LOW_FUNDS} if reference is None else set()
    cleared = [
        alert.pk
        for key, alert in open_alerts.items()
        if key not in wanted and key[0] not in unknown
    ]
    if cleared:
        LiquidityAlert.objects.filter(pk__in=cleared).update(resolved_at=now)
    new = [
        LiquidityAlert(
            program=program, kind=kind, subject=subject, message=message[:255], created_at=now
        )
        for (kind, subject), message in wanted.items()
        if (kind, subject) not in open_alerts
    ]
    if new:
        LiquidityAlert.objects.bulk_create(new)
        for alert in new:
            logger.warning("liquidity alert, program %s: %s", program.name, alert.message)
        transaction.on_commit(lambda: _mail_alerts(program, new))


def _staff_to_alert() -> list[str]:
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    permitted = users.filter(
        Q(is_superuser=True)
        | Q(user_permissions__codename="manage_liquidity")
        | Q(groups__permissions__codename="manage_liquidity")
    )
    return sorted(set(permitted.values_list("email", flat=True)))


def _mail_alerts(program: LiquidityProgram, alerts: list[LiquidityAlert]) -> None:
    recipients = _staff_to_alert()
    if not recipients:
        return
    lines = "\n".join(f"- {alert.message}" for alert in alerts)
    try:
        send_mail(
            subject=f"[Liquidity] {program.name}: {len(alerts)} new alert(s)",
            message=(
                f"Liquidity program {program.name} (#{program.pk}, {program.market.code}):\n\n"
                f"{lines}\n\nSee the program's status page in the back office."
            ),
            from_email=django_settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    except Exception:  # a mail server down must not stop the worker
        logger.exception("could not mail liquidity alerts for program %s", program.pk)


def _notify_after(refresh: ProgramRefresh) -> None:
    """Refreshes are logged (the worker prints them too)."""
    logger.debug(
        "liquidity program #%s %s: %s", refresh.program_id, refresh.outcome, refresh.reason
    )
