"""Liquidity operations in the Django admin: state and fill columns with constant queries,
withdrawal from the change page and as a changelist action."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from liquidity.models import LiquidityOperation
from liquidity.services import liquidity_execute, liquidity_request_parse
from market.models import Balance, MarketMakerClient, Order, TicketLog
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
D = Decimal
pytestmark = pytest.mark.django_db
CHANGELIST = "admin:liquidity_liquidityoperation_changelist"


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def change_url(operation):
    return reverse("admin:liquidity_liquidityoperation_change", args=[operation.pk])


def withdraw_url(operation):
    return reverse("admin:liquidity_liquidityoperation_withdraw", args=[operation.pk])


def execute(staff, *, bid="1000", ask="1000", market="CEA"):
    """An operation placed by the service over freshly funded market makers only (earlier
    ones are set aside), so each operation reserves the funds of its own makers."""
    MarketMakerClient.objects.update(is_active=False)
    makers = [
        factories.market_maker(LP, EUR="5000.00"),
        factories.market_maker(LP, EUR="3000.00"),
        factories.market_maker(AH, **{market: 500}),
    ]
    request = liquidity_request_parse(market_code=market, bid_amount_eur=bid, ask_amount_eur=ask)
    return liquidity_execute(request=request, user=staff), makers


def locked(makers):
    return sum(
        (row.locked for row in Balance.objects.filter(holder__market_maker__in=makers)), D(0)
    )


def test_changelist_shows_state_and_fill_with_constant_queries(staff_client, staff):
    execute(staff)

    def get():
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get(reverse(CHANGELIST))
        assert response.status_code == 200
        return response.content.decode(), len(queries)

    page, few = get()
    assert "active" in page and "0.0 %" in page
    for _ in range(4):
        execute(staff)
    assert get()[1] == few


def test_fill_column_follows_trades(staff_client, staff):
    operation, _ = execute(staff, bid="0", ask="1000")
    ask = operation.orders.order_by("price").first()
    trader = factories.trader(EUR="100000.00")
    request = order_request_parse(
        market_code="CEA", side="BUY", order_type="LIMIT", price=str(ask.price), quantity=1
    )
    order_place(owner=trader, request=request)
    page = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert "partly filled" in page
    total = sum(operation.orders.values_list("quantity", flat=True))
    expected = (D(100) / total).quantize(D("0.1"), rounding="ROUND_FLOOR")
    assert f"{expected} %" in page


def test_withdraw_button_confirmation_and_release(staff_client, staff):
    operation, makers = execute(staff)
    assert locked(makers) > 0
    resting = operation.orders.filter(status__in=Order.RESTING).count()
    page = staff_client.get(change_url(operation)).content.decode()
    assert withdraw_url(operation) in page

    page = staff_client.get(withdraw_url(operation)).content.decode()
    assert "releases what they" in page and operation.ticket.ticket_id in page
    assert not LiquidityOperation.objects.filter(withdrawn_at__isnull=False).exists()

    response = staff_client.post(withdraw_url(operation), follow=True)
    page = response.content.decode()
    assert f"{resting} order(s) cancelled" in page
    assert withdraw_url(operation) not in page  # nothing left to withdraw
    assert locked(makers) == 0
    assert not operation.orders.filter(status__in=Order.RESTING).exists()
    operation.refresh_from_db()
    assert operation.withdrawn_by == staff and operation.withdrawn_at is not None
    ticket = TicketLog.objects.get(action_type="LIQUIDITY_WITHDRAWN")
    assert ticket.user == staff and ticket.ip_address == "127.0.0.1"
    assert "withdrawn" in staff_client.get(reverse(CHANGELIST)).content.decode()
    assert_all_invariants()


def test_withdraw_selected_action_releases_reservations(staff_client, staff):
    first, first_makers = execute(staff)
    second, second_makers = execute(staff, market="EUA")
    _, kept_makers = execute(staff)
    makers = first_makers + second_makers
    assert locked(makers) > 0
    selection = {"action": "withdraw_selected", "_selected_action": [first.pk, second.pk]}

    page = staff_client.post(reverse(CHANGELIST), selection).content.decode()
    assert "Withdraw liquidity operations" in page and first.ticket.ticket_id in page
    assert locked(makers) > 0  # only a confirmation so far

    response = staff_client.post(reverse(CHANGELIST), selection | {"apply": "yes"}, follow=True)
    page = response.content.decode()
    cancelled = first.orders_created + second.orders_created
    assert f"{cancelled} order(s) cancelled" in page
    assert locked(makers) == 0
    assert locked(kept_makers) > 0
    assert page.count(">withdrawn<") == 2
    assert TicketLog.objects.filter(action_type="LIQUIDITY_WITHDRAWN").count() == 2
    assert_all_invariants()


def test_withdraw_needs_the_manage_liquidity_permission(client, staff):
    operation, makers = execute(staff)
    viewer = factories.UserFactory(is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="liquidity", codename="view_liquidityoperation"
        )
    )
    client.force_login(viewer)
    page = client.get(change_url(operation)).content.decode()
    assert withdraw_url(operation) not in page
    assert client.get(withdraw_url(operation)).status_code == 403
    assert client.post(withdraw_url(operation)).status_code == 403
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "withdraw_selected" not in page
    client.post(
        reverse(CHANGELIST),
        {"action": "withdraw_selected", "_selected_action": [operation.pk], "apply": "yes"},
    )
    assert locked(makers) > 0 and operation.orders.filter(status="OPEN").exists()

    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="liquidity", codename="manage_liquidity")
    )
    viewer = type(viewer).objects.get(pk=viewer.pk)  # drop the permission cache
    client.force_login(viewer)
    assert client.post(withdraw_url(operation)).status_code == 302
    assert locked(makers) == 0


def test_operation_stays_read_only(staff_client, staff):
    operation, _ = execute(staff)
    response = staff_client.post(change_url(operation), {"notes": "changed"})
    assert response.status_code == 403


def test_nothing_to_withdraw_is_neither_offered_nor_audited(staff_client, staff):
    withdrawn, _ = execute(staff)
    kept, kept_makers = execute(staff)
    staff_client.post(withdraw_url(withdrawn))
    tickets = TicketLog.objects.count()

    # The withdraw page of a withdrawn operation: back to its page, saying why.
    for method in ("get", "post"):
        response = getattr(staff_client, method)(withdraw_url(withdrawn), follow=True)
        assert response.redirect_chain[-1][0] == change_url(withdrawn)
        assert "was already withdrawn" in response.content.decode()
    assert TicketLog.objects.count() == tickets

    # A selection mixing it with a live one withdraws the live one and counts the other.
    selection = {"action": "withdraw_selected", "_selected_action": [withdrawn.pk, kept.pk]}
    page = staff_client.post(reverse(CHANGELIST), selection).content.decode()
    assert "Skipped 1 operation(s) with nothing left to withdraw" in page
    assert kept.ticket.ticket_id in page and withdrawn.ticket.ticket_id not in page
    response = staff_client.post(reverse(CHANGELIST), selection | {"apply": "yes"}, follow=True)
    page = response.content.decode()
    assert f"Withdrew operation(s) #{kept.pk}" in page and "Skipped 1 operation(s)" in page
    assert locked(kept_makers) == 0
    assert TicketLog.objects.filter(action_type="LIQUIDITY_WITHDRAWN").count() == 2

    # Only operations with nothing left: refused, no page, no ticket.
    selection = {"action": "withdraw_selected", "_selected_action": [withdrawn.pk, kept.pk]}
    response = staff_client.post(reverse(CHANGELIST), selection, follow=True)
    assert "None of the selected operations has open orders" in response.content.decode()
    assert TicketLog.objects.filter(action_type="LIQUIDITY_WITHDRAWN").count() == 2


def test_the_change_page_shows_the_ladder_placed_read_only(staff_client, staff):
    MarketMakerClient.objects.update(is_active=False)
    factories.market_maker(LP, EUR="5000.00")
    factories.market_maker(AH, CEA=500)
    request = liquidity_request_parse(
        market_code="CEA", bid_amount_eur="1000", ask_amount_eur="1000", ladder="0.1:70, 0.3:30"
    )
    custom = liquidity_execute(request=request, user=staff)
    page = staff_client.get(change_url(custom)).content.decode()
    assert "<tr><td>1</td><td>0.1 %</td><td>70 %</td></tr>" in page
    assert "<tr><td>2</td><td>0.3 %</td><td>30 %</td></tr>" in page
    assert "0.1:70, 0.3:30 (custom)" in page
    assert "distance_pct" not in page  # the levels, not the raw JSON
    default, _ = execute(staff)
    assert (
        "0.2:50, 0.4:30, 0.5:20 (default)"
        in staff_client.get(change_url(default)).content.decode()
    )


def test_programs_refreshes_and_alerts_are_read_only_with_a_link_to_the_back_office(
    staff_client, staff
):
    from django.utils import timezone

    from liquidity.models import LiquidityAlert, LiquidityProgram, ProgramRefresh
    from liquidity.programs import program_create

    program = program_create(
        user=staff,
        data={"name": "Desk", "certificate_type": "CEA", "bid_target_eur": "100"},
    )
    refresh = ProgramRefresh.objects.create(
        program=program, outcome="failed", reason="no funds", created_at=timezone.now()
    )
    alert = LiquidityAlert.objects.create(
        program=program, kind="refresh_failing", message="failing", created_at=timezone.now()
    )
    for model, obj in (
        (LiquidityProgram, program),
        (ProgramRefresh, refresh),
        (LiquidityAlert, alert),
    ):
        name = model._meta.model_name
        listing = staff_client.get(reverse(f"admin:liquidity_{name}_changelist"))
        assert listing.status_code == 200
        change = staff_client.get(reverse(f"admin:liquidity_{name}_change", args=[obj.pk]))
        assert change.status_code == 200
        assert 'name="_save"' not in change.content.decode()  # nothing to save
        assert staff_client.get(reverse(f"admin:liquidity_{name}_add")).status_code == 403
    page = staff_client.get(reverse("admin:liquidity_liquidityprogram_changelist")).content
    assert f'href="/backoffice/liquidity/programs/{program.pk}/"' in page.decode()
