"""What a standing liquidity program does on each tick. Pure: no ORM, no clock, no I/O.

A worker calls `decide` for an active program with the program's settings, the ladder it
has resting, its position since it started and the reference price now; the answer is
one `Decision`: wait, withdraw the ladder, or withdraw it and place a fresh one (place,
re-centre, replenish). The service (`liquidity.programs`) carries it out under locks.

The rules, in the order they are applied:
1. **Active hours.** Outside them the ladder is withdrawn (and nothing placed).
2. **Sides** (`side_targets`). The BID target is withheld (0) when the reference is above
   the price ceiling, or when the program has bought more than it sold by the maximum
   imbalance (valued at the reference); the ASK target likewise below the floor, or when
   it has sold more than it bought by that much. Both withheld: the ladder is withdrawn.
3. **Place** when nothing of the program rests yet (just activated, or emptied by other
   means than fills, e.g. a maker's deactivation).
4. **Re-centre** when what rests was placed for other targets or another ladder (settings
   changed, a side withheld or resumed), or when the reference moved more than the
   tolerance (%) from the one the ladder was placed around (a fixed reference: when it
   changed at all).
5. **Replenish** when fills took more than the threshold (%) of a side's placed
   certificates, once the delay has passed since the last fill.
6. Otherwise **wait** until the next interval (or until a replenish delay ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from liquidity.ladder import Ladder

__all__ = [
    "ActiveHours",
    "Decision",
    "LadderState",
    "Position",
    "ProgramSettings",
    "decide",
    "mark_to_market",
    "moved_pct",
    "side_targets",
]

Action = Literal["place", "recentre", "replenish", "withdraw", "wait"]
ZERO = Decimal("0")
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class ActiveHours:
    """When a program trades: local times in `timezone` on ISO `weekdays` (1 = Monday).
    No times: all day. `start` after `end` spans midnight (the weekday is the start's)."""

    start: time | None = None
    end: time | None = None
    weekdays: frozenset[int] = frozenset(range(1, 8))
    timezone: str = "UTC"

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(_zone(self.timezone))
        clock = local.time().replace(tzinfo=None)
        if self.start is None or self.end is None:
            return local.isoweekday() in self.weekdays
        if self.start <= self.end:
            return local.isoweekday() in self.weekdays and self.start <= clock < self.end
        if clock >= self.start:
            return local.isoweekday() in self.weekdays
        if clock < self.end:  # after midnight: the session started the day before
            return (local - timedelta(days=1)).isoweekday() in self.weekdays
        return False

    def next_change(self, moment: datetime) -> datetime | None:
        """The first moment after `moment` at which `contains` may change (a session's
        start or end, or midnight for whole days), within the next eight days; None for
        around the clock."""
        if self.start is None or self.end is None:
            if len(self.weekdays) == 7:
                return None
            times = (time(0),)
        else:
            times = (self.start, self.end)
        zone = _zone(self.timezone)
        local = moment.astimezone(zone)
        candidates = []
        for offset in range(9):
            day = (local + timedelta(days=offset)).date()
            for clock in times:
                at = datetime.combine(day, clock, tzinfo=zone)
                if at > local:
                    candidates.append(at)
        return min(candidates).astimezone(moment.tzinfo) if candidates else None

    def describe(self) -> str:
        days = _describe_weekdays(self.weekdays)
        if self.start is None or self.end is None:
            return f"all day, {days}" if days != "every day" else "around the clock"
        return f"{self.start:%H:%M}–{self.end:%H:%M} {self.timezone}, {days}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _describe_weekdays(weekdays: frozenset[int]) -> str:
    days = sorted(weekdays)
    if days == list(range(1, 8)):
        return "every day"
    if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        return f"{WEEKDAY_NAMES[days[0] - 1]}–{WEEKDAY_NAMES[days[-1] - 1]}"
    return ", ".join(WEEKDAY_NAMES[d - 1] for d in days)


@dataclass(frozen=True)
class ProgramSettings:
    """A program's standing targets and limits, parsed (`liquidity.programs`)."""

    bid_target_eur: Decimal
    ask_target_eur: Decimal
    ladder: Ladder
    refresh_interval: timedelta
    refresh_tolerance_pct: Decimal
    replenish_threshold_pct: Decimal
    replenish_delay: timedelta
    fixed_reference: bool = False
    price_floor: Decimal | None = None
    price_ceiling: Decimal | None = None
    max_imbalance_eur: Decimal | None = None
    hours: ActiveHours = ActiveHours()


@dataclass(frozen=True)
class LadderState:
    """What the program has placed and what of it rests now. `reference` is the one the
    ladder was placed around (None: nothing placed since the program started); targets
    and ladder are those it was placed for; quantities are certificates."""

    reference: Decimal | None = None
    bid_target_eur: Decimal = ZERO
    ask_target_eur: Decimal = ZERO
    ladder: Ladder | None = None
    bid_placed: int = 0
    ask_placed: int = 0
    bid_filled: int = 0
    ask_filled: int = 0
    resting_orders: int = 0
    last_fill_at: datetime | None = None


@dataclass(frozen=True)
class Position:
    """What the program's orders traded since it started: certificates and EUR bought and
    sold, and the fees its makers paid."""

    bought_quantity: int = 0
    bought_eur: Decimal = ZERO
    sold_quantity: int = 0
    sold_eur: Decimal = ZERO
    fees_eur: Decimal = ZERO

    @property
    def net_quantity(self) -> int:
        """Certificates bought less certificates sold: > 0 the makers hold more."""
        return self.bought_quantity - self.sold_quantity


@dataclass(frozen=True)
class Decision:
    """What to do now, why, with which targets (for place, re-centre and replenish), when
    to look again, and what staff should know (sides withheld)."""

    action: Action
    reason: str
    bid_target_eur: Decimal
    ask_target_eur: Decimal
    next_at: datetime
    warnings: tuple[str, ...] = ()

    @property
    def places(self) -> bool:
        return self.action in ("place", "recentre", "replenish")


def _eur(amount: Decimal) -> str:
    return f"€{amount:,.2f}"


def _pct(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP)} %"


