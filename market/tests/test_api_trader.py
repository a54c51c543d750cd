"""The trader API (`market.api_trader`) with a trader token: CCXT's shapes, only the
trader's own data, bad input refused field by field with nothing changed, retries that
place nothing twice, and constant query counts."""

import json
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken
from market.models import Order, TicketLog, Trade
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

pytestmark = pytest.mark.django_db

LIMIT_BUY = {
    "symbol": "CEA/EUR",
    "type": "limit",
    "side": "buy",
    "amount": "2",
    "price": "13.90",
    "time_in_force": "GTC",
    "post_only": True,
    "client_order_id": "bot-0001",
}


def client_for(holder) -> Client:
    _, token = ApiToken.issue(user=holder.user, scope=ApiToken.Scope.TRADER)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def patch(client, path, body):
    return client.patch(path, json.dumps(body), content_type="application/json")


@pytest.fixture
def alice():
    return factories.trader("api-alice", EUR="10000", CEA=100)


@pytest.fixture
def bob():
    return factories.trader("api-bob", EUR="10000", CEA=100)


@pytest.fixture
def api(alice):
    return client_for(alice)


def place(holder, **fields):
    request = order_request_parse(**{"market_code": "CEA", "order_type": "LIMIT", **fields})
    return order_place(owner=holder, request=request).order


# --- placing ----------------------------------------------------------------------------


def test_a_limit_order_is_placed_and_answers_in_ccxts_order_shape(api, alice):
    response = post(api, "/api/v1/orders", LIMIT_BUY)

    assert response.status_code == 201, response.content
    order = response.json()
    stored = Order.objects.get(owner=alice)
    assert order["id"] == str(stored.pk)
    assert {key: order[key] for key in ("status", "symbol", "type", "side")} == {
        "status": "open",
        "symbol": "CEA/EUR",
        "type": "limit",
        "side": "buy",
    }
    assert (order["timeInForce"], order["postOnly"], order["clientOrderId"]) == (
        "GTC",
        True,
        "bot-0001",
    )
    assert (order["price"], order["amount"], order["filled"], order["remaining"]) == (
        "13.90",
        "2",
        "0",
        "2",
    )
    assert order["cost"] == "0.00" and order["average"] is None
    assert order["fee"] == {"cost": "0.00", "currency": "EUR"}
    assert order["trades"] == [] and order["lastTradeTimestamp"] is None
    assert order["datetime"].endswith("Z") and isinstance(order["timestamp"], int)
    assert stored.post_only and stored.time_in_force == "GTC" and stored.price == D("13.90")
    # What the order reserved is `used` in the balances.
    balances = api.get("/api/v1/balances").json()
    assert D(balances["EUR"]["used"]) == stored.reserved > D("27.80")
    assert D(balances["EUR"]["free"]) == D("10000") - stored.reserved
    assert balances["used"]["EUR"] == balances["EUR"]["used"]
    assert_all_invariants()


def test_a_retried_post_with_the_same_client_order_id_returns_the_same_order(api, alice):
    first = post(api, "/api/v1/orders", LIMIT_BUY)
    again = post(api, "/api/v1/orders", LIMIT_BUY)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.filter(owner=alice).count() == 1


