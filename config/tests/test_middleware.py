"""`config.middleware.PrivateResponsesNotStoredMiddleware`: what a signed-in user sees is
never stored by a browser or proxy, and the order-book poll keeps its 304s."""

import pytest
from django.test import Client

from accounts.models import ApiToken
from market.tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader_client():
    client = Client()
    client.force_login(factories.trader("cache-trader", EUR="1000").user)
    return client


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(factories.StaffFactory(username="cache-staff"))
    return client


def not_stored(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


@pytest.mark.parametrize(
    ("path", "htmx"),
    [
        ("/", False),
        ("/market/CEA/", False),
        ("/market/CEA/balances/", True),
        ("/market/CEA/orders/?tab=history", True),
        ("/market/CEA/book/", False),  # without htmx: the whole page, balances included
        ("/market/no-such-market/", False),  # a 404 to a signed-in user too
    ],
)
def test_trader_pages_and_partials_are_not_stored(trader_client, path, htmx):
    response = trader_client.get(path, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    assert response.status_code in (200, 404)
    assert not_stored(response), response.get("Cache-Control")


def test_a_placed_order_answer_is_not_stored(trader_client):
    response = trader_client.post(
        "/market/CEA/orders/new/",
        {"side": "BUY", "order_type": "LIMIT", "price": "10.00", "quantity": "1"},
    )
    assert response.status_code == 302
    assert not_stored(response)


@pytest.mark.parametrize(
    "path",
    [
        "/backoffice/liquidity/",
        "/backoffice/liquidity/new/",
        "/backoffice/market-makers/",
        "/admin/market/balance/",
        "/api/v1/liquidity/operations",
        "/api/v1/market/CEA/book",
    ],
)
def test_back_office_pages_and_the_api_by_session_are_not_stored(staff_client, path):
    response = staff_client.get(path)
    assert response.status_code == 200
    assert not_stored(response), response.get("Cache-Control")


def test_the_api_by_bearer_token_is_not_stored():
    _, token = ApiToken.issue(user=factories.StaffFactory(username="cache-bot"))
    response = Client().get("/api/v1/liquidity/operations", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert not_stored(response)


def test_the_book_poll_keeps_its_revalidation_and_304(trader_client):
    """The poll's body must stay in the browser's cache to be revalidated: `no-store`
    would end its 304s. It is the public book, the same for every trader."""
    poll = trader_client.get("/market/CEA/book/", HTTP_HX_REQUEST="true")
    assert poll.status_code == 200
    assert poll["Cache-Control"] == "private, no-cache"
    again = trader_client.get(
        "/market/CEA/book/", HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=poll["ETag"]
    )
    assert again.status_code == 304
    assert again["Cache-Control"] == "private, no-cache"


def test_anonymous_pages_are_left_alone(client):
    """Nothing of anyone's there: the landing page, the API schema (the login page is
    never-cache by Django itself)."""
    for path in ("/", "/api/v1/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200
        assert not not_stored(response), path
