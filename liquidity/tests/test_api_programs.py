"""The liquidity programs API: a program's life through JSON, its refusals, who may call
it, the kill switch, and query counts independent of the number of programs and makers."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiToken
from liquidity import programs as services
from liquidity.models import LiquidityOperation, LiquidityProgram
from liquidity.services import liquidity_execute, liquidity_request_parse
from market.models import MarketMakerClient, Order, TicketLog
from market.tests import factories
from market.tests.helpers import assert_all_invariants

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
BASE = "/api/v1/liquidity"
MISSING = 987654321
pytestmark = pytest.mark.django_db

SETTINGS = {
    "name": "CEA standing",
    "certificate_type": "CEA",
    "bid_target_eur": "10000",
    "ask_target_eur": "10000",
    "refresh_interval_seconds": 60,
}


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def api(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def makers(db):
    return [
        factories.market_maker(LP, EUR="100000"),
        factories.market_maker(AH, CEA=10000, EUA=5000),
    ]


def send(client, method, path, body=None, **headers):
    kwargs = {}
    if body is not None:
        kwargs = {"data": json.dumps(body), "content_type": "application/json"}
    return getattr(client, method)(f"{BASE}{path}", **kwargs, **headers)


def created(client, **settings):
    response = send(client, "post", "/programs", {**SETTINGS, **settings})
    assert response.status_code == 201, response.content
    return response.json()


def resting(program_id):
    return Order.objects.filter(
        ticket__liquidity_operation__program_id=program_id, status__in=Order.RESTING
    )


def test_a_program_from_creation_to_stop(api, staff, makers):
    # Ladder levels as strings or JSON numbers.
    ladder = [{"distance_pct": 0.2, "share_pct": "60"}, {"distance_pct": "0.5", "share_pct": 40}]
    body = created(api, ladder=ladder)
    assert body["state"] == "draft" and body["certificate_type"] == "CEA"
    assert body["ladder"] == [
        {"distance_pct": "0.2", "share_pct": "60"},
        {"distance_pct": "0.5", "share_pct": "40"},
    ]
    assert body["bid_target_eur"] == "10000.00" and body["active_weekdays"] == "1234567"
    assert body["created_by"] == staff.username and body["open_alerts"] == 0
    pk = body["id"]
    assert not Order.objects.exists()  # a draft places nothing

    activated = send(api, "post", f"/programs/{pk}/activate")
    assert activated.status_code == 200, activated.content
    assert activated.json()["state"] == "active"
    assert activated.json()["started_at"] and activated.json()["activated_by"] == staff.username

    refresh = services.program_refresh(program_id=pk, worker="test", now=timezone.now())
    assert refresh.orders_placed > 0
    status = send(api, "get", f"/programs/{pk}/status")
    assert status.status_code == 200, status.content
    data = status.json()
    assert data["reference"] == "14.00" and data["ladder_reference"] == "14.00"
    assert [(row["side"], row["level"]) for row in data["ladder"]] == [
        ("BID", 1),
        ("BID", 2),
        ("ASK", 1),
        ("ASK", 2),
    ]
    assert [row["distance_pct"] for row in data["ladder"]] == ["0.21", "0.50", "0.21", "0.50"]
    assert Decimal("9900") < Decimal(data["bid_resting_eur"]) <= Decimal("10000")
    assert data["makers_count"] == 2 and {m["asset"] for m in data["makers"]} == {"EUR", "CEA"}
    assert {t["asset"] for t in data["inventory_totals"]} == {"EUR", "CEA"}
    # Inventory valued at the reference, in cents: 10,000 CEA at €14.00.
    assert {m["asset"]: m["value_eur"] for m in data["makers"]} == {
        "EUR": "100000.00",
        "CEA": "140000.00",
    }
    assert data["last_refresh"]["outcome"] == "placed"
    assert data["refreshes"][0]["operation_id"] == data["program"]["operation_id"]
    assert data["position"]["net_quantity"] == 0 and data["pnl"]["pnl_eur"] == "0.00"
    assert data["next_refresh_at"] and data["last_refresh_at"]

    paused = send(api, "post", f"/programs/{pk}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert resting(pk).count() == refresh.orders_placed  # paused: the orders stay
    assert any(
        "Paused" in w for w in send(api, "get", f"/programs/{pk}/status").json()["warnings"]
    )

    stopped = send(api, "post", f"/programs/{pk}/stop")
    assert stopped.status_code == 200, stopped.content
    result = stopped.json()
    assert result["program"]["state"] == "stopped"
    assert result["orders_withdrawn"] == refresh.orders_placed
    assert set(result["released"]) == {"EUR", "CEA"}
    assert TicketLog.objects.get(ticket_id=result["ticket_id"]).action_type == (
        "LIQUIDITY_PROGRAM_STOPPED"
    )
    assert not resting(pk).exists()
    assert send(api, "get", f"/programs/{pk}/status").json()["ladder"] == []
    assert_all_invariants()


def test_refreshes_are_listed_among_the_operations_with_their_program(api, staff, makers):
    one_shot = liquidity_execute(
        request=liquidity_request_parse(
            market_code="EUA", bid_amount_eur="1000", ask_amount_eur="1000"
        ),
        user=staff,
    )
    pk = created(api)["id"]
    send(api, "post", f"/programs/{pk}/activate")
    refresh = services.program_refresh(program_id=pk, worker="test")

    listed = send(api, "get", "/operations").json()["items"]
    assert {(item["id"], item["program_id"]) for item in listed} == {
        (one_shot.pk, None),
        (refresh.operation_id, pk),
    }
    only = send(api, "get", f"/operations?program={pk}").json()
    assert only["count"] == 1 and only["items"][0]["id"] == refresh.operation_id
    detail = send(api, "get", f"/operations/{refresh.operation_id}").json()
    assert detail["program_id"] == pk and detail["orders"]


def test_list_filters_by_state_and_market(api, makers):
    cea = created(api)["id"]
    eua = created(api, name="EUA standing", certificate_type="EUA")["id"]
    send(api, "post", f"/programs/{eua}/activate")
    everything = send(api, "get", "/programs").json()
    assert everything["count"] == 2
    assert [item["id"] for item in everything["items"]] == [eua, cea]  # running first
    active = send(api, "get", "/programs?state=active").json()
    assert [item["id"] for item in active["items"]] == [eua]
    assert [
        i["id"] for i in send(api, "get", "/programs?certificate_type=cea").json()["items"]
    ] == [cea]
    page = send(api, "get", "/programs?limit=1&offset=1").json()
    assert page["count"] == 2 and [item["id"] for item in page["items"]] == [cea]
    assert send(api, "get", "/programs?state=running").status_code == 422


def test_patch_changes_only_what_it_names(api, makers):
    body = created(api, active_from="08:00", active_until="18:00", active_weekdays="12345")
    response = send(
        api, "patch", f"/programs/{body['id']}", {"bid_target_eur": 25000, "price_floor": "13.50"}
    )
    assert response.status_code == 200, response.content
    changed = response.json()
    assert changed["bid_target_eur"] == "25000.00" and changed["price_floor"] == "13.50"
    unchanged = {k: v for k, v in changed.items() if k not in ("bid_target_eur", "price_floor")}
    assert unchanged == {
        k: v for k, v in body.items() if k not in ("bid_target_eur", "price_floor")
    }
    assert (changed["active_from"], changed["active_until"]) == ("08:00", "18:00")
    # null clears an optional setting.
    cleared = send(api, "patch", f"/programs/{body['id']}", {"price_floor": None}).json()
    assert cleared["price_floor"] is None
    assert TicketLog.objects.filter(action_type="LIQUIDITY_PROGRAM_UPDATED").count() == 2


@pytest.mark.parametrize(
    ("settings", "fields"),
    [
        ({"bid_target_eur": "-5"}, {"bid_target_eur"}),
        ({"bid_target_eur": "0", "ask_target_eur": "0"}, {"__all__"}),
        ({"certificate_type": "XXX"}, {"certificate_type"}),
        ({"certificate_type": "CE\x00A"}, {"certificate_type"}),
        ({"name": "  "}, {"name"}),
        ({"ladder": [{"distance_pct": "0.2", "share_pct": "90"}]}, {"ladder"}),
        ({"ladder": "0.2:50, 0.1:50"}, {"ladder"}),
        ({"reference_mode": "fixed"}, {"fixed_reference_price"}),
        ({"price_floor": "14.00", "price_ceiling": "13.00"}, {"price_ceiling"}),
        ({"active_from": "25:00", "active_until": "18:00"}, {"active_from"}),
        ({"active_from": "08:00"}, {"active_until"}),
        ({"active_weekdays": "089"}, {"active_weekdays"}),
        ({"timezone": "Mars/Olympus"}, {"timezone"}),
        ({"refresh_interval_seconds": 1}, {"refresh_interval_seconds"}),
        (
            {"bid_target_eur": "1.234", "timezone": "Nowhere", "notes": "a\x00b"},
            {"bid_target_eur", "timezone", "notes"},
        ),
    ],
)
def test_bad_settings_answer_400_keyed_by_field_and_save_nothing(api, makers, settings, fields):
    response = send(api, "post", "/programs", {**SETTINGS, **settings})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "validation_error"
    assert set(response.json()["detail"]) == fields
    assert not LiquidityProgram.objects.exists()
    assert not TicketLog.objects.filter(action_type__startswith="LIQUIDITY_PROGRAM").exists()


def test_a_bad_patch_changes_nothing(api, makers):
    pk = created(api)["id"]
    before = send(api, "get", f"/programs/{pk}").json()
    response = send(
        api, "patch", f"/programs/{pk}", {"ask_target_eur": "25000", "active_weekdays": "8"}
    )
    assert response.status_code == 400
    assert set(response.json()["detail"]) == {"active_weekdays"}
    assert send(api, "get", f"/programs/{pk}").json() == before


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("post", {**SETTINGS, "colour": "red"}),
        ("post", {**SETTINGS, "bid_target_eur": True}),  # neither a number nor text
        ("post", {"certificate_type": "CEA"}),  # no name
        ("post", {**SETTINGS, "ladder": [{"distance_pct": "0.2"}]}),
        ("post", {**SETTINGS, "ladder": [{"distance_pct": 1, "share_pct": 100, "x": 1}]}),
        ("patch", {"state": "active"}),  # the state changes by its actions only
        ("patch", {"reference_mode": "moving"}),
    ],
)
def test_unknown_keys_and_wrong_types_answer_422(api, makers, method, body):
    pk = created(api)["id"]
    path = "/programs" if method == "post" else f"/programs/{pk}"
    response = send(api, method, path, body)
    assert response.status_code == 422, response.content
    assert response.json()["detail"]
    assert LiquidityProgram.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/programs/{id}"),
        ("patch", "/programs/{id}"),
        ("post", "/programs/{id}/activate"),
        ("post", "/programs/{id}/pause"),
        ("post", "/programs/{id}/stop"),
        ("get", "/programs/{id}/status"),
    ],
)
def test_an_unknown_program_is_a_404(api, method, path):
    body = {"notes": "x"} if method == "patch" else None
    response = send(api, method, path.format(id=MISSING), body)
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": f"No liquidity program {MISSING}.",
    }


def test_invalid_transitions_are_a_409_with_the_reason(api, makers):
    draft = created(api)["id"]
    paused = send(api, "post", f"/programs/{draft}/pause")
    assert paused.status_code == 409
    assert paused.json() == {
        "error": "invalid_transition",
        "message": "Only an active program can be paused; CEA standing is draft.",
    }
    stopped = send(api, "post", f"/programs/{draft}/stop")
    assert stopped.status_code == 409 and "only an active or paused" in stopped.json()["message"]

    send(api, "post", f"/programs/{draft}/activate")
    again = send(api, "post", f"/programs/{draft}/activate")
    assert again.status_code == 409
    assert again.json()["message"] == "CEA standing is already active."
    second = created(api, name="Second CEA")["id"]
    rival = send(api, "post", f"/programs/{second}/activate")
    assert rival.status_code == 409 and "already runs on CEA" in rival.json()["message"]
    assert LiquidityProgram.objects.get(pk=second).state == "draft"
    # A running program cannot move to another market.
    moved = send(api, "patch", f"/programs/{draft}", {"certificate_type": "EUA"})
    assert moved.status_code == 400 and "certificate_type" in moved.json()["detail"]


def test_the_kill_switch_leaves_no_program_order_resting(api, staff, makers):
    ids = [
        created(api)["id"],
        created(api, name="EUA standing", certificate_type="EUA", ask_target_eur="5000")["id"],
    ]
    for pk in ids:
        send(api, "post", f"/programs/{pk}/activate")
        services.program_refresh(program_id=pk, worker="test")
    one_shot = liquidity_execute(
        request=liquidity_request_parse(
            market_code="CEA", bid_amount_eur="1000", ask_amount_eur="0"
        ),
        user=staff,
    )
    placed = Order.objects.filter(status__in=Order.RESTING).count()
    assert all(resting(pk).exists() for pk in ids)

    response = send(api, "post", "/kill-switch")
    assert response.status_code == 200, response.content
    body = response.json()
    assert sorted(body["programs_stopped"]) == sorted(ids)
    assert body["orders_withdrawn"] == placed - one_shot.orders_created
    assert set(body["released"]) == {"EUR", "CEA", "EUA"}
    assert TicketLog.objects.get(ticket_id=body["ticket_id"]).action_type == (
        "LIQUIDITY_KILL_SWITCH"
    )
    assert not Order.objects.filter(
        ticket__liquidity_operation__program__isnull=False, status__in=Order.RESTING
    ).exists()
    # A one-shot operation is not a program's: it stays.
    assert Order.objects.filter(status__in=Order.RESTING).count() == one_shot.orders_created
    assert set(LiquidityProgram.objects.values_list("state", flat=True)) == {"stopped"}
    # Pulled again with nothing running: still recorded.
    again = send(api, "post", "/kill-switch").json()
    assert again["programs_stopped"] == [] and again["orders_withdrawn"] == 0
    assert_all_invariants()


# --- who may call it ---------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/programs", None),
    ("post", "/programs", SETTINGS),
    ("get", "/programs/{id}", None),
    ("patch", "/programs/{id}", {"notes": "changed"}),
    ("post", "/programs/{id}/activate", None),
    ("post", "/programs/{id}/pause", None),
    ("post", "/programs/{id}/stop", None),
    ("get", "/programs/{id}/status", None),
    ("post", "/kill-switch", None),
]


def world_state():
    return (
        sorted(LiquidityProgram.objects.values_list("pk", "state", "notes")),
        TicketLog.objects.count(),
    )


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_only_staff_with_the_liquidity_permission_may_call_it(staff, makers, method, path, body):
    program = services.program_create(user=staff, data=SETTINGS)
    services.program_activate(program_id=program.pk, user=staff)
    url = path.format(id=program.pk)
    trader = factories.trader().user
    no_perm = factories.UserFactory(is_staff=True)
    session = {}
    for role, user in (("trader", trader), ("staff_no_perm", no_perm)):
        session[role] = Client()
        session[role].force_login(user)
    token = {
        role: Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=user)[1]}")
        for role, user in (("trader", trader), ("staff_no_perm", no_perm))
    }
    before = world_state()
    cases = [
        ("anonymous", Client(), 401),
        ("trader session", session["trader"], 403),
        ("trader token", token["trader"], 403),
        ("staff session", session["staff_no_perm"], 403),
        ("staff token", token["staff_no_perm"], 403),
        ("unknown token", Client(HTTP_AUTHORIZATION="Bearer nope"), 401),
    ]
    for role, client, status in cases:
        response = send(client, method, url, body)
        assert response.status_code == status, (role, response.content)
        assert "detail" in response.json()
    assert world_state() == before

    allowed = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=staff)[1]}")
    answered = send(allowed, method, url, body).status_code
    assert answered == (409 if path.endswith("/activate") else 201 if body == SETTINGS else 200)


def test_a_session_needs_the_csrf_token_to_change_a_program(staff, makers):
    program = services.program_create(user=staff, data=SETTINGS)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    refused = send(client, "patch", f"/programs/{program.pk}", {"notes": "no token"})
    assert refused.status_code == 403
    killed = send(client, "post", "/kill-switch")
    assert killed.status_code == 403
    assert LiquidityProgram.objects.get().notes == ""
    assert not TicketLog.objects.filter(action_type="LIQUIDITY_KILL_SWITCH").exists()


# --- query counts --------------------------------------------------------------------------


def count_queries(client, path) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"{BASE}{path}")
    assert response.status_code == 200, response.content
    return len(captured)


def test_the_list_costs_the_same_queries_for_2_or_20_programs(api, staff, makers):
    def add(count):
        for n in range(count):
            program = services.program_create(
                user=staff, data={**SETTINGS, "name": f"P{LiquidityProgram.objects.count()}{n}"}
            )
            services.program_refresh(program_id=program.pk)  # a draft: nothing

    add(2)
    running = LiquidityProgram.objects.first()
    services.program_activate(program_id=running.pk, user=staff)
    services.program_refresh(program_id=running.pk)
    few = count_queries(api, "/programs")
    add(18)
    assert send(api, "get", "/programs").json()["count"] == 20
    assert count_queries(api, "/programs") == few


def test_the_status_costs_the_same_queries_for_3_or_60_makers(api, staff):
    for _ in range(2):
        factories.market_maker(LP, EUR="100000")
    factories.market_maker(AH, CEA=10000)
    program = services.program_create(user=staff, data=SETTINGS)
    services.program_activate(program_id=program.pk, user=staff)
    services.program_refresh(program_id=program.pk)
    few = count_queries(api, f"/programs/{program.pk}/status")
    for _ in range(57):
        factories.market_maker(LP, EUR="1000")
    services.program_refresh(program_id=program.pk, now=timezone.now())
    status = send(api, "get", f"/programs/{program.pk}/status").json()
    assert status["makers_count"] == 60 and len(status["makers"]) == 50
    assert count_queries(api, f"/programs/{program.pk}/status") == few
    assert LiquidityOperation.objects.filter(program=program).exists()


def test_json_numbers_for_money_and_percentages_are_read_exactly(api, makers):
    body = created(
        api,
        bid_target_eur=100.5,
        refresh_tolerance_pct=0.3,
        ladder=[{"distance_pct": 0.1, "share_pct": 100}],
    )
    assert body["bid_target_eur"] == "100.50"
    assert Decimal(body["refresh_tolerance_pct"]) == Decimal("0.3")
    assert body["ladder"] == [{"distance_pct": "0.1", "share_pct": "100"}]
    ticket = TicketLog.objects.get(action_type="LIQUIDITY_PROGRAM_CREATED")
    assert ticket.request_payload["bid_target_eur"] == "100.5"
    assert ticket.request_payload["ladder"] == [{"distance_pct": "0.1", "share_pct": 100}]


@pytest.mark.parametrize("field", ["refresh_interval_seconds", "replenish_delay_seconds"])
def test_a_huge_whole_number_is_a_field_error(api, makers, field):
    body = json.dumps({**SETTINGS})[:-1] + f', "{field}": 1e999}}'
    response = api.post("/api/v1/liquidity/programs", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert set(response.json()["detail"]) == {field}
    assert not LiquidityProgram.objects.exists()