def test_the_same_client_order_id_for_a_different_order_is_refused_and_changes_nothing(api, alice):
    post(api, "/api/v1/orders", LIMIT_BUY)
    before = list(Order.objects.values_list("id", "quantity", "reserved"))

    response = post(api, "/api/v1/orders", {**LIMIT_BUY, "amount": "3"})

    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert list(Order.objects.values_list("id", "quantity", "reserved")) == before


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"symbol": "XYZ/EUR"}, "symbol", "use one of CEA/EUR, EUA/EUR"),
        ({"symbol": "CEA"}, "symbol", "Unknown symbol 'CEA'"),
        ({"amount": "2.5"}, "amount", "whole number"),
        ({"amount": "1e3"}, "amount", "digits"),
        ({"price": "13,90"}, "price", "Use a point for decimals"),
        ({"price": "13.905"}, "price", ""),
        ({"type": "stop"}, "type", "LIMIT, MARKET"),
        ({"side": "long"}, "side", "BUY, SELL"),
        ({"time_in_force": "GTD"}, "time_in_force", "GTC, IOC, FOK"),
        ({"time_in_force": "IOC"}, "post_only", "cannot be immediate-or-cancel"),
        ({"amount": "100000"}, "amount", "Insufficient EUR"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_changes(api, change, field, message):
    before = (Order.objects.count(), TicketLog.objects.count())

    response = post(api, "/api/v1/orders", {**LIMIT_BUY, **change})

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["detail"], body
    assert message in " ".join(body["detail"][field])
    assert (Order.objects.count(), TicketLog.objects.count()) == before


def test_every_problem_is_named_at_once(api):
    response = post(
        api, "/api/v1/orders", {**LIMIT_BUY, "symbol": "NOPE", "side": "up", "amount": "-1"}
    )
    assert set(response.json()["detail"]) == {"symbol", "side", "amount"}


def test_json_numbers_are_read_exactly_and_checked_as_text_is(api):
    """A JSON number is the decimal it spells: 13.9 is €13.90 exactly; 2.5 certificates
    are refused as "2.5" would be, on their field."""
    response = post(api, "/api/v1/orders", {**LIMIT_BUY, "amount": 2, "price": 13.9})
    assert response.status_code == 201, response.content
    assert response.json()["price"] == "13.90"
    refused = post(api, "/api/v1/orders", {**LIMIT_BUY, "amount": 2.5})
    assert refused.status_code == 400
    assert "whole" in refused.json()["detail"]["amount"][0]
    assert Order.objects.count() == 1


def test_a_market_buy_by_cost_trades_and_reports_its_fills_as_the_taker(api, alice, bob):
    maker = place(bob, side="SELL", price="14.00", quantity=10)

    response = post(
        api,
        "/api/v1/orders",
        {"symbol": "CEA/EUR", "type": "market", "side": "buy", "cost": "30.00"},
    )

    assert response.status_code == 201, response.content
    order = response.json()
    assert order["type"] == "market" and order["timeInForce"] == "IOC"
    assert order["price"] is None and order["info"]["eur_budget"] == "30.00"
    assert order["filled"] == "2" and order["average"] == "14.0000"
    assert order["cost"] == "28.00" and D(order["fee"]["cost"]) > 0
    (fill,) = order["trades"]
    assert fill["order"] == order["id"] and fill["takerOrMaker"] == "taker"
    assert (fill["side"], fill["price"], fill["amount"], fill["cost"]) == (
        "buy",
        "14.00",
        "2",
        "28.00",
    )
    assert order["lastTradeTimestamp"] == fill["timestamp"]
    # The maker sees the same trade from its side, and only its own.
    bobs = client_for(bob).get("/api/v1/trades").json()
    assert [(t["id"], t["side"], t["takerOrMaker"], t["order"]) for t in bobs] == [
        (fill["id"], "sell", "maker", str(maker.pk))
    ]
    assert bobs[0]["fee"] == {"cost": "0.00", "currency": "EUR"}


# --- reading ----------------------------------------------------------------------------


def test_balances_list_every_asset_free_used_total(api):
    balances = api.get("/api/v1/balances").json()
    assert balances["EUR"] == {"free": "10000.00", "used": "0.00", "total": "10000.00"}
    assert balances["CEA"] == {"free": "100", "used": "0", "total": "100"}
    assert balances["EUA"] == {"free": "0", "used": "0", "total": "0"}
    assert balances["free"] == {"CEA": "100", "EUA": "0", "EUR": "10000.00"}
    assert set(balances["total"]) == set(balances["used"]) == {"CEA", "EUA", "EUR"}


def test_orders_are_listed_oldest_first_and_filtered(api, alice):
    first = place(alice, side="BUY", price="13.00", quantity=1)
    second = place(alice, side="SELL", price="15.00", quantity=1)
    cancelled = place(alice, side="BUY", price="12.00", quantity=1)
    api.delete(f"/api/v1/orders/{cancelled.pk}")

    def ids(query=""):
        return [order["id"] for order in api.get(f"/api/v1/orders{query}").json()]

    assert ids() == [str(first.pk), str(second.pk), str(cancelled.pk)]
    assert ids("?status=open") == [str(first.pk), str(second.pk)]
    assert ids("?status=canceled") == [str(cancelled.pk)]
    assert ids("?status=closed") == []
    assert ids("?symbol=EUA/EUR") == []
    assert ids("?limit=2") == [str(second.pk), str(cancelled.pk)]  # the latest two
    assert ids("?limit=1&since=0") == [str(first.pk)]  # from `since` on
    future = (timezone.now() + timedelta(days=1)).timestamp()
    assert ids(f"?since={int(future) * 1000}") == []
    assert api.get("/api/v1/orders?symbol=XYZ/EUR").status_code == 400
    assert api.get("/api/v1/orders?status=new").status_code == 422


def test_one_order_is_read_with_its_trades(api, alice, bob):
    order = place(alice, side="BUY", price="14.00", quantity=5)
    place(bob, side="SELL", price="14.00", quantity=2)

    body = api.get(f"/api/v1/orders/{order.pk}").json()

    assert (body["status"], body["filled"], body["remaining"]) == ("open", "2", "3")
    assert body["info"]["status"] == "PARTIALLY_FILLED"
    assert [(t["takerOrMaker"], t["amount"]) for t in body["trades"]] == [("maker", "2")]
    assert body["lastTradeTimestamp"] == body["trades"][0]["timestamp"]


def test_trades_are_filtered_by_symbol_since_and_limit(api, alice, bob):
    for _ in range(3):
        place(bob, side="SELL", price="14.00", quantity=1)
        place(alice, side="BUY", price="14.00", quantity=1)
    trades = Trade.objects.order_by("id")

    every = api.get("/api/v1/trades").json()
    assert [t["id"] for t in every] == [str(t.pk) for t in trades]
    assert all(t["takerOrMaker"] == "taker" and t["side"] == "buy" for t in every)
    assert [t["id"] for t in api.get("/api/v1/trades?limit=1").json()] == [str(trades[2].pk)]
    assert api.get("/api/v1/trades?symbol=EUA/EUR").json() == []
    since = every[1]["timestamp"]
    # From the second trade on (its time in whole milliseconds is at or before it).
    assert [t["id"] for t in api.get(f"/api/v1/trades?since={since}").json()] == [
        every[1]["id"],
        every[2]["id"],
    ]


# --- only one's own ---------------------------------------------------------------------


def test_another_traders_order_is_not_found_like_an_order_that_does_not_exist(api, bob):
    theirs = place(bob, side="BUY", price="13.00", quantity=1)
    missing = Order.objects.order_by("-pk").first().pk + 1000

    for order_id in (theirs.pk, missing):
        expected = {"error": "not_found", "message": f"No order {order_id} of yours."}
        assert api.get(f"/api/v1/orders/{order_id}").json() == expected
        for response in (
            api.get(f"/api/v1/orders/{order_id}"),
            api.delete(f"/api/v1/orders/{order_id}"),
            patch(api, f"/api/v1/orders/{order_id}", {"price": "13.50"}),
        ):
            assert response.status_code == 404
            assert response.json() == expected
    theirs.refresh_from_db()
    assert theirs.status == Order.Status.OPEN and theirs.price == D("13.00")
    assert str(theirs.pk) not in json.dumps(api.get("/api/v1/orders").json())


def test_cancel_all_cancels_only_the_traders_own_orders(api, alice, bob):
    mine = [place(alice, side="BUY", price="13.00", quantity=1) for _ in range(2)]
    theirs = place(bob, side="BUY", price="13.00", quantity=1)

    response = post(api, "/api/v1/orders/cancel-all", {"symbol": "CEA/EUR"})

    assert response.status_code == 200
    assert [o["id"] for o in response.json()] == [str(o.pk) for o in mine]
    assert {o["status"] for o in response.json()} == {"canceled"}
    theirs.refresh_from_db()
    assert theirs.status == Order.Status.OPEN
    assert post(api, "/api/v1/orders/cancel-all", {}).json() == []
    assert api.get("/api/v1/balances").json()["EUR"]["used"] == "0.00"
    assert_all_invariants()


# --- cancelling and amending ------------------------------------------------------------


def test_cancelling_releases_the_reservation_and_a_second_cancel_is_a_409(api, alice):
    order = place(alice, side="BUY", price="13.00", quantity=3)

    response = api.delete(f"/api/v1/orders/{order.pk}")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["remaining"]) == ("canceled", "3")
    assert api.get("/api/v1/balances").json()["EUR"]["used"] == "0.00"
    again = api.delete(f"/api/v1/orders/{order.pk}")
    assert again.status_code == 409
    assert again.json()["error"] == "order_not_open"
    assert again.json()["order"]["status"] == "canceled"
    assert_all_invariants()


