"""Per-user request limits: order placement, cancels and the API answer 429 with
`Retry-After` past their limit, change nothing, and count each user apart."""

import json

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from accounts.models import ApiToken
from config import throttle
from market.models import Order
from market.services.orders import order_place, order_request_parse
from market.tests import factories

ORDER = {
    "side": "BUY",
    "order_type": "LIMIT",
    "amount_mode": "quantity",
    "price": "12.50",
    "quantity": "1",
}


@pytest.fixture
def limits(settings):
    """Limits on, small, and counted from zero."""
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {"order_place": "3/m", "order_cancel": "2/m", "api": "2/m"}
    caches[throttle.CACHE_ALIAS].clear()
    yield settings
    caches[throttle.CACHE_ALIAS].clear()


def test_rates_are_count_per_unit():
    assert throttle.Rate.parse("120/m") == throttle.Rate(count=120, seconds=60)
    assert throttle.Rate.parse("5/s") == throttle.Rate(5, 1)
    assert throttle.Rate.parse("1000/h") == throttle.Rate(1000, 3600)
    for wrong in ("120", "x/m", "-1/m", "10/d", ""):
        with pytest.raises(ImproperlyConfigured):
            throttle.Rate.parse(wrong)


def test_a_window_counts_to_its_limit_then_says_how_long_is_left(db, limits):
    start = 60 * 16_667 + 20.0  # 20 s into a minute
    answers = [throttle.retry_after(scope="api", user_id=1, now=start) for _ in range(3)]
    assert answers == [None, None, 40]
    assert throttle.retry_after(scope="api", user_id=1, now=start + 39.5) == 1
    assert throttle.retry_after(scope="api", user_id=2, now=start) is None  # another user
    assert throttle.retry_after(scope="api", user_id=1, now=start + 40) is None  # next minute


def test_many_active_users_do_not_wipe_a_count(db, limits):
    """Django's database cache culls rows past MAX_ENTRIES (300 by default), live ones
    too: a user over the limit would get through once a few hundred others had called."""
    start = 60 * 16_667 + 5.0
    for _ in range(3):
        last = throttle.retry_after(scope="api", user_id=1, now=start)
    assert last is not None
    for user_id in range(2, 402):
        throttle.retry_after(scope="api", user_id=user_id, now=start)
    assert throttle.retry_after(scope="api", user_id=1, now=start) is not None


def test_switched_off_nothing_is_counted(db, settings):
    settings.RATE_LIMITS_ENABLED = False
    settings.RATE_LIMITS = {"api": "0/m"}
    assert throttle.retry_after(scope="api", user_id=1) is None


def test_the_defaults_leave_room_for_an_active_trader():
    from config import settings as production

    assert throttle.Rate.parse(production.RATE_LIMITS["order_place"]).count >= 60
    assert throttle.Rate.parse(production.RATE_LIMITS["order_cancel"]).count >= 60
    assert throttle.Rate.parse(production.RATE_LIMITS["api"]).count >= 300


def test_placing_orders_past_the_limit_is_refused_with_a_page(db, limits):
    alice = factories.trader("alice", EUR="10000")
    client = Client()
    client.force_login(alice.user)
    for _ in range(3):
        assert client.post("/market/CEA/orders/new/", ORDER).status_code == 302
    refused = client.post("/market/CEA/orders/new/", ORDER)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Too many requests" in refused.content.decode()
    assert Order.objects.filter(owner=alice).count() == 3
    # Another trader is counted apart.
    bob = factories.trader("bob", EUR="10000")
    other = Client()
    other.force_login(bob.user)
    assert other.post("/market/CEA/orders/new/", ORDER).status_code == 302


def test_htmx_gets_the_message_as_a_toast_and_nothing_swapped(db, limits):
    alice = factories.trader("alice", EUR="10000")
    client = Client()
    client.force_login(alice.user)
    for _ in range(3):
        client.post("/market/CEA/orders/new/", ORDER, HTTP_HX_REQUEST="true")
    refused = client.post("/market/CEA/orders/new/", ORDER, HTTP_HX_REQUEST="true")
    html = refused.content.decode()
    assert refused.status_code == 429 and refused["HX-Reswap"] == "none"
    assert 'id="toasts" hx-swap-oob="true"' in html and "Too many requests: wait" in html
    assert "Retry-After" in refused


def test_cancels_past_the_limit_are_refused_and_the_order_stays(db, limits):
    alice = factories.trader("alice", EUR="10000")
    orders = [
        order_place(
            owner=alice,
            request=order_request_parse(
                market_code="CEA", side="BUY", order_type="LIMIT", price="10.00", quantity=1
            ),
        ).order
        for _ in range(3)
    ]
    client = Client()
    client.force_login(alice.user)
    for order in orders[:2]:
        assert client.post(f"/market/CEA/orders/{order.pk}/cancel/").status_code == 302
    refused = client.post(f"/market/CEA/orders/{orders[2].pk}/cancel/", HTTP_HX_REQUEST="true")
    assert refused.status_code == 429 and refused["Retry-After"]
    assert Order.objects.get(pk=orders[2].pk).status == Order.Status.OPEN


def test_the_api_answers_429_in_json_by_token_and_by_session(db, limits):
    staff = factories.StaffFactory()
    _, token = ApiToken.issue(user=staff)
    by_token = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert by_token.get("/api/v1/liquidity/operations").status_code == 200
    assert by_token.get("/api/v1/market/CEA/book").status_code == 200
    refused = by_token.get("/api/v1/liquidity/operations")
    assert refused.status_code == 429 and refused["Content-Type"].startswith("application/json")
    body = json.loads(refused.content)
    assert body["error"] == "rate_limited" and body["retry_after"] == int(refused["Retry-After"])
    # The same user by session shares the count; the schema's public pages are not counted.
    session = Client()
    session.force_login(staff)
    assert session.get("/api/v1/liquidity/operations").status_code == 429
    assert session.get("/api/v1/openapi.json").status_code == 200


def test_refused_api_writes_change_nothing(db, limits):
    from liquidity.models import LiquidityOperation

    staff = factories.StaffFactory()
    factories.market_maker(factories.MarketMakerClient.Type.LIQUIDITY_PROVIDER, EUR="200000")
    _, token = ApiToken.issue(user=staff)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = json.dumps({"certificate_type": "CEA", "bid_amount_eur": "1000", "ask_amount_eur": "0"})
    for _ in range(2):
        client.get("/api/v1/liquidity/operations")
    refused = client.post("/api/v1/liquidity/create", body, content_type="application/json")
    assert refused.status_code == 429
    assert not LiquidityOperation.objects.exists()
