"""The liquidity programs' back-office pages through Django's test client: who may open
and post what, the settings form (errors next to their fields, nothing saved), the
actions and the kill switch, the polled status partial, and query counts that do not
grow with programs, makers or orders."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from liquidity import programs
from liquidity.models import LiquidityAlert, LiquidityProgram, ProgramRefresh
from market.models import Market, MarketMakerClient, Order, TicketLog
from market.services.orders import order_place, order_request_parse
from market.tests import factories

pytestmark = pytest.mark.django_db

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
State = LiquidityProgram.State
HX = {"HTTP_HX_REQUEST": "true"}
BASE = "/backoffice/liquidity/programs/"
NEW = f"{BASE}new/"
KILL = f"{BASE}kill/"

FORM = {
    "name": "Standing CEA",
    "certificate_type": "CEA",
    "bid_target_eur": "10000",
    "ask_target_eur": "10000",
    "ladder": "0.2:50, 0.4:30, 0.5:20",
    "reference_mode": "book",
    "fixed_reference_price": "",
    "refresh_interval_seconds": "60",
    "refresh_tolerance_pct": "0.50",
    "replenish_threshold_pct": "30",
    "replenish_delay_seconds": "30",
    "price_floor": "",
    "price_ceiling": "",
    "max_imbalance_eur": "",
    "active_from": "",
    "active_until": "",
    "active_weekdays": ["1", "2", "3", "4", "5", "6", "7"],
    "timezone": "UTC",
    "low_funds_eur": "",
    "alert_after_refreshes": "3",
    "notes": "",
}


@pytest.fixture
def staff(db):
    return factories.StaffFactory(username="desk")


@pytest.fixture
def client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def makers(db):
    return [factories.market_maker(LP, EUR="100000"), factories.market_maker(AH, CEA=10000)]


def html(response) -> str:
    return response.content.decode()


def text(response) -> str:
    """The response's visible text, whitespace collapsed."""
    body = re.sub(r"<script.*?</script>", " ", html(response), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def program(staff, **settings):
    data = {key: value for key, value in FORM.items() if key != "active_weekdays"}
    return programs.program_create(user=staff, data={**data, **settings})


def running(staff, **settings):
    made = program(staff, **settings)
    programs.program_activate(program_id=made.pk, user=staff)
    programs.program_refresh(program_id=made.pk, worker="test")
    made.refresh_from_db()
    return made


def resting(made):
    return Order.objects.filter(
        ticket__liquidity_operation__program=made, status__in=Order.RESTING
    ).count()


def buy(quantity):
    trader = factories.trader(EUR="100000")
    order_place(
        owner=trader,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="MARKET", quantity=str(quantity)
        ),
    )


# ============================================================================ access


def urls(pk):
    p = f"{BASE}{pk}/"
    gets = [BASE, NEW, p, f"{p}edit/"]
    posts = [
        (NEW, FORM),
        (f"{p}edit/", FORM),
        (f"{p}activate/", {}),
        (f"{p}pause/", {}),
        (f"{p}stop/", {"confirm": "yes"}),
        (KILL, {"confirm": "yes"}),
    ]
    return gets, posts


def state_of_world():
    return (
        sorted(LiquidityProgram.objects.values_list("pk", "state", "name")),
        TicketLog.objects.count(),
        Order.objects.filter(status__in=Order.RESTING).count(),
    )