def test_a_filled_order_cannot_be_cancelled_or_amended(api, alice, bob):
    order = place(alice, side="BUY", price="14.00", quantity=1)
    place(bob, side="SELL", price="14.00", quantity=1)

    for response in (
        api.delete(f"/api/v1/orders/{order.pk}"),
        patch(api, f"/api/v1/orders/{order.pk}", {"price": "13.00"}),
    ):
        assert response.status_code == 409
        assert response.json()["order"]["status"] == "closed"


def test_a_smaller_amount_amends_the_order_in_place(api, alice):
    order = place(alice, side="BUY", price="13.00", quantity=5)

    response = patch(api, f"/api/v1/orders/{order.pk}", {"amount": "2"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["remaining"], body["price"]) == (str(order.pk), "2", "13.00")
    assert body["info"]["replaced_order_id"] is None
    assert_all_invariants()


def test_a_new_price_replaces_the_order_and_names_the_old_one(api, alice):
    order = place(alice, side="BUY", price="13.00", quantity=2)

    response = patch(api, f"/api/v1/orders/{order.pk}", {"price": "13.50"})

    body = response.json()
    assert response.status_code == 200
    assert body["id"] != str(order.pk) and body["info"]["replaced_order_id"] == str(order.pk)
    assert (body["price"], body["remaining"], body["status"]) == ("13.50", "2", "open")
    old = api.get(f"/api/v1/orders/{order.pk}").json()
    assert old["status"] == "canceled"
    assert_all_invariants()


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "__all__"), ({"price": "13,5"}, "price"), ({"amount": "0"}, "amount")],
)
def test_a_bad_amendment_is_a_400_and_changes_nothing(api, alice, body, field):
    order = place(alice, side="BUY", price="13.00", quantity=2)

    response = patch(api, f"/api/v1/orders/{order.pk}", body)

    assert response.status_code == 400
    assert field in response.json()["detail"]
    fresh = Order.objects.get(pk=order.pk)
    assert (fresh.status, fresh.price, fresh.quantity) == ("OPEN", D("13.00"), 2)