def moved_pct(old: Decimal, new: Decimal) -> Decimal:
    """How far `new` lies from `old`, in % of `old` (exact, unrounded)."""
    return abs(new - old) * 100 / old


def side_targets(
    settings: ProgramSettings, *, reference: Decimal, position: Position
) -> tuple[Decimal, Decimal, tuple[str, ...]]:
    """(BID target, ASK target, why any side is withheld): see rule 2 of the module."""
    bid, ask, notes = settings.bid_target_eur, settings.ask_target_eur, []
    ceiling, floor = settings.price_ceiling, settings.price_floor
    if bid and ceiling is not None and reference > ceiling:
        bid = ZERO
        notes.append(
            f"The reference {_eur(reference)} is above the ceiling {_eur(ceiling)}: no bids."
        )
    if ask and floor is not None and reference < floor:
        ask = ZERO
        notes.append(f"The reference {_eur(reference)} is below the floor {_eur(floor)}: no asks.")
    limit = settings.max_imbalance_eur
    if limit is not None:
        imbalance = position.net_quantity * reference
        if bid and imbalance >= limit:
            bid = ZERO
            notes.append(
                f"The makers bought {_eur(imbalance)} more than they sold (limit "
                f"{_eur(limit)}): bids withheld until sales bring it back."
            )
        if ask and -imbalance >= limit:
            ask = ZERO
            notes.append(
                f"The makers sold {_eur(-imbalance)} more than they bought (limit "
                f"{_eur(limit)}): asks withheld until purchases bring it back."
            )
    return bid, ask, tuple(notes)


def decide(
    *,
    settings: ProgramSettings,
    ladder: LadderState,
    reference: Decimal,
    position: Position,
    now: datetime,
) -> Decision:
    """The action for this tick (see the module docstring for the rules, in order). The
    next look is after one interval, or sooner when the active hours start or end."""
    later = now + settings.refresh_interval
    boundary = settings.hours.next_change(now)
    if boundary is not None and boundary < later:
        later = boundary

    def decision(action: Action, reason: str, bid=ZERO, ask=ZERO, next_at=later, notes=()):
        return Decision(action, reason, bid, ask, next_at, tuple(notes))

    if not settings.hours.contains(now):
        why = f"Outside active hours ({settings.hours.describe()})."
        if ladder.resting_orders:
            return decision("withdraw", why)
        return decision("wait", why)

    bid, ask, notes = side_targets(settings, reference=reference, position=position)
    if not bid and not ask:
        why = " ".join(notes) or "Both targets are zero."
        if ladder.resting_orders:
            return decision("withdraw", why, notes=notes)
        return decision("wait", why, notes=notes)

    def refresh(action: Action, reason: str):
        return decision(action, reason, bid, ask, notes=notes)

    if ladder.reference is None or (not ladder.resting_orders and not _filled(ladder)):
        return refresh("place", "No ladder resting: placing one.")
    if (ladder.bid_target_eur, ladder.ask_target_eur, ladder.ladder) != (
        bid,
        ask,
        settings.ladder,
    ):
        return refresh("recentre", _changed(ladder, bid, ask, settings, notes))
    if reference != ladder.reference:
        moved = moved_pct(ladder.reference, reference)
        if settings.fixed_reference:
            return refresh(
                "recentre",
                f"The fixed reference changed from {_eur(ladder.reference)} to {_eur(reference)}.",
            )
        if moved > settings.refresh_tolerance_pct:
            return refresh(
                "recentre",
                f"The reference moved {_pct(moved)} ({_eur(ladder.reference)} → "
                f"{_eur(reference)}), beyond the {_pct(settings.refresh_tolerance_pct)} "
                "tolerance.",
            )
    consumed = _consumed(ladder, settings.replenish_threshold_pct)
    if consumed:
        due = (ladder.last_fill_at or now) + settings.replenish_delay
        if now >= due:
            return refresh("replenish", consumed)
        return decision(
            "wait",
            f"{consumed} Replenishing at {due:%H:%M:%S}.",
            bid,
            ask,
            next_at=min(later, due),
            notes=notes,
        )
    if not ladder.resting_orders:
        return refresh("place", "No order of the ladder rests any more: placing a new one.")
    return decision("wait", "The ladder is in place.", bid, ask, notes=notes)


