"""The reference plan's end-to-end flow through the JSON API, and the API's guard rails."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from liquidity.models import LiquidityOperation
from market.models import LedgerEntry, MarketMakerClient, Order, TicketLog
from market.services.market_makers import market_maker_deactivate
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants, race_behind_a_lock

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db):
    client = Client()
    client.force_login(factories.StaffFactory())
    return client


def post(client, path, body, **headers):
    return client.post(
        f"/api/v1/liquidity/{path}",
        data=json.dumps(body),
        content_type="application/json",
        **headers,
    )


def available(maker, asset):
    return maker.holder.balances.get(asset=asset)


REQUEST = {"certificate_type": "CEA", "bid_amount_eur": "100000", "ask_amount_eur": "50000"}


def test_reference_flow_preview_then_create(staff_client):
    provider = factories.market_maker(LP, EUR="200000")
    holder = factories.market_maker(AH, CEA=10000)

    preview = post(staff_client, "preview", REQUEST)
    assert preview.status_code == 200
    plan = preview.json()
    assert plan["can_execute"] is True
    assert plan["total_orders_count"] == 6
    assert plan["missing_assets"] is None and plan["shortfalls"] == []
    assert plan["bid_plan"]["mms"][0]["mm_code"] == provider.code
    assert isinstance(plan["estimated_spread"], str)

    created = post(staff_client, "create", {**REQUEST, "fingerprint": plan["fingerprint"]})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["orders_created"] == 6

    operation = LiquidityOperation.objects.get(pk=body["liquidity_operation_id"])
    orders = list(operation.orders.all())
    assert len(orders) == 6
    bids = [o for o in orders if o.side == "BUY"]
    asks = [o for o in orders if o.side == "SELL"]
    bid_value = sum(o.price * o.quantity for o in bids)
    ask_value = sum(o.price * o.quantity for o in asks)
    ask_quantity = sum(o.quantity for o in asks)

    # The provider's available EUR fell by exactly what was reserved, and no more.
    eur = available(provider, "EUR")
    assert eur.locked == bid_value
    assert eur.available == D("200000") - bid_value
    # The asset holder's certificates are locked too (the original plan forgot this).
    cea = available(holder, "CEA")
    assert cea.locked == ask_quantity == operation.actual_ask_quantity
    # Actual amounts are what was placed, never the targets.
    assert operation.actual_bid_eur == bid_value <= D("100000")
    assert operation.actual_ask_eur == ask_value
    assert D(body["bid_liquidity_eur"]) == bid_value
    assert TicketLog.objects.filter(action_type="LIQUIDITY_CREATED").count() == 1
    assert operation.ticket.ticket_id.startswith("TKT-")
    assert_all_invariants()


def test_both_sides_short_reports_both_and_create_changes_nothing(staff_client):
    factories.market_maker(LP, EUR="1000")
    factories.market_maker(AH, CEA=10)

    plan = post(staff_client, "preview", REQUEST).json()
    assert plan["can_execute"] is False
    assert [s["side"] for s in plan["shortfalls"]] == ["BID", "ASK"]
    assert plan["missing_assets"]["side"] == "BID"
    assert plan["suggested_actions"]

    entries = LedgerEntry.objects.count()
    response = post(staff_client, "create", REQUEST)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "insufficient_assets"
    assert {s["asset_type"] for s in body["shortfalls"]} == {"EUR", "CEA"}
    assert body["shortfall"] == plan["missing_assets"]["shortfall"]
    assert not Order.objects.exists() and not LiquidityOperation.objects.exists()
    assert LedgerEntry.objects.count() == entries


def test_idempotency_key_makes_one_operation(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    first = post(staff_client, "create", REQUEST, HTTP_IDEMPOTENCY_KEY="op-1")
    again = post(staff_client, "create", REQUEST, HTTP_IDEMPOTENCY_KEY="op-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["liquidity_operation_id"] == again.json()["liquidity_operation_id"]
    assert LiquidityOperation.objects.count() == 1
    assert Order.objects.count() == 6


def test_a_stale_fingerprint_answers_409_with_the_fresh_plan(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    plan = post(staff_client, "preview", REQUEST).json()
    factories.market_maker(LP, EUR="50000")  # the allocation changes

    response = post(staff_client, "create", {**REQUEST, "fingerprint": plan["fingerprint"]})
    assert response.status_code == 409
    fresh = response.json()["plan"]
    assert fresh["fingerprint"] != plan["fingerprint"]
    assert len(fresh["bid_plan"]["mms"]) == 2
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**REQUEST, "bid_amount_eur": "-5"}, "bid_amount_eur"),
        ({**REQUEST, "ask_amount_eur": "NaN"}, "ask_amount_eur"),
        ({**REQUEST, "bid_amount_eur": "12.345"}, "bid_amount_eur"),
        ({**REQUEST, "bid_amount_eur": "1e40"}, "bid_amount_eur"),
        ({**REQUEST, "certificate_type": "XXX"}, "certificate_type"),
        ({**REQUEST, "reference_price": "14.001"}, "reference_price"),
        ({**REQUEST, "bid_amount_eur": "0", "ask_amount_eur": "0"}, "__all__"),
    ],
)
def test_bad_input_answers_400_naming_the_field(staff_client, body, field):
    response = post(staff_client, "preview", body)
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert post(staff_client, "create", body).status_code == 400
    assert not LiquidityOperation.objects.exists()


DECIMAL_FORM = "Use a point for decimals and no thousands separators, e.g. 13.50."


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("bid_amount_eur", "100,000.00"),
        ("bid_amount_eur", "100000,00"),
        ("ask_amount_eur", "5e4"),
        ("ask_amount_eur", "５００００"),
        ("bid_amount_eur", "1_000"),
        ("reference_price", "14,00"),
        ("reference_price", "+14.00"),
        ("reference_price", "14.00\u0000"),
    ],
)
def test_amounts_in_any_other_form_are_refused_with_the_expected_one(staff_client, field, text):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    for path in ("preview", "create"):
        response = post(staff_client, path, {**REQUEST, field: text})
        assert response.status_code == 400
        assert response.json() == {"error": "validation_error", "detail": {field: [DECIMAL_FORM]}}
    assert not LiquidityOperation.objects.exists() and not Order.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "create_new", "asset": "EUR", "amount": "1,000.00"}, DECIMAL_FORM),
        ({"action": "create_new", "asset": "EUR", "amount": "1e3"}, DECIMAL_FORM),
        (
            {"action": "create_new", "mm_type": "ASSET_HOLDER", "asset": "CEA", "amount": "1,000"},
            "Enter a whole number in digits, without separators, e.g. 150.",
        ),
        (
            {"action": "fund_existing", "asset": "EUR", "amount": "١٠", "mm_ids": [1]},
            DECIMAL_FORM,
        ),
    ],
)
def test_provisioning_amounts_are_parsed_strictly(staff_client, body, message):
    factories.market_maker(LP, EUR="10")
    response = post(staff_client, "provision", {"mm_type": "LIQUIDITY_PROVIDER", **body})
    assert response.status_code == 400
    assert response.json()["detail"] == {"amount": [message]}
    assert MarketMakerClient.objects.count() == 1
    assert not LedgerEntry.objects.exclude(kind="DEPOSIT").exists()


def post_text(client, path, text: str):
    """`text` as the body, byte for byte: how a JSON number is written is the point."""
    return client.post(f"/api/v1/liquidity/{path}", data=text, content_type="application/json")


@pytest.mark.parametrize(
    ("number", "target"),
    [("1000.5", "1000.50"), ("1000.50", "1000.50"), ("1000", "1000.00"), ("1e3", "1000.00")],
)
def test_a_json_number_is_read_exactly_as_written(staff_client, number, target):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    body = f'{{"certificate_type": "CEA", "bid_amount_eur": {number}, "ask_amount_eur": 500}}'
    response = post_text(staff_client, "preview", body)
    assert response.status_code == 200, response.content
    assert response.json()["bid_plan"]["target_eur"] == target
    assert response.json()["ask_plan"]["target_eur"] == "500.00"


@pytest.mark.parametrize(
    ("field", "number", "message"),
    [
        # A binary float would read this as 1000.5 and accept it: the text has 20 decimals.
        ("bid_amount_eur", "1000.50000000000000001", "Use at most 2 decimal places."),
        ("bid_amount_eur", "1000.505", "Use at most 2 decimal places."),
        ("bid_amount_eur", "-5", "Must be zero or more."),
        ("bid_amount_eur", "1e400", "Must be at most 1,000,000,000,000."),
        ("bid_amount_eur", "5e-324", "Use at most 2 decimal places."),
        ("reference_price", "0", "Must be greater than zero."),
        ("reference_price", "-0.0", "Must be greater than zero."),
    ],
)
def test_a_json_number_is_checked_by_the_strict_parser(staff_client, field, number, message):
    fields = '"certificate_type": "CEA", "bid_amount_eur": 1, "ask_amount_eur": 1'
    body = f'{{{fields}, "{field}": {number}}}'
    response = post_text(staff_client, "create", body)
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "validation_error", "detail": {field: [message]}}
    assert not LiquidityOperation.objects.exists()


@pytest.mark.parametrize(
    ("number", "status"),
    [("NaN", 400), ("Infinity", 400), ("true", 422), ("1e999999999", 400), ("-1E-1001", 400)],
)
def test_what_is_not_a_json_number_is_refused(staff_client, number, status):
    body = f'{{"certificate_type": "CEA", "bid_amount_eur": {number}, "ask_amount_eur": "1"}}'
    response = post_text(staff_client, "preview", body)
    assert response.status_code == status, response.content
    if status == 400:
        assert response.json()["error"] == "bad_request"


def test_withdraw_releases_exactly_what_is_still_reserved_and_shows_progress(staff_client):
    provider = factories.market_maker(LP, EUR="200000")
    holder = factories.market_maker(AH, CEA=10000)
    op_id = post(staff_client, "create", REQUEST).json()["liquidity_operation_id"]

    # A trader lifts part of the best ask.
    best_ask = Order.objects.filter(side="SELL").order_by("price").first()
    buyer = factories.trader(EUR="100000")
    request = order_request_parse(
        market_code="CEA", side="BUY", order_type="LIMIT", price=best_ask.price, quantity=100
    )
    order_place(owner=buyer, request=request)

    detail = staff_client.get(f"/api/v1/liquidity/operations/{op_id}").json()
    assert detail["state"] == "partly filled"
    assert detail["quantity_filled"] == 100 and D("0") < D(detail["fill_pct"]) < D("100")
    assert sum(o["filled_quantity"] for o in detail["orders"]) == 100

    response = post(staff_client, f"operations/{op_id}/withdraw", {})
    assert response.status_code == 200
    assert response.json()["orders_cancelled"] == 6
    assert response.json()["operation"]["state"] == "withdrawn"
    assert available(provider, "EUR").locked == 0
    assert available(provider, "EUR").available == D("200000")
    cea = available(holder, "CEA")
    assert cea.locked == 0 and cea.available == D("9900")
    assert_all_invariants()

    # Withdrawing again would do nothing: 409 with a JSON error, and no ticket.
    tickets = TicketLog.objects.count()
    again = post(staff_client, f"operations/{op_id}/withdraw", {})
    assert again.status_code == 409
    assert again.json()["error"] == "nothing_to_withdraw"
    assert "already withdrawn" in again.json()["message"]
    assert TicketLog.objects.count() == tickets
    assert TicketLog.objects.filter(action_type="LIQUIDITY_WITHDRAWN").count() == 1


def test_operations_list_filters_by_market(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000, EUA=1000)
    post(staff_client, "create", REQUEST)
    post(staff_client, "create", {**REQUEST, "certificate_type": "EUA", "ask_amount_eur": "8100"})
    everything = staff_client.get("/api/v1/liquidity/operations").json()
    only_eua = staff_client.get("/api/v1/liquidity/operations?certificate_type=EUA").json()
    assert everything["count"] == 2
    assert [item["certificate_type"] for item in only_eua["items"]] == ["EUA"]
    assert staff_client.get("/api/v1/liquidity/operations/999999").status_code == 404


def test_provision_create_new_then_preview_can_execute(staff_client):
    factories.market_maker(AH, CEA=10000)
    assert post(staff_client, "preview", REQUEST).json()["can_execute"] is False
    response = post(
        staff_client,
        "provision",
        {
            "action": "create_new",
            "mm_type": "LIQUIDITY_PROVIDER",
            "asset": "EUR",
            "amount": "150000",
            "count": 3,
        },
    )
    assert response.status_code == 201
    assert len(response.json()["market_makers"]) == 3
    plan = post(staff_client, "preview", REQUEST).json()
    assert plan["can_execute"] is True
    assert len(plan["bid_plan"]["mms"]) == 3


def test_provision_refuses_the_wrong_asset_for_the_type(staff_client):
    response = post(
        staff_client,
        "provision",
        {
            "action": "create_new",
            "mm_type": "LIQUIDITY_PROVIDER",
            "asset": "CEA",
            "amount": "100",
            "count": 2,
        },
    )
    assert response.status_code == 400
    assert not MarketMakerClient.objects.exists()


def test_book_endpoint(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    post(staff_client, "create", REQUEST)
    book = staff_client.get("/api/v1/market/CEA/book").json()
    assert len(book["bids"]) == 3 and len(book["asks"]) == 3
    assert D(book["best_bid"]) < D(book["best_ask"])
    unknown = staff_client.get("/api/v1/market/XYZ/book")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "not_found", "message": "No market XYZ."}
    hostile = staff_client.get("/api/v1/market/C%00A/book")  # a NUL: refused before the API
    assert hostile.status_code == 400 and hostile.json()["error"] == "bad_request"
    # Each price level carries the reference plan's `percentage` beside its `share`.
    preview = post(staff_client, "preview", REQUEST).json()
    levels = preview["bid_plan"]["price_levels"]
    assert [(level["percentage"], level["share"]) for level in levels] == [
        (50, "0.5"),
        (30, "0.3"),
        (20, "0.2"),
    ]


class TestAccess:
    def test_anonymous_gets_401(self, db):
        assert Client().post("/api/v1/liquidity/preview").status_code == 401
        assert Client().get("/api/v1/liquidity/operations").status_code == 401

    def test_trader_gets_403(self, db):
        client = Client()
        client.force_login(factories.UserFactory())
        assert client.get("/api/v1/liquidity/operations").status_code == 403

    def test_session_post_without_csrf_is_refused(self, db):
        client = Client(enforce_csrf_checks=True)
        client.force_login(factories.StaffFactory())
        factories.market_maker(LP, EUR="200000")
        response = post(client, "preview", REQUEST)
        assert response.status_code == 403
        assert client.get("/api/v1/liquidity/operations").status_code == 200

    def test_openapi_schema_is_served(self, db):
        schema = Client().get("/api/v1/openapi.json")
        assert schema.status_code == 200
        assert "/api/v1/liquidity/preview" in schema.json()["paths"]


def test_an_operation_emptied_by_deactivation_says_so_and_refuses_a_withdrawal(staff_client):
    provider = factories.market_maker(LP, EUR="200000")
    holder = factories.market_maker(AH, CEA=10000)
    op_id = post(staff_client, "create", REQUEST).json()["liquidity_operation_id"]
    staff = get_user_model().objects.get(is_staff=True)
    market_maker_deactivate(market_maker=provider, actor=staff, cancel_open_orders=True)

    detail = staff_client.get(f"/api/v1/liquidity/operations/{op_id}").json()
    assert detail["state"] == "partly cancelled"
    assert detail["state_detail"] == "3 of 6 orders cancelled by market-maker deactivation"
    assert detail["orders_cancelled_by_deactivation"] == 3
    assert detail["sides"] == [
        {
            "side": "BID",
            "orders": 3,
            "orders_resting": 0,
            "orders_cancelled_by_deactivation": 3,
            "quantity_resting": 0,
        },
        {
            "side": "ASK",
            "orders": 3,
            "orders_resting": 3,
            "orders_cancelled_by_deactivation": 0,
            "quantity_resting": 3559,
        },
    ]
    listed = staff_client.get("/api/v1/liquidity/operations").json()["items"][0]
    assert listed["state"] == "partly cancelled" and listed["sides"] == detail["sides"]

    market_maker_deactivate(market_maker=holder, actor=staff, cancel_open_orders=True)
    assert staff_client.get(f"/api/v1/liquidity/operations/{op_id}").json()["state"] == (
        "cancelled"
    )
    tickets = TicketLog.objects.count()
    response = post(staff_client, f"operations/{op_id}/withdraw", {})
    assert response.status_code == 409
    assert set(response.json()) == {"error", "message"}
    assert response.json()["error"] == "nothing_to_withdraw"
    assert "no open orders left" in response.json()["message"]
    assert TicketLog.objects.count() == tickets


def test_the_same_key_with_a_different_request_answers_422_and_changes_nothing(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    first = post(staff_client, "create", REQUEST, HTTP_IDEMPOTENCY_KEY="op-1")
    assert first.status_code == 201
    tickets, orders = TicketLog.objects.count(), Order.objects.count()

    again = post(staff_client, "create", REQUEST, HTTP_IDEMPOTENCY_KEY="op-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    changed = post(
        staff_client, "create", {**REQUEST, "ask_amount_eur": "40000"}, HTTP_IDEMPOTENCY_KEY="op-1"
    )
    assert changed.status_code == 422
    ticket_id = first.json()["ticket_id"]
    assert changed.json() == {
        "error": "idempotency_key_reused",
        "message": f"Liquidity operation {ticket_id} was already executed with this "
        "idempotency key, for a different request; nothing was changed.",
    }
    assert (TicketLog.objects.count(), Order.objects.count()) == (tickets, orders)
    assert LiquidityOperation.objects.count() == 1


@pytest.mark.postgres  # row locks
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
def test_the_same_key_sent_while_the_first_call_runs_returns_the_same_operation():
    """The retry arrives while the first call holds the market lock; it answers 200 with
    the first operation, not 409 plan_changed (its fingerprint no longer matches the book
    the first call changed)."""
    staff = factories.StaffFactory()
    factories.market_maker(LP, EUR="1000000")
    factories.market_maker(AH, CEA=100000)
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(staff)
    body = {**REQUEST, "fingerprint": post(clients[0], "preview", REQUEST).json()["fingerprint"]}

    def create(client):
        return lambda: post(client, "create", body, HTTP_IDEMPOTENCY_KEY="op-1")

    first, retry, retry_waited = race_behind_a_lock(create(clients[0]), create(clients[1]))
    assert retry_waited is True
    assert (first.status_code, retry.status_code) == (201, 200), retry.content
    assert retry.json() == first.json()
    assert LiquidityOperation.objects.count() == 1
    assert Order.objects.count() == 6
    assert_all_invariants()


# --- the ladder ---------------------------------------------------------------------------

LADDER = [{"distance_pct": "0.1", "share_pct": "60"}, {"distance_pct": 0.3, "share_pct": 40}]
LADDER_DATA = [
    {"distance_pct": "0.1", "share_pct": "60"},
    {"distance_pct": "0.3", "share_pct": "40"},
]


def test_preview_and_create_with_a_ladder_place_it(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    body = {**REQUEST, "ladder": LADDER}
    plan = post(staff_client, "preview", body).json()
    assert plan["ladder"] == LADDER_DATA
    assert [
        (level["price"], level["distance_pct"], level["share_pct"], level["percentage"])
        for level in plan["bid_plan"]["price_levels"] + plan["ask_plan"]["price_levels"]
    ] == [
        ("13.98", "0.1", "60", 60),
        ("13.95", "0.3", "40", 40),
        ("14.02", "0.1", "60", 60),
        ("14.05", "0.3", "40", 40),
    ]
    assert [level["share"] for level in plan["bid_plan"]["price_levels"]] == ["0.6", "0.4"]

    created = post(staff_client, "create", {**body, "fingerprint": plan["fingerprint"]})
    assert created.status_code == 201, created.content
    assert created.json()["ladder"] == LADDER_DATA
    operation = LiquidityOperation.objects.get()
    assert operation.ladder == LADDER_DATA
    assert sorted({str(o.price) for o in operation.orders.all()}) == [
        "13.95", "13.98", "14.02", "14.05"
    ]  # fmt: skip
    detail = staff_client.get(f"/api/v1/liquidity/operations/{operation.pk}").json()
    assert detail["ladder"] == LADDER_DATA
    listed = staff_client.get("/api/v1/liquidity/operations").json()["items"][0]
    assert listed["ladder"] == LADDER_DATA
    assert_all_invariants()


def test_without_a_ladder_the_default_is_reported(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    default = [
        {"distance_pct": "0.2", "share_pct": "50"},
        {"distance_pct": "0.4", "share_pct": "30"},
        {"distance_pct": "0.5", "share_pct": "20"},
    ]
    assert post(staff_client, "preview", {**REQUEST, "ladder": None}).json()["ladder"] == default
    created = post(staff_client, "create", REQUEST).json()
    assert created["ladder"] == default
    levels = post(staff_client, "preview", REQUEST).json()["ask_plan"]["price_levels"]
    assert [level["distance_pct"] for level in levels] == ["0.2", "0.4", "0.5"]


def test_a_share_with_decimals_is_exact_in_share_pct_and_rounded_in_percentage(staff_client):
    factories.market_maker(LP, EUR="200000")
    thirds = [
        {"distance_pct": "0.1", "share_pct": "33.33"},
        {"distance_pct": "0.2", "share_pct": "33.33"},
        {"distance_pct": "0.3", "share_pct": "33.34"},
    ]
    body = {**REQUEST, "ask_amount_eur": "0", "ladder": thirds}
    levels = post(staff_client, "preview", body).json()["bid_plan"]["price_levels"]
    assert [(lv["share_pct"], lv["percentage"], lv["share"]) for lv in levels] == [
        ("33.33", 33, "0.3333"),
        ("33.33", 33, "0.3333"),
        ("33.34", 33, "0.3334"),
    ]
    halves = [
        {"distance_pct": "0.1", "share_pct": "12.5"},
        {"distance_pct": "0.2", "share_pct": "87.5"},
    ]
    body = {**REQUEST, "ask_amount_eur": "0", "ladder": halves}
    levels = post(staff_client, "preview", body).json()["bid_plan"]["price_levels"]
    assert [level["percentage"] for level in levels] == [13, 88]  # half up


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ([{"distance_pct": "0.2", "share_pct": "50"}], "The shares add up to 50 %"),
        (
            [
                {"distance_pct": "0.4", "share_pct": "50"},
                {"distance_pct": "0.2", "share_pct": "50"},
            ],
            "Level 2: distance 0.2 % must be greater than level 1's 0.4 %",
        ),
        ([{"distance_pct": f"0.{n}", "share_pct": "10"} for n in range(11)], "At most 10 levels"),
        ([], "Enter at least one level."),
        ([{"distance_pct": "0.123", "share_pct": "100"}], "Level 1: distance (%): use at most 2"),
        ([{"distance_pct": "-1", "share_pct": "100"}], "Level 1: distance (%)"),
        ([{"distance_pct": "0,2", "share_pct": "100"}], "Level 1: distance (%)"),
        ([{"distance_pct": "NaN", "share_pct": "100"}], "Level 1: distance (%)"),
    ],
    ids=["shares", "order", "levels", "empty", "places", "negative", "comma", "nan"],
)
def test_a_bad_ladder_answers_400_naming_the_field(staff_client, ladder, message):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    for path in ("preview", "create"):
        response = post(staff_client, path, {**REQUEST, "ladder": ladder})
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["error"] == "validation_error" and list(body["detail"]) == ["ladder"]
        assert body["detail"]["ladder"][0].startswith(message), body
    assert not LiquidityOperation.objects.exists() and not Order.objects.exists()


@pytest.mark.parametrize(
    "ladder",
    ["0.2:50, 0.4:50", [{"distance_pct": "0.2"}], [["0.2", "100"]], {"distance_pct": "0.2"}],
    ids=["text", "missing-share", "pair", "object"],
)
def test_a_ladder_of_the_wrong_shape_answers_422(staff_client, ladder):
    response = post(staff_client, "preview", {**REQUEST, "ladder": ladder})
    assert response.status_code == 422
    assert any("ladder" in error["loc"] for error in response.json()["detail"])
    assert post(staff_client, "create", {**REQUEST, "ladder": ladder}).status_code == 422
    assert not LiquidityOperation.objects.exists()


def test_the_same_key_with_another_ladder_answers_422_and_changes_nothing(staff_client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    body = {**REQUEST, "ladder": LADDER}
    first = post(staff_client, "create", body, HTTP_IDEMPOTENCY_KEY="op-ladder")
    assert first.status_code == 201
    before = (TicketLog.objects.count(), Order.objects.count())
    # The same ladder written otherwise (numbers, trailing zeros) is the same request.
    same = [
        {"distance_pct": 0.10, "share_pct": "60.00"},
        {"distance_pct": "0.30", "share_pct": 40},
    ]
    again = post(
        staff_client, "create", {**REQUEST, "ladder": same}, HTTP_IDEMPOTENCY_KEY="op-ladder"
    )
    assert again.status_code == 200 and again.json() == first.json()
    for other in (
        None,
        [{"distance_pct": "0.1", "share_pct": "50"}, {"distance_pct": "0.3", "share_pct": "50"}],
    ):
        changed = post(
            staff_client, "create", {**REQUEST, "ladder": other}, HTTP_IDEMPOTENCY_KEY="op-ladder"
        )
        assert changed.status_code == 422
        assert changed.json()["error"] == "idempotency_key_reused"
    assert (TicketLog.objects.count(), Order.objects.count()) == before
    assert LiquidityOperation.objects.count() == 1


def test_a_number_beyond_all_reason_is_refused_before_any_integer_is_built(staff_client):
    """`1e999999999` as an id would have made pydantic build a billion-digit integer (a
    worker busy for minutes); it is refused with the body."""
    body = '{"action": "fund_existing", "mm_type": "LIQUIDITY_PROVIDER", "amount": "1", '
    response = post_text(staff_client, "provision", body + '"mm_ids": [1e999999999]}')
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    # Large but within reason: the schema's bound answers.
    response = post_text(staff_client, "provision", body + '"mm_ids": [1e999]}')
    assert response.status_code == 422