# --- the rest of the API ----------------------------------------------------------------


def test_the_book_and_the_candles_answer_a_trader_token(api, alice, bob):
    place(bob, side="SELL", price="14.00", quantity=3)
    place(alice, side="BUY", price="14.00", quantity=2)

    assert api.get("/api/v1/market/CEA/book").json()["best_ask"] == "14.00"
    candles = api.get("/api/v1/market/CEA/candles?timeframe=1m&limit=5").json()
    assert candles[-1][1:] == ["14.00", "14.00", "14.00", "14.00", "2"]
    assert candles[-1][0] % 60_000 == 0
    assert api.get("/api/v1/market/CEA/candles?timeframe=1m&since=0&limit=5").json() == []
    assert api.get("/api/v1/market/XYZ/candles").status_code == 404
    assert api.get("/api/v1/market/CEA/candles?timeframe=7m").status_code == 422


def test_queries_do_not_grow_with_the_number_of_orders(
    api, alice, bob, django_assert_max_num_queries
):
    def counts():
        numbers = []
        for path in ("/api/v1/orders", "/api/v1/trades", "/api/v1/balances"):
            with django_assert_max_num_queries(50) as captured:
                assert api.get(path).status_code == 200
            numbers.append(len(captured.captured_queries))
        return numbers

    place(bob, side="SELL", price="14.00", quantity=1)
    place(alice, side="BUY", price="14.00", quantity=1)
    few = counts()
    for _ in range(15):
        place(bob, side="SELL", price="14.00", quantity=1)
        place(alice, side="BUY", price="14.00", quantity=1)
        place(alice, side="BUY", price="12.00", quantity=1)
    assert counts() == few


def test_a_post_only_order_that_would_trade_is_refused_and_an_ioc_one_trades(api, bob):
    place(bob, side="SELL", price="14.00", quantity=1)
    crossing = {**LIMIT_BUY, "price": "14.00", "client_order_id": None}

    refused = post(api, "/api/v1/orders", crossing)
    assert refused.status_code == 400
    assert "would trade at once" in refused.json()["detail"]["price"][0]

    taken = post(api, "/api/v1/orders", {**crossing, "post_only": False, "time_in_force": "IOC"})
    assert taken.status_code == 201
    body = taken.json()
    # One certificate was offered: it trades, the rest is cancelled (IOC never rests).
    assert (body["timeInForce"], body["status"], body["filled"], body["remaining"]) == (
        "IOC",
        "canceled",
        "1",
        "1",
    )
    assert body["trades"][0]["takerOrMaker"] == "taker"