def _filled(ladder: LadderState) -> bool:
    return bool(ladder.bid_filled or ladder.ask_filled)


def _changed(ladder: LadderState, bid, ask, settings: ProgramSettings, notes) -> str:
    if ladder.ladder != settings.ladder:
        return "The program's ladder changed."
    if (ladder.bid_target_eur and not bid) or (ladder.ask_target_eur and not ask):
        return " ".join(notes) or "The program's targets changed."
    if (bid and not ladder.bid_target_eur) or (ask and not ladder.ask_target_eur):
        return "A withheld side is placed again."
    return "The program's targets changed."


def _consumed(ladder: LadderState, threshold_pct: Decimal) -> str | None:
    """Why fills call for a replenish, or None."""
    for side, placed, filled in (
        ("BID", ladder.bid_placed, ladder.bid_filled),
        ("ASK", ladder.ask_placed, ladder.ask_filled),
    ):
        # A side filled whole is topped up whatever the threshold (even 100 %).
        if (
            placed
            and filled
            and (Decimal(filled) * 100 / placed > threshold_pct or filled >= placed)
        ):
            share = Decimal(filled) * 100 / placed
            limit = "all of it" if filled >= placed else f"more than {_pct(threshold_pct)}"
            return (
                f"Fills took {_pct(share)} of the {side} side ({filled:,} of {placed:,}), {limit}."
            )
    return None


@dataclass(frozen=True)
class MarkToMarket:
    """The program's result since it started, valued at `reference`: cash received less
    cash paid, plus the certificates gained (or less those given up) at the reference,
    less fees."""

    reference: Decimal
    cash_eur: Decimal
    inventory_eur: Decimal
    fees_eur: Decimal
    pnl_eur: Decimal


def mark_to_market(position: Position, *, reference: Decimal) -> MarkToMarket:
    cash = position.sold_eur - position.bought_eur
    inventory = position.net_quantity * reference
    pnl = cash + inventory - position.fees_eur
    return MarkToMarket(reference, cash, inventory, position.fees_eur, pnl)


def alerts_due(
    *,
    failures: int,
    short_refreshes: int,
    last_error: str,
    low_funds: list[tuple[str, Decimal]],
    low_funds_eur: Decimal | None,
    after: int,
) -> dict[tuple[str, str], str]:
    """The alerts whose condition holds, keyed by (kind, subject), with their messages:
    a refresh failing `after` times in a row, a side short for `after` refreshes in a
    row, and each maker (code) whose available funds are worth less than `low_funds_eur`
    at the reference. Kinds are `LiquidityAlert.Kind` values."""
    wanted: dict[tuple[str, str], str] = {}
    if failures >= after:
        wanted[("refresh_failing", "")] = (
            f"The last {failures} refreshes failed; the latest: {last_error}"
        )
    if short_refreshes >= after:
        wanted[("side_short", "")] = (
            f"A side has been below its target for {short_refreshes} refreshes in a row: "
            "fund the market makers."
        )
    for code, value in low_funds:
        wanted[("maker_low_funds", code)] = (
            f"{code} has {_eur(value)} available at the reference, below the "
            f"{_eur(low_funds_eur)} threshold."
        )
    return wanted
