"""The program rules (pure): what a tick decides. No database."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liquidity.ladder import DEFAULT_LADDER, ladder_parse
from liquidity.program_rules import (
    ActiveHours,
    LadderState,
    Position,
    ProgramSettings,
    alerts_due,
    decide,
    mark_to_market,
    side_targets,
)

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a Tuesday
SETTINGS = ProgramSettings(
    bid_target_eur=D("10000.00"),
    ask_target_eur=D("5000.00"),
    ladder=DEFAULT_LADDER,
    refresh_interval=timedelta(seconds=60),
    refresh_tolerance_pct=D("0.50"),
    replenish_threshold_pct=D("30.00"),
    replenish_delay=timedelta(seconds=30),
)
PLACED = LadderState(
    reference=D("14.00"),
    bid_target_eur=D("10000.00"),
    ask_target_eur=D("5000.00"),
    ladder=DEFAULT_LADDER,
    bid_placed=700,
    ask_placed=350,
    resting_orders=6,
)


FLAT = Position()


def tick(ladder=PLACED, reference=D("14.00"), settings=SETTINGS, position=FLAT, now=NOON):
    return decide(
        settings=settings, ladder=ladder, reference=reference, position=position, now=now
    )


def test_a_new_program_places_and_then_waits_for_the_interval():
    first = tick(LadderState())
    assert (first.action, first.bid_target_eur, first.ask_target_eur) == (
        "place",
        D("10000.00"),
        D("5000.00"),
    )
    assert first.next_at == NOON + timedelta(seconds=60)
    assert tick().action == "wait"


@pytest.mark.parametrize(
    ("reference", "action"),
    [
        (D("14.07"), "wait"),  # 0.50 %: not beyond the tolerance
        (D("13.93"), "wait"),
        (D("14.08"), "recentre"),  # 0.57 %
        (D("13.92"), "recentre"),
    ],
)
def test_re_centres_beyond_the_tolerance_only(reference, action):
    assert tick(reference=reference).action == action


def test_a_fixed_reference_re_centres_on_any_change():
    fixed = ProgramSettings(**{**SETTINGS.__dict__, "fixed_reference": True})
    assert tick(reference=D("14.01"), settings=fixed).action == "recentre"
    assert tick(reference=D("14.00"), settings=fixed).action == "wait"


def test_replenishes_after_the_delay_since_the_last_fill():
    filled = LadderState(
        **{**PLACED.__dict__, "ask_filled": 106, "last_fill_at": NOON - timedelta(seconds=10)}
    )
    early = tick(filled)  # 30.3 % of the asks, 10 s ago
    assert early.action == "wait"
    assert early.next_at == NOON + timedelta(seconds=20)
    assert "Fills took 30.29 % of the ASK side (106 of 350)" in early.reason
    assert tick(filled, now=NOON + timedelta(seconds=20)).action == "replenish"
    below = LadderState(**{**filled.__dict__, "ask_filled": 105})  # exactly 30 %
    assert tick(below, now=NOON + timedelta(hours=1)).action == "wait"


def test_a_fully_filled_ladder_is_replenished_not_placed_at_once():
    gone = LadderState(
        **{
            **PLACED.__dict__,
            "bid_filled": 700,
            "resting_orders": 3,
            "last_fill_at": NOON,
        }
    )
    assert tick(gone).action == "wait"
    assert tick(gone, now=NOON + timedelta(seconds=30)).action == "replenish"


def test_settings_changes_re_centre():
    assert (
        tick(
            settings=ProgramSettings(**{**SETTINGS.__dict__, "ladder": ladder_parse("1:100")})
        ).reason
        == "The program's ladder changed."
    )
    more = ProgramSettings(**{**SETTINGS.__dict__, "bid_target_eur": D("20000")})
    assert tick(settings=more).reason == "The program's targets changed."


def test_floor_ceiling_and_imbalance_withhold_sides():
    limits = ProgramSettings(
        **{
            **SETTINGS.__dict__,
            "price_floor": D("13.00"),
            "price_ceiling": D("15.00"),
            "max_imbalance_eur": D("1000"),
        }
    )
    assert side_targets(limits, reference=D("14"), position=Position())[:2] == (
        D("10000.00"),
        D("5000.00"),
    )
    bid, ask, notes = side_targets(limits, reference=D("15.01"), position=Position())
    assert (bid, ask) == (0, D("5000.00")) and "above the ceiling" in notes[0]
    bid, ask, notes = side_targets(limits, reference=D("12.99"), position=Position())
    assert (bid, ask) == (D("10000.00"), 0) and "below the floor" in notes[0]
    long = Position(bought_quantity=72, bought_eur=D("1000"))  # 72 × 14 = 1,008 ≥ 1,000
    assert side_targets(limits, reference=D("14"), position=long)[:2] == (0, D("5000.00"))
    short = Position(sold_quantity=72, sold_eur=D("1000"))
    assert side_targets(limits, reference=D("14"), position=short)[:2] == (D("10000.00"), 0)
    # The resting ladder was placed with both sides: withholding one re-centres.
    decision = tick(settings=limits, position=long)
    assert decision.action == "recentre" and "bids withheld" in decision.reason
    assert decision.bid_target_eur == 0


def test_both_sides_withheld_withdraws_the_ladder():
    bids_only = ProgramSettings(
        **{**SETTINGS.__dict__, "ask_target_eur": D("0"), "price_ceiling": D("13.00")}
    )
    assert tick(settings=bids_only).action == "withdraw"
    assert tick(LadderState(), settings=bids_only).action == "wait"


def test_active_hours_spanning_midnight_and_weekdays():
    night = ActiveHours(start=time(22), end=time(6), weekdays=frozenset({1, 2, 3, 4, 5}))
    monday_23 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert night.contains(monday_23)
    assert night.contains(monday_23 + timedelta(hours=6, minutes=59))  # Tue 05:59
    assert not night.contains(monday_23 + timedelta(hours=7))  # Tue 06:00
    assert not night.contains(datetime(2026, 12, 6, 23, 0, tzinfo=UTC))  # Sunday
    assert night.contains(datetime(2026, 12, 5, 1, 0, tzinfo=UTC))  # Sat 01:00: Friday's
    assert night.describe() == "22:00–06:00 UTC, Mon–Fri"
    berlin = ActiveHours(start=time(8), end=time(18), timezone="Europe/Berlin")
    assert berlin.contains(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))  # 08:00 in Berlin
    assert not berlin.contains(datetime(2026, 12, 1, 17, 0, tzinfo=UTC))  # 18:00
    assert ActiveHours().describe() == "around the clock"


def test_outside_hours_withdraws_what_rests_and_then_waits():
    office = ProgramSettings(
        **{**SETTINGS.__dict__, "hours": ActiveHours(start=time(8), end=time(12))}
    )
    assert tick(settings=office).action == "withdraw"
    assert tick(LadderState(), settings=office).action == "wait"


def test_mark_to_market_counts_cash_inventory_and_fees():
    position = Position(
        bought_quantity=100,
        bought_eur=D("1397"),
        sold_quantity=40,
        sold_eur=D("561.2"),
        fees_eur=D("1.50"),
    )
    mtm = mark_to_market(position, reference=D("14.10"))
    assert mtm.cash_eur == D("-835.8")
    assert mtm.inventory_eur == D("846.00")
    assert mtm.pnl_eur == D("8.70")


def test_alerts_need_n_in_a_row():
    common = {"last_error": "x", "low_funds": [], "low_funds_eur": None, "after": 3}
    assert alerts_due(failures=2, short_refreshes=2, **common) == {}
    assert set(alerts_due(failures=3, short_refreshes=3, **common)) == {
        ("refresh_failing", ""),
        ("side_short", ""),
    }


references = st.integers(min_value=100, max_value=100_000).map(lambda c: D(c).scaleb(-2))


@given(
    old=references,
    new=references,
    tolerance=st.integers(min_value=0, max_value=5000).map(lambda c: D(c).scaleb(-2)),
    minutes=st.integers(min_value=0, max_value=7 * 24 * 60),
    bid_filled=st.integers(min_value=0, max_value=700),
    ask_filled=st.integers(min_value=0, max_value=350),
)
def test_any_tick_is_consistent(old, new, tolerance, minutes, bid_filled, ask_filled):
    settings = ProgramSettings(
        **{
            **SETTINGS.__dict__,
            "refresh_tolerance_pct": tolerance,
            "hours": ActiveHours(start=time(8), end=time(18), weekdays=frozenset({1, 2, 3, 4, 5})),
        }
    )
    ladder = LadderState(
        **{
            **PLACED.__dict__,
            "reference": old,
            "bid_filled": bid_filled,
            "ask_filled": ask_filled,
            "last_fill_at": NOON if bid_filled or ask_filled else None,
        }
    )
    now = NOON + timedelta(minutes=minutes)
    decision = tick(ladder, reference=new, settings=settings, now=now)
    in_hours = settings.hours.contains(now)
    # Nothing is ever placed outside active hours, and what rests there is withdrawn.
    if not in_hours:
        assert decision.action == "withdraw"
    # A ladder is re-centred exactly when the move is beyond the tolerance.
    moved = abs(new - old) * 100 / old > tolerance
    if in_hours:
        assert (decision.action == "recentre") == moved
    # The next look is never later than one interval, never in the past.
    assert now < decision.next_at <= now + settings.refresh_interval
    # Placing decisions carry the targets; others carry no orders.
    if decision.places:
        assert (decision.bid_target_eur, decision.ask_target_eur) == (
            settings.bid_target_eur,
            settings.ask_target_eur,
        )


def test_the_next_look_is_no_later_than_the_active_hours_starting_or_ending():
    daily = ProgramSettings(
        **{
            **SETTINGS.__dict__,
            "refresh_interval": timedelta(days=1),
            "hours": ActiveHours(start=time(8), end=time(17), timezone="Europe/Berlin"),
        }
    )
    # 12:00 UTC is 13:00 in Berlin: the session ends at 17:00 Berlin, 16:00 UTC.
    assert tick(settings=daily).next_at == NOON.replace(hour=16)
    evening = NOON.replace(hour=18)  # outside: the next start, 07:00 UTC tomorrow
    withdrawn = tick(settings=daily, now=evening)
    assert withdrawn.action == "withdraw"
    assert withdrawn.next_at == (NOON + timedelta(days=1)).replace(hour=7)
    weekdays = ActiveHours(weekdays=frozenset({1, 2, 3, 4, 5}))
    assert weekdays.next_change(NOON) == (NOON + timedelta(days=1)).replace(hour=0)
    assert ActiveHours().next_change(NOON) is None


def test_a_side_filled_whole_is_replenished_even_with_a_100_percent_threshold():
    never = ProgramSettings(**{**SETTINGS.__dict__, "replenish_threshold_pct": D("100")})
    half = LadderState(**{**PLACED.__dict__, "bid_filled": 350, "last_fill_at": NOON})
    assert tick(half, settings=never, now=NOON + timedelta(minutes=1)).action == "wait"
    whole = LadderState(**{**PLACED.__dict__, "bid_filled": 700, "last_fill_at": NOON})
    decision = tick(whole, settings=never, now=NOON + timedelta(minutes=1))
    assert decision.action == "replenish" and "(700 of 700), all of it." in decision.reason
