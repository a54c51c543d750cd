"""Liquidity programs, run tick by tick with a controlled clock (`now=`)."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from liquidity import programs
from liquidity.models import LiquidityAlert, LiquidityOperation, LiquidityProgram, ProgramRefresh
from market.models import Market, MarketMakerClient, Order, TicketLog
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
Outcome = ProgramRefresh.Outcome


@pytest.fixture
def staff(db):
    return factories.StaffFactory(email="desk@example.com")


@pytest.fixture
def makers(db):
    return [
        factories.market_maker(LP, EUR="100000"),
        factories.market_maker(LP, EUR="100000"),
        factories.market_maker(AH, CEA=10000),
    ]


def create(staff, **settings):
    data = {
        "name": "CEA standing",
        "certificate_type": "CEA",
        "bid_target_eur": "10000",
        "ask_target_eur": "10000",
        "refresh_interval_seconds": 60,
        "refresh_tolerance_pct": "0.5",
        "replenish_threshold_pct": "30",
        "replenish_delay_seconds": 30,
        **settings,
    }
    return programs.program_create(user=staff, data=data)


def started(staff, **settings):
    program = create(staff, **settings)
    programs.program_activate(program_id=program.pk, user=staff)
    return program


def tick(program, at):
    return programs.program_refresh(program_id=program.pk, worker="test", now=at)


def resting(program):
    return Order.objects.filter(
        ticket__liquidity_operation__program=program, status__in=Order.RESTING
    )


def trade(side, quantity, *, price=None, order_type="MARKET", **funds):
    trader = factories.trader(**funds)
    return order_place(
        owner=trader,
        request=order_request_parse(
            market_code="CEA",
            side=side,
            order_type=order_type,
            quantity=str(quantity),
            price=price,
        ),
    )


def test_activation_places_the_ladder_on_the_first_tick(staff, makers):
    program = started(staff)
    now = timezone.now()
    refresh = tick(program, now)
    assert refresh.outcome == Outcome.PLACED
    operation = refresh.operation
    assert operation.program == program and operation.orders_created == refresh.orders_placed
    assert D("9986") < operation.actual_bid_eur <= D("10000")
    assert D("9986") < operation.actual_ask_eur <= D("10000")
    assert sorted({o.price for o in resting(program) if o.side == "BUY"}, reverse=True) == [
        D("13.97"),
        D("13.94"),
        D("13.93"),
    ]
    assert operation.ticket.action_type == "LIQUIDITY_PROGRAM_REFRESH"
    assert operation.ticket.user == staff
    program.refresh_from_db()
    assert program.ladder_reference == D("14.00")
    assert program.next_refresh_at == now + timedelta(seconds=60)
    # Nothing moved: the next tick waits and records nothing.
    assert tick(program, now + timedelta(seconds=60)) is None
    assert program.refreshes.count() == 1
    assert_all_invariants()


def test_re_centres_when_the_reference_moves_past_the_tolerance_and_not_before(staff, makers):
    program = started(staff, refresh_tolerance_pct="0.3")
    now = timezone.now()
    tick(program, now)
    # The program's reference leaves its own orders out: with no one else's orders in
    # the book it is the last trade price. 14.03 is 0.21 % from 14.00: within tolerance.
    trade("BUY", 100, EUR="2000")
    assert Market.objects.get(code="CEA").last_price == D("14.03")
    assert tick(program, now + timedelta(seconds=61)) is None
    trade("BUY", 300, EUR="5000")  # through the first ask level into the second
    last = Market.objects.get(code="CEA").last_price
    assert last == D("14.06")  # 0.43 % from 14.00
    refresh = tick(program, now + timedelta(seconds=122))
    assert refresh.outcome == Outcome.RECENTRED
    assert "moved 0.43 % (€14.00 → €14.06), beyond the 0.30 % tolerance" in refresh.reason
    assert refresh.reference_price == last
    old = LiquidityOperation.objects.filter(program=program).order_by("pk").first()
    assert old.withdrawn_at is not None
    # Only the new ladder rests: every resting order is the new operation's.
    assert set(resting(program).values_list("ticket_id", flat=True)) == {
        refresh.operation.ticket_id
    }
    assert_all_invariants()


def test_replenishes_after_fills_once_the_delay_has_passed(staff, makers):
    program = started(
        staff, replenish_threshold_pct="30", replenish_delay_seconds=30, refresh_tolerance_pct="5"
    )
    now = timezone.now()
    tick(program, now)
    ask_placed = sum(o.quantity for o in resting(program) if o.side == "SELL")
    filled_now = timezone.now()
    trade("BUY", ask_placed // 2, EUR="20000")  # half the asks
    # Before the delay: it waits, and says when it will replenish.
    assert tick(program, filled_now + timedelta(seconds=10)) is None
    program.refresh_from_db()
    assert program.next_refresh_at <= filled_now + timedelta(seconds=31)
    refresh = tick(program, filled_now + timedelta(seconds=31))
    assert refresh.outcome == Outcome.REPLENISHED
    assert "of the ASK side" in refresh.reason
    assert D("9986") < refresh.ask_placed_eur <= D("10000")
    assert_all_invariants()


def test_the_ceiling_withholds_bids_and_the_floor_asks(staff, makers):
    program = started(staff, price_ceiling="13.50")
    refresh = tick(program, timezone.now())
    assert refresh.operation.orders.filter(side="BUY").count() == 0
    assert refresh.operation.orders.filter(side="SELL").count() == 3
    assert "above the ceiling €13.50: no bids" in refresh.reason
    programs.program_update(
        program_id=program.pk, user=staff, data={"price_ceiling": "", "price_floor": "14.50"}
    )
    refresh = tick(program, timezone.now() + timedelta(seconds=1))
    assert refresh.outcome == Outcome.RECENTRED
    assert refresh.operation.orders.filter(side="SELL").count() == 0
    assert "below the floor €14.50: no asks" in refresh.reason


def test_the_imbalance_limit_withholds_the_side_that_would_grow_it(staff, makers):
    program = started(
        staff, max_imbalance_eur="500", refresh_tolerance_pct="10", replenish_threshold_pct="100"
    )
    now = timezone.now()
    tick(program, now)
    trade("SELL", 40, CEA=40)  # the makers buy 40 × ~€13.9 = ~€560 > €500
    refresh = tick(program, now + timedelta(seconds=61))
    assert refresh.outcome == Outcome.RECENTRED
    assert "bids withheld" in refresh.reason
    assert not refresh.operation.orders.filter(side="BUY").exists()
    assert refresh.operation.orders.filter(side="SELL").exists()


def test_outside_active_hours_the_ladder_is_withdrawn_and_placed_again_in_them(staff, makers):
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    program = started(staff, active_from="08:00", active_until="18:00", timezone="UTC")
    assert tick(program, now).outcome == Outcome.PLACED
    evening = now.replace(hour=18, minute=30)
    refresh = tick(program, evening)
    assert refresh.outcome == Outcome.WITHDRAWN
    assert "Outside active hours (08:00–18:00 UTC" in refresh.reason
    assert not resting(program).exists()
    assert tick(program, evening + timedelta(minutes=5)) is None
    morning = now + timedelta(hours=20)  # 08:00 the next day
    assert tick(program, morning).outcome == Outcome.PLACED
    assert resting(program).exists()


def test_pause_keeps_the_orders_and_stop_withdraws_them(staff, makers):
    program = started(staff)
    tick(program, timezone.now())
    count = resting(program).count()
    programs.program_pause(program_id=program.pk, user=staff)
    assert resting(program).count() == count
    assert tick(program, timezone.now() + timedelta(hours=1)) is None  # not refreshed
    assert programs.programs_refresh_due(now=timezone.now() + timedelta(hours=1)) == []
    stopped = programs.program_stop(program_id=program.pk, user=staff)
    assert stopped.orders_withdrawn == count
    assert not resting(program).exists()
    program.refresh_from_db()
    assert program.state == LiquidityProgram.State.STOPPED
    assert TicketLog.objects.filter(action_type="LIQUIDITY_PROGRAM_STOPPED").count() == 1
    with pytest.raises(ValidationError, match="only an active or paused program"):
        programs.program_stop(program_id=program.pk, user=staff)
    assert_all_invariants()


def test_the_kill_switch_leaves_no_program_order_resting(staff, makers):
    factories.market_maker(AH, EUA=10000)
    cea = started(staff)
    eua = started(staff, name="EUA standing", certificate_type="EUA")
    now = timezone.now()
    tick(cea, now)
    tick(eua, now)
    programs.program_pause(program_id=eua.pk, user=staff)
    assert resting(cea).exists() and resting(eua).exists()
    result = programs.programs_kill(user=staff)
    assert {p.pk for p in result.programs} == {cea.pk, eua.pk}
    assert not Order.objects.filter(
        ticket__liquidity_operation__program__isnull=False, status__in=Order.RESTING
    ).exists()
    assert set(LiquidityProgram.objects.values_list("state", flat=True)) == {"stopped"}
    ticket = TicketLog.objects.get(action_type="LIQUIDITY_KILL_SWITCH")
    assert ticket.after_state["orders_withdrawn"] == result.orders_withdrawn > 0
    assert_all_invariants()


def test_a_refresh_that_cannot_run_keeps_the_old_ladder_and_says_why(staff, makers):
    program = started(staff, refresh_tolerance_pct="0.1")
    now = timezone.now()
    tick(program, now)
    before = set(resting(program).values_list("pk", flat=True))
    programs.program_update(program_id=program.pk, user=staff, data={"ask_target_eur": "10000000"})
    refresh = tick(program, now + timedelta(seconds=1))
    assert refresh.outcome == Outcome.FAILED
    assert "Insufficient assets: ASK needs" in refresh.reason
    assert set(resting(program).values_list("pk", flat=True)) == before
    program.refresh_from_db()
    assert program.consecutive_failures == 1 and program.short_refreshes == 1
    assert program.next_refresh_at == now + timedelta(seconds=61)
    assert_all_invariants()


def test_a_paused_market_is_a_failed_refresh(staff, makers):
    program = started(staff)
    Market.objects.filter(code="CEA").update(trading_enabled=False)
    refresh = tick(program, timezone.now())
    assert refresh.outcome == Outcome.FAILED
    assert refresh.reason == "Trading in CEA is paused."


def test_repeated_failures_raise_one_alert_mailed_to_liquidity_staff(
    staff, makers, django_capture_on_commit_callbacks
):
    program = started(staff, alert_after_refreshes=2, ask_target_eur="10000000")
    now = timezone.now()

    def run(at):
        with django_capture_on_commit_callbacks(execute=True):
            return tick(program, at)

    run(now)
    assert not LiquidityAlert.objects.exists()
    run(now + timedelta(seconds=60))
    alerts = LiquidityAlert.objects.filter(resolved_at__isnull=True)
    assert {a.kind for a in alerts} == {"refresh_failing", "side_short"}
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["desk@example.com"]
    assert "The last 2 refreshes failed" in mail.outbox[0].body
    run(now + timedelta(seconds=120))
    assert LiquidityAlert.objects.count() == 2 and len(mail.outbox) == 1  # not again
    programs.program_update(program_id=program.pk, user=staff, data={"ask_target_eur": "1000"})
    assert run(now + timedelta(seconds=180)).outcome == Outcome.PLACED
    assert not LiquidityAlert.objects.filter(resolved_at__isnull=True).exists()


def test_a_maker_low_on_funds_raises_an_alert(staff, makers):
    program = started(staff, low_funds_eur="96000")
    tick(program, timezone.now())
    low = LiquidityAlert.objects.filter(kind="maker_low_funds")
    # Both providers locked ~€5,000 of €100,000, below €96,000 left; the CEA are worth more.
    assert sorted(a.subject for a in low) == sorted(m.code for m in makers[:2])


def test_one_running_program_per_market(staff, makers):
    started(staff)
    second = create(staff, name="Another")
    with pytest.raises(ValidationError, match="already runs on CEA"):
        programs.program_activate(program_id=second.pk, user=staff)


def test_staff_without_the_permission_cannot_manage_programs(makers):
    clerk = factories.UserFactory(is_staff=True)
    with pytest.raises(PermissionDenied):
        programs.program_create(user=clerk, data={"name": "x"})
    with pytest.raises(PermissionDenied):
        programs.programs_kill(user=clerk)


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"bid_target_eur": "0", "ask_target_eur": "0"}, "__all__", "BID or an ASK target"),
        ({"ladder": "0.2:50"}, "ladder", "add up to 50 %"),
        ({"refresh_interval_seconds": "2"}, "refresh_interval_seconds", "from 5 to"),
        ({"price_floor": "15", "price_ceiling": "14"}, "price_ceiling", "above the floor"),
        ({"reference_mode": "fixed"}, "fixed_reference_price", "Enter the fixed reference"),
        ({"active_from": "08:00"}, "active_until", "both the start and the end"),
        ({"active_from": "8am", "active_until": "18:00"}, "active_from", "HH:MM"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
        ({"active_weekdays": "189"}, "active_weekdays", "ISO weekdays"),
        ({"certificate_type": "XXX"}, "certificate_type", "Unknown market"),
        ({"colour": "red"}, "__all__", "Unknown setting(s): colour."),
    ],
)
def test_settings_are_checked_and_nothing_is_saved(staff, settings, field, message):
    with pytest.raises(ValidationError) as caught:
        create(staff, **settings)
    assert message in " ".join(caught.value.message_dict[field])
    assert not LiquidityProgram.objects.exists()


def test_status_shows_the_ladder_inventory_fills_and_pnl(
    staff, makers, django_assert_max_num_queries
):
    from liquidity.program_status import program_status

    program = started(staff, low_funds_eur="96000")
    now = timezone.now()
    tick(program, now)
    trade("BUY", 10, EUR="200")  # the makers sell 10 at 14.03
    with django_assert_max_num_queries(12):
        status = program_status(program_id=program.pk, now=now)
    assert [(r.side, r.level, r.price) for r in status.ladder][:2] == [
        ("BID", 1, D("13.97")),
        ("BID", 2, D("13.94")),
    ]
    # Distances from the reference now: the last trade, 14.03.
    assert status.reference == D("14.03")
    assert status.ladder[0].distance_pct == D("0.43")
    ask1 = next(r for r in status.ladder if r.side == "ASK" and r.level == 1)
    assert (ask1.price, ask1.distance_pct, ask1.quantity) == (D("14.03"), D("0.00"), 346)
    assert status.position.sold_quantity == 10 and status.position.sold_eur == D("140.30")
    # Valued at the reference now (the last trade, 14.03): cash 140.30 − 10 × 14.03 = 0.
    assert status.pnl.pnl_eur == D("0.00")
    assert status.makers_count == 3
    assert status.last_refresh.outcome == Outcome.PLACED
    assert any("below the €96,000.00 threshold" in w for w in status.warnings)


def test_a_crashing_program_does_not_stop_the_others(staff, makers):
    factories.market_maker(AH, EUA=10000)
    broken = started(staff)
    healthy = started(staff, name="EUA standing", certificate_type="EUA")
    # A time zone that no longer exists (a tzdata upgrade): deciding raises.
    LiquidityProgram.objects.filter(pk=broken.pk).update(timezone="Gone/Away")
    now = timezone.now()
    done = programs.programs_refresh_due(now=now, worker="w")
    assert {(r.program_id, r.outcome) for r in done} == {
        (broken.pk, Outcome.FAILED),
        (healthy.pk, Outcome.PLACED),
    }
    broken.refresh_from_db()
    assert "The refresh failed unexpectedly (ValueError" in broken.last_error
    assert broken.next_refresh_at == now + timedelta(seconds=60)  # not again at once
    assert programs.programs_refresh_due(now=now + timedelta(seconds=1)) == []


def test_a_wait_after_failures_clears_them_and_their_alerts(staff, makers):
    program = started(staff, alert_after_refreshes=1)
    now = timezone.now()
    tick(program, now)
    programs.program_update(program_id=program.pk, user=staff, data={"bid_target_eur": "10000000"})
    assert tick(program, now + timedelta(seconds=1)).outcome == Outcome.FAILED
    assert LiquidityAlert.objects.filter(resolved_at__isnull=True).count() == 2
    programs.program_update(program_id=program.pk, user=staff, data={"bid_target_eur": "10000"})
    assert tick(program, now + timedelta(seconds=2)) is None  # the ladder matches again
    program.refresh_from_db()
    assert (program.consecutive_failures, program.short_refreshes, program.last_error) == (
        0,
        0,
        "",
    )
    assert not LiquidityAlert.objects.filter(resolved_at__isnull=True).exists()


def test_stopping_resolves_the_programs_alerts(staff, makers):
    program = started(staff, alert_after_refreshes=1, ask_target_eur="10000000")
    tick(program, timezone.now())
    assert LiquidityAlert.objects.filter(resolved_at__isnull=True).exists()
    programs.program_stop(program_id=program.pk, user=staff)
    assert not LiquidityAlert.objects.filter(resolved_at__isnull=True).exists()


def test_refreshes_stop_acting_for_staff_who_lost_the_permission(staff, makers):
    program = started(staff)
    tick(program, timezone.now())
    before = set(resting(program).values_list("pk", flat=True))
    staff.is_superuser = False
    staff.save()
    refresh = tick(program, timezone.now() + timedelta(minutes=5))
    assert refresh.outcome == Outcome.FAILED
    assert "may no longer manage liquidity" in refresh.reason
    # Nothing placed for them, and the ladder resting stays as it was.
    assert set(resting(program).values_list("pk", flat=True)) == before
