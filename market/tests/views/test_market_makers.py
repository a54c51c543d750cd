"""The back-office pages of market makers through Django's test client: balances per
asset, create, fund, withdraw, deactivate; partials to HTMX, inline errors that change
nothing, constant queries, and the permission they need."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from market.models import Balance, LedgerEntry, MarketMakerClient, TicketLog
from market.services.market_makers import market_maker_deactivate
from market.services.markets import market_create
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
HX = {"HTTP_HX_REQUEST": "true"}
MAKERS = "/backoffice/market-makers/"
MAKER_NEW = "/backoffice/market-makers/new/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def client(staff):
    client = Client()
    client.force_login(staff)
    return client


def html(response) -> str:
    return response.content.decode()


def is_full_page(response) -> bool:
    return "<html" in html(response)


def place(holder, side, **fields):
    request = order_request_parse(market_code="CEA", side=side, order_type="LIMIT", **fields)
    return order_place(owner=holder, request=request)


def count_queries(client, method, url, data=None, **extra) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(url, data or {}, **extra)
    assert response.status_code == 200, response.status_code
    return len(queries)


@pytest.mark.parametrize("path", ["", "new/", "{mm}/fund/", "{mm}/withdraw/", "{mm}/deactivate/"])
def test_anonymous_is_sent_to_log_in_and_every_post_needs_its_csrf_token(staff, path):
    maker = factories.market_maker(LP, EUR="10")
    url = MAKERS + path.format(mm=maker.pk)
    response = Client().post(url, {"asset": "EUR", "amount": "1"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    for extra in ({}, HX):
        assert (
            client.post(url, {"asset": "EUR", "amount": "1", "name": "X"}, **extra).status_code
            == 403
        )
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("10")
    assert MarketMakerClient.objects.count() == 1


@pytest.mark.parametrize(
    ("path", "root"),
    [
        ("", '<div id="makers-table"'),
        ("new/", '<div id="mm-action"'),
        ("{mm}/fund/", '<div id="mm-action"'),
        ("{mm}/withdraw/", '<div id="mm-action"'),
        ("{mm}/deactivate/", '<div id="mm-action"'),
    ],
)
def test_every_page_answers_a_partial_to_htmx(client, path, root):
    maker = factories.market_maker(LP, EUR="10")
    url = MAKERS + path.format(mm=maker.pk)
    page = client.get(url)
    assert page.status_code == 200 and is_full_page(page) and root in html(page)
    partial = client.get(url, **HX)
    assert partial.status_code == 200 and not is_full_page(partial)
    assert html(partial).lstrip().startswith(root)


def test_staff_need_the_market_maker_permission(django_user_model):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    client = Client()
    client.force_login(user)
    assert client.get(MAKERS).status_code == 403
    assert client.post(MAKER_NEW, {"name": "X", "mm_type": LP}).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="change_marketmakerclient"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    assert client.get(MAKERS).status_code == 200
    trader = Client()
    trader.force_login(factories.UserFactory())
    assert trader.get(MAKERS).status_code == 403
    assert not MarketMakerClient.objects.exists()


def test_a_new_market_gets_its_column_and_funding_input(client, staff):
    market_create(code="UKA", name="UK Allowance", tick_size=D("0.01"),
                  default_reference_price=D("40.00"), actor=staff)  # fmt: skip
    holder = factories.market_maker(AH, UKA=75)
    page = html(client.get(MAKERS))
    assert "UKA <span" in page and "UKA held by active market makers" in page
    assert 'data-asset="UKA"' in page and ">75<" in page
    form = html(client.get(MAKER_NEW))
    assert 'name="uka"' in form and "Initial UKA" in form
    response = client.post(MAKER_NEW, {"name": "UK holder", "mm_type": AH, "uka": "1,000"})
    assert "without separators" in html(response)
    response = client.post(MAKER_NEW, {"name": "UK holder", "mm_type": AH, "uka": "1000"})
    assert response.status_code == 302
    made = MarketMakerClient.objects.get(name="UK holder")
    assert Balance.objects.get(holder=made.holder, asset="UKA").available == 1000
    assert holder.may_hold("UKA") and not holder.may_hold("EUR")


def test_market_makers_list_shows_balances(client):
    lp = factories.market_maker(LP, EUR="1234567.89")
    factories.market_maker(AH, CEA=12345, EUA=500)
    response = client.get(MAKERS)
    body = html(response)
    assert is_full_page(response)
    assert lp.code in body and "€1,234,567.89" in body and "12,345" in body
    assert "Liquidity provider" in body and "Asset holder" in body
    only_ah = client.get(MAKERS, {"mm_type": AH}, **HX)
    assert not is_full_page(only_ah) and lp.code not in html(only_ah)
    assert html(only_ah).lstrip().startswith('<div id="makers-table"')


def test_market_maker_create(client, staff):
    form = client.get(MAKER_NEW, **HX)
    assert not is_full_page(form) and 'id="mm-action"' in html(form)
    assert is_full_page(client.get(MAKER_NEW))
    data = {"name": "Alpha", "mm_type": LP, "eur": "25000", "description": ""}
    response = client.post(MAKER_NEW, data, **HX)
    assert response["HX-Redirect"] == MAKERS
    maker = MarketMakerClient.objects.get(name="Alpha")
    assert maker.created_by == staff
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("25000")
    assert "Created MM-" in html(client.get(MAKERS))
    response = client.post(MAKER_NEW, {**data, "name": "Beta"})
    assert response.status_code == 302


def test_market_maker_create_refuses_the_wrong_asset_inline(client):
    for extra in ({}, HX):
        response = client.post(MAKER_NEW, {"name": "Gamma", "mm_type": AH, "eur": "100"}, **extra)
        assert response.status_code == 200 and is_full_page(response) == (not extra)
        assert 'data-testid="error-eur"' in html(response)
        assert "An asset holder is funded in certificates" in html(response)
    response = client.post(MAKER_NEW, {"name": "", "mm_type": LP})
    assert 'data-testid="error-name"' in html(response)
    assert not MarketMakerClient.objects.exists()


def test_market_maker_fund_and_withdraw(client):
    maker = factories.market_maker(LP, EUR="1000")
    url = f"{MAKERS}{maker.pk}/fund/"
    assert not is_full_page(client.get(url, **HX)) and is_full_page(client.get(url))
    response = client.post(
        url, {"asset": "EUR", "amount": "500", "next": f"{MAKERS}?mm_type={LP}"}
    )
    assert response.status_code == 302 and response["Location"] == f"{MAKERS}?mm_type={LP}"
    refused = client.post(url, {"asset": "CEA", "amount": "5"}, **HX)
    assert 'data-testid="error-asset"' in html(refused)
    withdraw = f"{MAKERS}{maker.pk}/withdraw/"
    too_much = client.post(withdraw, {"asset": "EUR", "amount": "5000"}, **HX)
    assert 'data-testid="error-amount"' in html(too_much) and "available" in html(too_much)
    assert not is_full_page(too_much)
    ok = client.post(withdraw, {"asset": "EUR", "amount": "200"}, **HX)
    assert ok["HX-Redirect"] == MAKERS
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("1300")


def test_unsafe_next_is_ignored(client):
    maker = factories.market_maker(LP, EUR="1000")
    response = client.post(
        f"{MAKERS}{maker.pk}/fund/",
        {"asset": "EUR", "amount": "1", "next": "https://evil.example/"},
    )
    assert response["Location"] == MAKERS


def test_deactivate_needs_confirmation_to_cancel_open_orders(client, staff, cea):
    provider = factories.market_maker(LP, EUR="1000")
    for price in ("13.90", "13.80", "13.70"):
        place(provider.holder, "BUY", price=price, quantity=1)
    url = f"{MAKERS}{provider.pk}/deactivate/"
    page = client.get(url)
    assert is_full_page(page) and "3 open orders" in html(page)
    refused = client.post(url, {}, **HX)
    assert 'data-testid="error-cancel_open_orders"' in html(refused)
    assert MarketMakerClient.objects.get(pk=provider.pk).is_active
    done = client.post(url, {"cancel_open_orders": "on"}, **HX)
    assert done["HX-Redirect"] == MAKERS
    assert not MarketMakerClient.objects.get(pk=provider.pk).is_active
    assert "cancelled 3 open orders" in html(client.get(MAKERS))
    assert_all_invariants()


def test_market_makers_list_queries_do_not_grow(client, staff):
    for _ in range(5):
        factories.market_maker(LP, EUR="1000")
    client.get(MAKERS)
    few = count_queries(client, "get", MAKERS)
    for _ in range(45):
        factories.market_maker(AH, CEA=10)
    assert count_queries(client, "get", MAKERS) == few


# --- actions that would do nothing are not offered -----------------------------------------


@pytest.mark.parametrize("action", ["fund", "deactivate"])
def test_an_inactive_makers_fund_and_deactivate_pages_say_why_and_offer_nothing(
    client, staff, action
):
    maker = factories.market_maker(LP, EUR="100")
    market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    url = f"{MAKERS}{maker.pk}/{action}/"
    reason = {
        "fund": f"{maker.code} is inactive, so it cannot be funded: reactivate it first.",
        "deactivate": f"{maker.code} is already inactive: there is nothing to deactivate.",
    }[action]
    for extra in ({}, HX):
        response = client.get(url, **extra)
        body = html(response)
        assert response.status_code == 200 and reason in body
        assert "<form" not in body.split('id="mm-action"')[1]  # no form, no submit button
        assert is_full_page(response) == (not extra)

    # A stale page posted anyway: the same refusal, 409, and nothing written.
    tickets, entries = TicketLog.objects.count(), LedgerEntry.objects.count()
    response = client.post(url, {"asset": "EUR", "amount": "50", "cancel_open_orders": "on"}, **HX)
    assert response.status_code == 409 and reason in html(response)
    assert (TicketLog.objects.count(), LedgerEntry.objects.count()) == (tickets, entries)
    assert Balance.objects.get(holder=maker.holder, asset="EUR").available == D("100")


def test_the_list_offers_an_inactive_maker_neither_fund_nor_deactivate(client, staff):
    maker = factories.market_maker(LP, EUR="100")
    market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=False)
    body = html(client.get(MAKERS))
    assert f"{MAKERS}{maker.pk}/withdraw/" in body
    assert f"{MAKERS}{maker.pk}/fund/" not in body
    assert f"{MAKERS}{maker.pk}/deactivate/" not in body