def test_anonymous_is_sent_to_the_login_page(staff):
    gets, posts = urls(program(staff).pk)
    before = state_of_world()
    for url in gets:
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(
            f"/accounts/login/?next={url}"
        ), url
    for url, data in posts:
        response = Client().post(url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
    assert state_of_world() == before


@pytest.mark.parametrize("who", ["trader", "staff without the permission"])
def test_traders_and_staff_without_the_permission_get_403_and_change_nothing(
    staff, who, django_user_model
):
    gets, posts = urls(running(staff).pk)
    user = django_user_model.objects.create_user(
        "someone", password="pw", is_staff=who != "trader"
    )
    client = Client()
    client.force_login(user)
    before = state_of_world()
    for url in gets:
        assert client.get(url).status_code == 403, url
        assert client.get(url, **HX).status_code == 403, url
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert state_of_world() == before


def test_staff_with_the_permission_may_open_and_post_everything(staff, makers, django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    client = Client()
    client.force_login(user)
    made = program(staff)
    gets, posts = urls(made.pk)
    for url in gets:
        assert client.get(url).status_code == 200, url
    for url, data in posts:
        data = {**data, "name": "Other"} if "certificate_type" in data else data
        assert client.post(url, data).status_code == 302, url
    assert LiquidityProgram.objects.filter(created_by=user).exists()


def test_unknown_programs_are_404(client):
    for url in ("999999/", "999999/edit/"):
        assert client.get(f"{BASE}{url}").status_code == 404
    for url in ("activate", "pause", "stop"):
        assert client.post(f"{BASE}999999/{url}/", {"confirm": "yes"}).status_code == 404


def test_actions_are_post_only(client, staff):
    made = program(staff)
    for url in ("activate", "pause", "stop"):
        assert client.get(f"{BASE}{made.pk}/{url}/").status_code == 405
    assert client.get(KILL).status_code == 405


def test_every_post_needs_the_csrf_token(staff, makers):
    made = running(staff)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    _, posts = urls(made.pk)
    before = state_of_world()
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert state_of_world() == before


# ============================================================================ the form


def test_the_new_form_shows_the_defaults_grouped_with_help(client):
    response = client.get(NEW)
    page = html(response)
    for legend in (
        "Targets &amp; ladder",
        "Reference",
        "Refresh &amp; replenish",
        "Limits",
        "Active hours",
        "Alerts",
        "Notes",
    ):
        assert f">{legend}</legend>" in page, legend
    assert 'value="0.2:50, 0.4:30, 0.5:20"' in page
    assert 'name="refresh_interval_seconds" id="id_refresh_interval_seconds"\n' in page or (
        'value="60"' in page
    )
    assert 'value="0.50"' in page and 'value="30.00"' in page and 'value="UTC"' in page
    assert "re-centre when the reference moved more than this from the ladder" in page.lower()
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
        assert f"{day}\n" in page or f"{day} " in page
    assert page.count('type="checkbox" name="active_weekdays"') == 7
    assert page.count("checked") >= 8  # every weekday and the book reference


def test_create_saves_a_draft_and_goes_to_its_status(client, staff):
    response = client.post(NEW, {**FORM, "active_weekdays": ["1", "2", "3", "4", "5"]})
    made = LiquidityProgram.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{BASE}{made.pk}/"
    assert made.state == State.DRAFT and made.active_weekdays == "12345"
    assert made.created_by == staff
    page = client.get(response["Location"])
    assert "created as a draft" in html(page)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Give the program a name."),
        ({"bid_target_eur": "abc"}, "bid_target_eur", ""),
        ({"ladder": "0.2:50, 0.4:30"}, "ladder", ""),
        ({"refresh_interval_seconds": "2"}, "refresh_interval_seconds", "5"),
        ({"reference_mode": "fixed"}, "fixed_reference_price", "fixed reference price"),
        ({"price_floor": "15", "price_ceiling": "14"}, "price_ceiling", "above the floor"),
        ({"active_from": "08:00"}, "active_until", "both the start and the end"),
        ({"active_from": "25:00", "active_until": "18:00"}, "active_from", "HH:MM"),
        ({"active_weekdays": []}, "active_weekdays", "ISO weekdays"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
        ({"alert_after_refreshes": "0"}, "alert_after_refreshes", ""),
    ],
)
def test_bad_settings_show_errors_next_to_their_field_and_save_nothing(
    client, changes, field, message
):
    before = state_of_world()
    response = client.post(NEW, {**FORM, **changes})
    assert response.status_code == 200
    page = html(response)
    error = re.search(rf'data-testid="error-{field}">([^<]*)<', page)
    assert error, f"no error next to {field}"
    assert message in error.group(1)
    assert "Nothing was saved" in page or 'data-testid="form-errors"' in page
    assert state_of_world() == before
    # What was typed is kept.
    for value in changes.values():
        if isinstance(value, str) and value:
            assert f'value="{value}"' in page


def test_both_targets_zero_is_an_error_above_the_form(client):
    response = client.post(NEW, {**FORM, "bid_target_eur": "0", "ask_target_eur": "0"})
    assert "Enter a BID or an ASK target" in html(response)
    assert not LiquidityProgram.objects.exists()


def test_edit_shows_the_settings_and_saves_changes(client, staff):
    made = program(staff, price_floor="12.00", active_from="08:00", active_until="18:00")
    page = html(client.get(f"{BASE}{made.pk}/edit/"))
    assert 'value="12.00"' in page and 'value="08:00"' in page and 'value="18:00"' in page
    data = {**FORM, "bid_target_eur": "5000", "notes": "smaller"}
    response = client.post(f"{BASE}{made.pk}/edit/", data)
    assert response.status_code == 302
    made.refresh_from_db()
    assert made.bid_target_eur == 5000 and made.notes == "smaller"
    assert TicketLog.objects.filter(action_type="LIQUIDITY_PROGRAM_UPDATED").count() == 1


def test_edit_errors_save_nothing(client, staff):
    made = program(staff)
    response = client.post(
        f"{BASE}{made.pk}/edit/", {**FORM, "bid_target_eur": "5000", "ladder": "x"}
    )
    assert 'data-testid="error-ladder"' in html(response)
    made.refresh_from_db()
    assert made.bid_target_eur == 10000


def test_a_running_program_cannot_move_market_on_the_form(client, staff, makers):
    made = running(staff)
    response = client.post(f"{BASE}{made.pk}/edit/", {**FORM, "certificate_type": "EUA"})
    assert "Stop the program before moving it" in html(response)
    made.refresh_from_db()
    assert made.market.code == "CEA"


# ============================================================================ actions


def test_activate_pause_resume_and_stop_through_the_page(client, staff, makers):
    made = program(staff)
    status = f"{BASE}{made.pk}/"
    page = html(client.get(status))
    assert "/activate/" in page and "/pause/" not in page and "/stop/" not in page

    response = client.post(f"{status}activate/")
    assert response.status_code == 302 and response["Location"] == status
    made.refresh_from_db()
    assert made.state == State.ACTIVE
    programs.program_refresh(program_id=made.pk, worker="test")  # the worker's tick
    count = resting(made)
    assert count > 0
    page = html(client.get(status, follow=True))
    assert "/pause/" in page and "/stop/" in page and "/activate/" not in page
    assert page.count('data-testid="ladder-row"') == 6

    client.post(f"{status}pause/")
    made.refresh_from_db()
    assert made.state == State.PAUSED and resting(made) == count
    page = html(client.get(status))
    assert ">Resume</button>" in page and "/pause/" not in page

    # Stop asks first (no JavaScript needed), saying what it withdraws; nothing changes.
    confirm = client.post(f"{status}stop/")
    assert confirm.status_code == 200
    assert f"withdraws its {count} orders" in text(confirm)
    made.refresh_from_db()
    assert made.state == State.PAUSED and resting(made) == count

    response = client.post(f"{status}stop/", {"confirm": "yes"}, follow=True)
    made.refresh_from_db()
    assert made.state == State.STOPPED and resting(made) == 0
    assert f"{count} orders withdrawn" in text(response)


def test_a_refused_action_is_a_message_and_changes_nothing(client, staff, makers):
    made = program(staff)
    response = client.post(f"{BASE}{made.pk}/pause/", follow=True)
    assert "Only an active program can be paused" in html(response)
    made.refresh_from_db()
    assert made.state == State.DRAFT
    other = running(staff, name="First")
    response = client.post(f"{BASE}{made.pk}/activate/", follow=True)
    assert f"{other.name} (#{other.pk}) already runs on CEA" in html(response)
    response = client.post(f"{BASE}{made.pk}/stop/", {"confirm": "yes"}, follow=True)
    assert "only an active or paused program can be stopped" in html(response)


def test_the_kill_switch_confirms_then_stops_everything(client, staff, makers):
    first = running(staff, name="CEA desk")
    eua = factories.market_maker(AH, EUA=10000)
    second = running(staff, name="EUA desk", certificate_type="EUA", bid_target_eur="5000")
    assert eua.pk
    programs.program_pause(program_id=second.pk, user=staff)
    orders = resting(first) + resting(second)
    assert orders > 0

    page = html(client.get(BASE))
    assert f'action="{KILL}"' in page and "Kill switch" in page
    confirm = client.post(KILL)
    assert confirm.status_code == 200
    said = text(confirm)
    assert "This stops 2 programs (every active and paused one)" in said
    assert f"withdraws {orders} orders resting" in said
    assert LiquidityProgram.objects.filter(state=State.STOPPED).count() == 0

    response = client.post(KILL, {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == BASE
    assert LiquidityProgram.objects.filter(state=State.STOPPED).count() == 2
    assert resting(first) == resting(second) == 0
    ticket = TicketLog.objects.get(action_type="LIQUIDITY_KILL_SWITCH")
    shown = text(client.get(BASE))
    assert f"Kill switch pulled: 2 programs stopped (CEA desk, EUA desk), {orders} orders" in shown
    assert f"Ticket {ticket.ticket_id}." in shown


# ============================================================================ list and status


def test_the_list_shows_every_program_and_the_open_alerts(client, staff, makers):
    made = running(staff, name="CEA desk")
    program(staff, name="Draft one", certificate_type="EUA", ladder="0.3:100")
    LiquidityAlert.objects.create(
        program=made,
        kind=LiquidityAlert.Kind.SIDE_SHORT,
        subject="BID",
        message="The BID side was short for 3 refreshes.",
        created_at=timezone.now(),
    )
    response = client.get(BASE)
    page = html(response)
    assert page.count('data-testid="program-row"') == 2
    shown = text(response)
    assert "CEA desk" in shown and "Draft one" in shown
    assert "0.2:50, 0.4:30, 0.5:20" in shown and "0.3:100" in shown
    assert "€10,000.00" in shown
    assert 'data-state="active"' in page and 'data-state="draft"' in page
    banner = re.search(r'data-testid="open-alerts".*?</section>', page, re.S).group(0)
    assert "CEA desk" in banner and "The BID side was short for 3 refreshes." in banner
    assert 'data-testid="row-alerts">1<' in page
    # The navigation's entry shows the count too.
    assert 'data-testid="nav-badge"' in page


def test_the_status_page_shows_ladder_inventory_pnl_and_refreshes(client, staff, makers):
    made = running(staff)
    buy(100)
    response = client.get(f"{BASE}{made.pk}/")
    shown = text(response)
    page = html(response)
    assert page.count('data-testid="ladder-row"') == 6
    assert "Reference now" in shown and "Ladder's reference €14.00" in shown
    assert "Reference now €14.03" in shown and "moved 0.21 % (tolerance 0.50 %)" in shown
    assert "BID 1 €13.97 0.43 % 357" in shown  # the distance from the reference now
    assert page.count('data-testid="maker-row"') == 2
    assert "Total" in shown
    assert re.search(r"Bought 0 CEA.*Sold 100 CEA", shown)
    assert "P&amp;L" in page
    refresh = ProgramRefresh.objects.get(program=made)
    assert f'href="/backoffice/liquidity/{refresh.operation_id}/"' in page
    assert refresh.operation.ticket.ticket_id in shown and "Ladder placed" in shown
    # Every refresh of this program, as CSV.
    csv_url = f"/backoffice/liquidity/programs/refreshes.csv?program={made.pk}"
    assert f'href="{csv_url}"' in page
    export = b"".join(client.get(csv_url).streaming_content).decode()
    assert "Ladder placed" in export and refresh.operation.ticket.ticket_id in export


def test_the_status_part_is_polled_and_answers_alone_to_htmx(client, staff, makers):
    made = running(staff)
    url = f"{BASE}{made.pk}/"
    page = html(client.get(url))
    assert f'hx-get="{url}" hx-trigger="every 5s"' in page
    assert f'href="{url}" class' in page and ">Refresh</a>" in page
    partial = client.get(url, **HX)
    assert "<html" not in html(partial)
    assert html(partial).lstrip().startswith('<div id="program-status"')
    buy(10)
    assert re.search(r"Sold 10 CEA", text(client.get(url, **HX)))


def test_warnings_and_makers_beyond_the_first_50(client, staff, makers, monkeypatch):
    from liquidity import program_status

    monkeypatch.setattr(program_status, "MAKERS_SHOWN", 1)
    made = running(staff)
    programs.program_pause(program_id=made.pk, user=staff)
    response = client.get(f"{BASE}{made.pk}/")
    assert "Paused: its orders stay in the book" in text(response)
    assert "and 1 more" in text(response)


# ============================================================================ query counts


def count_queries(client, url, **extra) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **extra)
    assert response.status_code == 200
    return len(queries)


def test_list_queries_do_not_grow_with_programs(client, staff):
    markets = list(Market.objects.order_by("code"))

    def add(count):
        for number in range(count):
            made = program(staff, name=f"P{number}", certificate_type=markets[number % 2].code)
            LiquidityAlert.objects.create(
                program=made,
                kind=LiquidityAlert.Kind.REFRESH_FAILING,
                message="failing",
                created_at=timezone.now(),
            )

    add(2)
    client.get(BASE)
    few = count_queries(client, BASE)
    add(18)
    response = client.get(BASE)
    assert html(response).count('data-testid="program-row"') == 20
    assert count_queries(client, BASE) == few


def test_status_queries_do_not_grow_with_makers_and_orders(client, staff):
    for _ in range(2):
        factories.market_maker(LP, EUR="100000")
    factories.market_maker(AH, CEA=10000)
    made = running(staff)
    url = f"{BASE}{made.pk}/"
    client.get(url)
    page, part = count_queries(client, url), count_queries(client, url, **HX)
    for _ in range(30):
        factories.market_maker(LP, EUR="100000")
        factories.market_maker(AH, CEA=10000)
    programs.program_update(program_id=made.pk, user=staff, data={"ask_target_eur": "20000"})
    later = timezone.now() + timedelta(seconds=1)
    assert programs.program_refresh(program_id=made.pk, worker="test", now=later) is not None
    buy(50)
    ladder = LiquidityProgram.objects.get().operation
    assert Order.objects.filter(ticket_id=ladder.ticket_id).count() > 100
    assert count_queries(client, url) == page
    assert count_queries(client, url, **HX) == part


def test_refresh_operations_name_their_program_on_the_list_and_the_detail(client, staff, makers):
    made = running(staff)
    operation = ProgramRefresh.objects.get(program=made).operation
    for url in ("/backoffice/liquidity/", f"/backoffice/liquidity/{operation.pk}/"):
        page = html(client.get(url))
        assert f'href="{BASE}{made.pk}/"' in page and made.name in page
