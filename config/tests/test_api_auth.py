"""`config.api_auth`: who may call the trader endpoints. A trader session must carry the
CSRF token on unsafe methods; a token opens only the endpoints of its scope; a call by
token is recorded on it; an inactive user's token opens nothing."""

import json

import pytest
from django.test import Client

from accounts.models import ApiToken
from market.models import Order
from market.tests import factories

pytestmark = pytest.mark.django_db

ORDER = {"symbol": "CEA/EUR", "type": "limit", "side": "buy", "amount": "1", "price": "13.00"}


@pytest.fixture
def trader():
    return factories.trader("auth-trader", EUR="1000")


def session_client(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/accounts/tokens/")  # sets the csrftoken cookie
    return client, client.cookies["csrftoken"].value


def test_a_session_post_needs_the_csrf_token(trader):
    client, csrf = session_client(trader.user)
    body = json.dumps(ORDER)

    refused = client.post("/api/v1/orders", body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Order.objects.exists()

    placed = client.post(
        "/api/v1/orders", body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert placed.status_code == 201
    order_id = placed.json()["id"]

    # DELETE and PATCH are unsafe too.
    assert client.delete(f"/api/v1/orders/{order_id}").status_code == 403
    amend = json.dumps({"price": "12.00"})
    patched = client.patch(f"/api/v1/orders/{order_id}", amend, content_type="application/json")
    assert patched.status_code == 403
    assert Order.objects.get().status == Order.Status.OPEN
    assert client.get("/api/v1/balances").status_code == 200  # reads need none


def test_a_staff_token_is_refused_by_the_trader_endpoints_naming_the_right_token():
    staff = factories.StaffFactory(username="auth-staff")
    _, token = ApiToken.issue(user=staff)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.post("/api/v1/orders", json.dumps(ORDER), content_type="application/json")

    assert response.status_code == 403
    assert "/accounts/tokens/" in response.json()["detail"]
    assert not Order.objects.exists()
    # ... while the staff endpoints and the market data take it.
    assert client.get("/api/v1/liquidity/operations").status_code == 200
    assert client.get("/api/v1/market/CEA/book").status_code == 200


def test_a_call_by_token_is_recorded_on_it(trader):
    row, token = ApiToken.issue(user=trader.user, scope=ApiToken.Scope.TRADER)
    assert row.last_used_at is None
    Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/balances")
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_an_inactive_users_token_opens_nothing(trader):
    _, token = ApiToken.issue(user=trader.user, scope=ApiToken.Scope.TRADER)
    trader.user.is_active = False
    trader.user.save()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/balances").status_code == 403
    assert client.get("/api/v1/market/CEA/book").status_code == 403


def test_past_the_limit_the_api_answers_429_with_retry_after(trader, settings):
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": "2/m"}
    _, token = ApiToken.issue(user=trader.user, scope=ApiToken.Scope.TRADER)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert [client.get("/api/v1/balances").status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get("/api/v1/orders")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1


def test_placing_by_api_counts_against_the_same_limit_as_the_page(trader, settings):
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "order_place": "1/m"}
    _, token = ApiToken.issue(user=trader.user, scope=ApiToken.Scope.TRADER)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = json.dumps(ORDER)
    assert client.post("/api/v1/orders", body, content_type="application/json").status_code == 201
    again = client.post("/api/v1/orders", body, content_type="application/json")
    assert again.status_code == 429
    assert Order.objects.count() == 1
