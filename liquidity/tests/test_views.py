"""The back-office pages through Django's test client: access, HTMX partials vs full pages,
CSRF, inline errors that change nothing, and query counts that do not grow."""

import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from liquidity.models import LiquidityOperation
from liquidity.services import liquidity_execute, liquidity_request_parse
from market.models import Balance, LedgerEntry, MarketMakerClient, Order, TicketLog
from market.services.market_makers import market_maker_deactivate
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants, race_behind_a_lock

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
HX = {"HTTP_HX_REQUEST": "true"}
pytestmark = pytest.mark.django_db

NEW = "/backoffice/liquidity/new/"
PREVIEW = "/backoffice/liquidity/preview/"
EXECUTE = "/backoffice/liquidity/execute/"
PROVISION_CREATE = "/backoffice/liquidity/provision/create/"
PROVISION_FUND = "/backoffice/liquidity/provision/fund/"
OPERATIONS = "/backoffice/liquidity/"

REQUEST = {"certificate_type": "CEA", "bid_amount_eur": "100000", "ask_amount_eur": "50000"}


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


class _Inputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: dict[str, list[dict]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "textarea", "select", "button") and "name" in attrs:
            self.found.setdefault(attrs["name"], []).append(attrs)


def inputs(response) -> dict[str, list[dict]]:
    """Every named input of the response: name → the attributes of each."""
    parser = _Inputs()
    parser.feed(html(response) if not isinstance(response, str) else response)
    return parser.found


def value(response, name: str) -> str:
    found = inputs(response).get(name)
    assert found, f"no input {name}"
    return found[0].get("value") or ""


hidden = value


def funded_market():
    """One provider and one holder that can cover REQUEST."""
    return factories.market_maker(LP, EUR="200000"), factories.market_maker(AH, CEA=10000)


def execute_data(preview_response, **extra):
    return {
        **REQUEST,
        "reference_price": "",
        "notes": "",
        "fingerprint": hidden(preview_response, "fingerprint"),
        "idempotency_key": hidden(preview_response, "idempotency_key"),
        **extra,
    }


def operation(user, **amounts):
    request = liquidity_request_parse(
        market_code=amounts.get("market", "CEA"),
        bid_amount_eur=amounts.get("bid", "1000"),
        ask_amount_eur=amounts.get("ask", "1000"),
    )
    return liquidity_execute(request=request, user=user)


# ============================================================================ access


GET_PAGES = [NEW, OPERATIONS]
POST_ENDPOINTS = [PREVIEW, EXECUTE, PROVISION_CREATE, PROVISION_FUND]


@pytest.mark.parametrize("url", GET_PAGES + POST_ENDPOINTS)
def test_anonymous_is_sent_to_the_login_page(url):
    response = Client().get(url) if url in GET_PAGES else Client().post(url, REQUEST)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={url}")


@pytest.mark.parametrize("url", GET_PAGES)
def test_a_trader_gets_403(url, django_user_model):
    trader = django_user_model.objects.create_user("trader", password="pw")
    client = Client()
    client.force_login(trader)
    assert client.get(url).status_code == 403
    assert client.post(PREVIEW, REQUEST).status_code == 403


def test_staff_needs_the_liquidity_permission_and_to_provision_the_maker_one(django_user_model):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(NEW).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    assert client.get(NEW).status_code == 200
    # Provisioning creates and funds market makers: the market-maker permission's work.
    provision = {**REQUEST, "side": "BID", "bid-count": "1", "bid-total_amount": "10",
                 "bid-name_prefix": "LP"}  # fmt: skip
    assert client.post(PROVISION_CREATE, provision).status_code == 403
    assert not MarketMakerClient.objects.exists()
    user.user_permissions.add(Permission.objects.get(codename="change_marketmakerclient"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    assert client.post(PROVISION_CREATE, provision).status_code == 200
    assert MarketMakerClient.objects.count() == 1


def test_operation_pages_are_staff_only(client, staff, django_user_model):
    funded_market()
    op = operation(staff)
    trader = django_user_model.objects.create_user("trader", password="pw")
    other = Client()
    other.force_login(trader)
    for url in (f"{OPERATIONS}{op.pk}/", f"{OPERATIONS}{op.pk}/withdraw/"):
        assert other.get(url).status_code == 403
    assert other.post(f"{OPERATIONS}{op.pk}/withdraw/").status_code == 403
    assert not Order.objects.filter(status="CANCELLED").exists()


# ============================================================================ CSRF


def test_every_post_refuses_a_missing_csrf_token(staff):
    funded_market()
    op = operation(staff)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    posts = [*POST_ENDPOINTS, f"{OPERATIONS}{op.pk}/withdraw/"]
    tickets = TicketLog.objects.count()
    for url in posts:
        assert client.post(url, {**REQUEST, "side": "BID"}).status_code == 403, url
        assert client.post(url, {**REQUEST, "side": "BID"}, **HX).status_code == 403, url
    assert TicketLog.objects.count() == tickets
    # With the token, the same client gets through.
    page = client.get(NEW)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html(page)).group(1)
    assert client.post(PREVIEW, {**REQUEST, "csrfmiddlewaretoken": token}).status_code == 200


# ============================================================================ create liquidity


def test_create_page_has_the_form_and_how_it_works(client):
    response = client.get(NEW)
    assert response.status_code == 200 and is_full_page(response)
    page = html(response)
    for label in ("BID liquidity (EUR)", "ASK liquidity (EUR)", "Reference price (EUR)", "Notes"):
        assert label in page
    assert 'id="plan-preview"' in page and 'data-testid="plan-empty"' in page
    assert "How it works" in page and "50 / 30 / 20 %" in page and "0.2 %, 0.4 % and 0.5 %" in page
    assert f'hx-post="{PREVIEW}"' in page and f'action="{PREVIEW}"' in page


def test_create_page_to_htmx_is_the_empty_preview(client):
    response = client.get(NEW, **HX)
    assert not is_full_page(response)
    assert html(response).lstrip().startswith('<section id="plan-preview"')


def test_preview_answers_a_partial_to_htmx_and_a_page_otherwise(client):
    funded_market()
    partial = client.post(PREVIEW, REQUEST, **HX)
    assert partial.status_code == 200 and not is_full_page(partial)
    body = html(partial)
    assert body.lstrip().startswith('<section id="plan-preview"')
    assert 'id="liquidity-fields" class="space-y-5" hx-swap-oob="true"' in body
    assert 'data-status="ready"' in body

    page = client.post(PREVIEW, REQUEST)
    assert page.status_code == 200 and is_full_page(page)
    assert 'data-status="ready"' in html(page) and "hx-swap-oob" not in html(page)


def test_preview_shows_sides_levels_and_summary(client):
    funded_market()
    body = html(client.post(PREVIEW, REQUEST, **HX))
    assert "Ready to execute" in body and "6 orders from 2 market makers" in body
    assert "€100,000.00" in body and "€50,000.00" in body
    # Reference price: the CEA default, 14.00; BID levels 0.2 / 0.4 / 0.5 % below.
    assert "€14.00" in body and "Market default" in body
    for price in ("€13.97", "€13.94", "€13.93", "€14.03", "€14.06", "€14.07"):
        assert price in body
    assert "50%" in body and "30%" in body and "20%" in body
    assert 'data-testid="total-orders">6<' in body
    assert "€0.06" in body  # estimated spread 14.03 - 13.97
    assert "Confirm &amp; Execute" in body
    assert re.search(r'<button type="submit" id="execute-button"\s+class', body)  # enabled
    assert len(hidden(client.post(PREVIEW, REQUEST), "idempotency_key")) == 32


def test_short_preview_shows_every_shortfall_with_provisioning(client):
    factories.market_maker(LP, EUR="1000")
    factories.market_maker(AH, CEA=10)
    body = html(client.post(PREVIEW, REQUEST, **HX))
    assert 'data-status="short"' in body
    assert 'data-testid="shortfall-bid"' in body and 'data-testid="shortfall-ask"' in body
    # BID: €99,987.06 required (the certificates €100,000 buys at the levels' prices),
    # €1,000 available; ASK: 3,559 certificates at the ask levels' prices, 10 available.
    assert "€99,015.00" in body  # and one €13.97 certificate for each of 2 makers
    assert "3,549 CEA" in body
    assert 'data-testid="provision-create-bid"' in body
    assert 'data-testid="provision-fund-ask"' in body
    assert value(body, "bid-count") == "1" and value(body, "ask-total_amount") == "3549"
    assert value(body, "bid-total_amount") == "99015.00"
    assert 'id="execute-button" disabled' in body


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"bid_amount_eur": "-5"}, "bid_amount_eur"),
        ({"ask_amount_eur": "abc"}, "ask_amount_eur"),
        ({"bid_amount_eur": "12.345"}, "bid_amount_eur"),
        ({"certificate_type": "XXX"}, "certificate_type"),
        ({"reference_price": "14.001"}, "reference_price"),
        ({"notes": "x" * 2001}, "notes"),
    ],
)
def test_bad_input_shows_inline_errors_and_changes_nothing(client, data, field):
    funded_market()
    tickets, entries = TicketLog.objects.count(), LedgerEntry.objects.count()
    for extra in ({}, HX):
        response = client.post(PREVIEW, {**REQUEST, **data}, **extra)
        assert response.status_code == 200
        assert f'data-testid="error-{field}"' in html(response)
        assert 'aria-invalid="true"' in html(response) or field == "certificate_type"
        assert "Fix the highlighted fields" in html(response)
    response = client.post(
        EXECUTE, {**REQUEST, **data, "fingerprint": "x", "idempotency_key": "k"}
    )
    assert f'data-testid="error-{field}"' in html(response)
    assert (TicketLog.objects.count(), LedgerEntry.objects.count()) == (tickets, entries)
    assert not LiquidityOperation.objects.exists()


def test_both_amounts_zero_is_a_form_error(client):
    response = client.post(PREVIEW, {**REQUEST, "bid_amount_eur": "", "ask_amount_eur": "0"})
    assert 'data-testid="form-errors"' in html(response)
    assert "Enter a BID or an ASK amount" in html(response)


def test_one_sided_preview(client):
    funded_market()
    body = html(client.post(PREVIEW, {**REQUEST, "ask_amount_eur": ""}, **HX))
    assert "No ASK liquidity requested." in body
    assert 'data-status="ready"' in body


def test_execute_redirects_to_the_operation_with_a_message(client):
    funded_market()
    preview = client.post(PREVIEW, REQUEST, **HX)
    response = client.post(EXECUTE, execute_data(preview), **HX)
    op = LiquidityOperation.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/backoffice/liquidity/{op.pk}/"
    detail = client.get(response["HX-Redirect"])
    assert f"Liquidity operation {op.ticket.ticket_id} placed 6 orders" in html(detail)
    assert op.orders.count() == 6
    assert_all_invariants()


def test_execute_without_htmx_is_a_plain_redirect_and_idempotent(client):
    funded_market()
    preview = client.post(PREVIEW, REQUEST)
    data = execute_data(preview)
    first = client.post(EXECUTE, data, follow=True)
    tickets = TicketLog.objects.count()
    again = client.post(EXECUTE, data, follow=True)  # a double submit, or a reload
    op = LiquidityOperation.objects.get()
    detail = f"/backoffice/liquidity/{op.pk}/"
    assert first.redirect_chain == again.redirect_chain == [(detail, 302)]
    assert f"Liquidity operation {op.ticket.ticket_id} placed 6 orders" in html(first)
    assert (
        f"Liquidity operation {op.ticket.ticket_id} was already executed from this preview; "
        "nothing new was placed."
    ) in html(again)
    assert "placed 6 orders" not in html(again)
    assert Order.objects.count() == 6 and TicketLog.objects.count() == tickets


def test_a_second_htmx_confirm_goes_to_the_operation_already_executed(client):
    funded_market()
    data = execute_data(client.post(PREVIEW, REQUEST, **HX))
    first = client.post(EXECUTE, data, **HX)
    again = client.post(EXECUTE, data, **HX)
    assert again["HX-Redirect"] == first["HX-Redirect"]
    assert "already executed" in html(client.get(again["HX-Redirect"]))
    assert LiquidityOperation.objects.count() == 1


def test_a_key_reused_for_another_request_shows_why_and_a_new_key(client):
    """A Confirm form whose inputs no longer match what its key executed (edited by hand,
    or a stale copy of the page): refused, nothing placed, and the preview shown again
    with a new key, so confirming that plan places it."""
    funded_market()
    data = execute_data(client.post(PREVIEW, REQUEST))
    client.post(EXECUTE, data)
    op = LiquidityOperation.objects.get()
    before = (Order.objects.count(), TicketLog.objects.count())

    response = client.post(EXECUTE, {**data, "ask_amount_eur": "40000"})
    body = html(response)
    assert response.status_code == 200 and is_full_page(response)
    assert 'data-level="error"' in body
    assert (
        f"Liquidity operation {op.ticket.ticket_id} was already executed with this "
        "idempotency key, for a different request; nothing was changed. Below is the plan "
        "for these inputs: confirm it to place a new operation."
    ) in body
    assert (Order.objects.count(), TicketLog.objects.count()) == before
    new_key = hidden(response, "idempotency_key")
    assert new_key != data["idempotency_key"] and len(new_key) == 32
    assert client.post(EXECUTE, execute_data(response, ask_amount_eur="40000")).status_code == 302
    assert LiquidityOperation.objects.count() == 2


@pytest.mark.postgres  # row locks
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrated_rows")
@pytest.mark.parametrize("headers", [{}, HX], ids=["plain", "htmx"])
def test_two_confirms_at_once_make_one_operation_and_both_go_to_it(headers):
    """Without JavaScript nothing stops a double click: the second POST arrives while the
    first holds the market lock. It must go to the first one's operation, not re-show a
    changed plan under a new key."""
    staff = factories.StaffFactory()
    factories.market_maker(LP, EUR="1000000")
    factories.market_maker(AH, CEA=100000)
    clients = [Client(), Client()]
    for each in clients:
        each.force_login(staff)
    data = execute_data(clients[0].post(PREVIEW, REQUEST))

    def confirm(each):
        return lambda: each.post(EXECUTE, data, **headers)

    first, second, second_waited = race_behind_a_lock(confirm(clients[0]), confirm(clients[1]))
    assert second_waited is True
    op = LiquidityOperation.objects.get()
    location = "HX-Redirect" if headers else "Location"
    for response in (first, second):
        assert response.has_header(location), html(response)[:500]
        assert response[location] == f"/backoffice/liquidity/{op.pk}/"
    assert "already executed" in html(clients[1].get(second[location]))
    assert Order.objects.count() == 6
    assert_all_invariants()


def test_execute_after_the_market_moved_shows_the_fresh_plan(client):
    funded_market()
    preview = client.post(PREVIEW, REQUEST, **HX)
    factories.market_maker(LP, EUR="50000")  # the allocation changes
    response = client.post(EXECUTE, execute_data(preview), **HX)
    body = html(response)
    assert "HX-Redirect" not in response
    assert 'data-level="warning"' in body and "changed since the preview" in body
    assert hidden(response, "fingerprint") != hidden(preview, "fingerprint")
    assert body.count('<span class="font-mono text-xs font-semibold text-slate-900">MM-') >= 3
    assert not LiquidityOperation.objects.exists() and not Order.objects.exists()
    # Confirming the fresh plan works.
    assert client.post(EXECUTE, execute_data(response), **HX).has_header("HX-Redirect")


def test_execute_a_short_plan_shows_the_shortfalls(client):
    factories.market_maker(LP, EUR="1000")
    factories.market_maker(AH, CEA=10000)
    preview = client.post(PREVIEW, REQUEST)
    response = client.post(EXECUTE, execute_data(preview))
    assert response.status_code == 200 and is_full_page(response)
    assert "Insufficient assets" in html(response)
    assert 'data-testid="shortfall-bid"' in html(response)
    assert not LiquidityOperation.objects.exists()


def test_execute_without_fingerprint_is_refused_inline(client):
    funded_market()
    response = client.post(EXECUTE, REQUEST, **HX)
    assert response.status_code == 200 and not is_full_page(response)
    assert not LiquidityOperation.objects.exists()


# ============================================================================ provisioning


def test_provision_create_refreshes_the_preview_to_executable(client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=1000)
    data = {
        **REQUEST,
        "side": "ASK",
        "ask-count": "2",
        "ask-total_amount": "2571",
        "ask-name_prefix": "CEA asset holder",
    }
    response = client.post(PROVISION_CREATE, data, **HX)
    assert response.status_code == 200 and not is_full_page(response)
    body = html(response)
    assert 'data-status="ready"' in body
    assert "Created 2 market makers" in body and "2,571 CEA" in body
    made = MarketMakerClient.objects.filter(name__startswith="CEA asset holder").order_by("pk")
    assert [m.name for m in made] == ["CEA asset holder 1", "CEA asset holder 2"]
    assert {m.mm_type for m in made} == {AH}
    assert sorted(
        b.available for b in Balance.objects.filter(holder__market_maker__in=made, asset="CEA")
    ) == [D("1285"), D("1286")]
    # The same inputs, previewed again: hidden fields carry them.
    assert "50000.00" in [i["value"] for i in inputs(body)["ask_amount_eur"]]


def test_provision_create_without_htmx_renders_the_page(client):
    factories.market_maker(AH, CEA=10000)
    data = {
        **REQUEST,
        "side": "BID",
        "bid-count": "3",
        "bid-total_amount": "150000",
        "bid-name_prefix": "LP",
    }
    response = client.post(PROVISION_CREATE, data)
    assert response.status_code == 200 and is_full_page(response)
    assert 'data-status="ready"' in html(response)
    assert MarketMakerClient.objects.filter(mm_type=LP).count() == 3


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"ask-count": "0"}, "error-count"),
        ({"ask-total_amount": "12.5"}, "error-total_amount"),
        ({"ask-total_amount": "1", "ask-count": "3"}, "error-total_amount"),
        ({"ask-name_prefix": ""}, "error-name_prefix"),
    ],
)
def test_provision_create_errors_are_inline_and_change_nothing(client, fields, error):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=1000)
    makers, tickets = MarketMakerClient.objects.count(), TicketLog.objects.count()
    data = {
        **REQUEST,
        "side": "ASK",
        "ask-count": "1",
        "ask-total_amount": "2571",
        "ask-name_prefix": "AH",
        **fields,
    }
    response = client.post(PROVISION_CREATE, data, **HX)
    body = html(response)
    assert f'data-testid="{error}"' in body
    assert 'data-status="short"' in body
    assert (MarketMakerClient.objects.count(), TicketLog.objects.count()) == (makers, tickets)


def test_provision_fund_existing(client):
    lp1 = factories.market_maker(LP, EUR="30000")
    lp2 = factories.market_maker(LP, EUR="30000")
    factories.market_maker(AH, CEA=10000)
    short = html(client.post(PREVIEW, REQUEST, **HX))
    # The shortfall: €99,987.06 needed, €60,000 held, and a €13.97 certificate for each of
    # the 2 makers and one more.
    assert len(inputs(short)["bid-market_makers"]) == 2 and "€40,028.97" in short
    data = {
        **REQUEST,
        "side": "BID",
        "bid-market_makers": [lp1.pk, lp2.pk],
        "bid-split": "each",
        "bid-amount": "20000",
    }
    response = client.post(PROVISION_FUND, data, **HX)
    body = html(response)
    assert "Funded 2 market makers with €40,000.00 in total (€20,000.00 each)." in body
    assert 'data-status="ready"' in body
    assert Balance.objects.get(holder=lp1.holder, asset="EUR").available == D("50000")


def test_provision_fund_needs_a_selection_and_changes_nothing(client):
    factories.market_maker(LP, EUR="30000")
    factories.market_maker(AH, CEA=10000)
    entries = LedgerEntry.objects.count()
    data = {**REQUEST, "side": "BID", "bid-amount": "20000"}
    for extra in ({}, HX):
        response = client.post(PROVISION_FUND, data, **extra)
        assert 'data-testid="error-market_makers"' in html(response)
        assert is_full_page(response) == (not extra)
    assert LedgerEntry.objects.count() == entries


def test_provision_fund_refuses_an_inactive_maker(client, staff):
    lp = factories.market_maker(LP, EUR="30000")
    factories.market_maker(AH, CEA=10000)
    MarketMakerClient.objects.filter(pk=lp.pk).update(is_active=False)
    data = {**REQUEST, "side": "BID", "bid-market_makers": [lp.pk], "bid-amount": "1"}
    response = client.post(PROVISION_FUND, data, **HX)
    assert 'data-testid="error-market_makers"' in html(response)  # not a choice


def test_provision_with_unknown_side_is_404(client):
    assert client.post(PROVISION_CREATE, {**REQUEST, "side": "XXX"}).status_code == 404


# ============================================================================ operations


def test_operations_list_filters_and_paginates(client, staff, django_user_model):
    factories.market_maker(LP, EUR="1000000")
    factories.market_maker(AH, CEA=100000, EUA=100000)
    other = factories.StaffFactory()
    for _ in range(3):
        operation(staff)
    operation(other, market="EUA", ask="1000")
    page = client.get(OPERATIONS)
    assert page.status_code == 200 and is_full_page(page)
    assert html(page).count('data-testid="operation-row"') == 4
    eua = client.get(OPERATIONS, {"market": "EUA"})
    assert html(eua).count('data-testid="operation-row"') == 1
    mine = client.get(OPERATIONS, {"created_by": staff.pk}, **HX)
    assert not is_full_page(mine) and html(mine).count('data-testid="operation-row"') == 3
    assert html(mine).lstrip().startswith('<div id="operations-table"')
    bad = client.get(OPERATIONS, {"date_from": "2030-01-02", "date_to": "2030-01-01"})
    assert 'data-testid="error-date_to"' in html(bad)
    future = client.get(OPERATIONS, {"date_from": "2999-01-01"})
    assert 'data-testid="operation-row"' not in html(future)


def test_operations_list_paginates_keeping_filters(client, staff, monkeypatch):
    from liquidity import views

    monkeypatch.setattr(views, "OPERATIONS_PER_PAGE", 2)
    funded_market()
    for _ in range(3):
        operation(staff)
    first = html(client.get(OPERATIONS, {"market": "CEA"}))
    assert first.count('data-testid="operation-row"') == 2
    assert "?market=CEA&amp;page=2" in first
    second = html(client.get(OPERATIONS, {"market": "CEA", "page": 2}))
    assert second.count('data-testid="operation-row"') == 1


def test_operation_detail_shows_progress_and_orders(client, staff):
    funded_market()
    op = operation(staff, bid="100000", ask="50000")
    best_ask = Order.objects.filter(side="SELL").order_by("price").first()
    buyer = factories.trader(EUR="100000")
    order_place(
        owner=buyer,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="LIMIT", price=best_ask.price, quantity=100
        ),
    )
    response = client.get(f"{OPERATIONS}{op.pk}/")
    body = html(response)
    assert is_full_page(response)
    assert op.ticket.ticket_id in body and "Partly filled" in body
    assert body.count('<tr class="hover:bg-slate-50">') == 6
    assert 'data-testid="fill-pct">' in body
    assert f'hx-post="/backoffice/liquidity/{op.pk}/withdraw/"' in body and "hx-confirm=" in body
    partial = client.get(f"{OPERATIONS}{op.pk}/", **HX)
    assert not is_full_page(partial) and html(partial).lstrip().startswith(
        '<div id="operation-body"'
    )
    assert client.get(f"{OPERATIONS}999999/").status_code == 404


def test_withdraw_with_htmx_answers_the_refreshed_detail(client, staff):
    provider, _ = funded_market()
    op = operation(staff)
    response = client.post(f"{OPERATIONS}{op.pk}/withdraw/", **HX)
    body = html(response)
    assert response.status_code == 200 and not is_full_page(response)
    assert (
        "Withdrawn" in body and f"Withdrew {op.ticket.ticket_id}: cancelled 6 open orders" in body
    )
    assert "was already withdrawn" in body and 'data-testid="withdraw"' not in body
    assert '<div id="messages" hx-swap-oob="delete"></div>' in body
    assert not Order.objects.filter(status__in=Order.RESTING).exists()
    assert Balance.objects.get(holder=provider.holder, asset="EUR").locked == 0
    assert_all_invariants()


def test_withdraw_without_js_confirms_on_a_page_then_redirects(client, staff):
    funded_market()
    op = operation(staff)
    confirm = client.get(f"{OPERATIONS}{op.pk}/withdraw/")
    assert is_full_page(confirm) and "6 open orders" in html(confirm)
    assert 'data-testid="withdraw-confirm"' in html(
        client.get(f"{OPERATIONS}{op.pk}/withdraw/", **HX)
    )
    assert not is_full_page(client.get(f"{OPERATIONS}{op.pk}/withdraw/", **HX))
    assert Order.objects.filter(status__in=Order.RESTING).count() == 6  # GET changes nothing
    response = client.post(f"{OPERATIONS}{op.pk}/withdraw/")
    assert (
        response.status_code == 302 and response["Location"] == f"/backoffice/liquidity/{op.pk}/"
    )
    detail = html(client.get(response["Location"]))
    assert "cancelled 6 open orders" in detail and "Withdrawn" in detail


# ============================================================================ query counts


def count_queries(client, method, url, data=None, **extra) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(url, data or {}, **extra)
    assert response.status_code == 200, response.status_code
    return len(queries)


def makers(count: int, mm_type=LP, **funds):
    for _ in range(count):
        factories.market_maker(mm_type, **funds)


def test_preview_queries_do_not_grow_with_market_makers(client):
    makers(5, LP, EUR="1000")
    makers(5, AH, CEA=10)
    client.post(PREVIEW, REQUEST, **HX)  # warm up
    short = count_queries(client, "post", PREVIEW, REQUEST, **HX)
    ok_request = {**REQUEST, "bid_amount_eur": "100", "ask_amount_eur": "100"}
    ready = count_queries(client, "post", PREVIEW, ok_request, **HX)
    makers(45, LP, EUR="1000")
    makers(45, AH, CEA=10)
    assert count_queries(client, "post", PREVIEW, REQUEST, **HX) == short
    assert count_queries(client, "post", PREVIEW, ok_request, **HX) == ready


def test_operations_list_queries_do_not_grow_with_operations(client, staff, monkeypatch):
    from liquidity import views

    monkeypatch.setattr(views, "OPERATIONS_PER_PAGE", 100)  # every row on one page
    funded_market()
    other = factories.StaffFactory()
    for _ in range(5):
        operation(staff)
    client.get(OPERATIONS)
    few = count_queries(client, "get", OPERATIONS)
    for number in range(45):
        operation(other if number % 2 else staff, bid="100", ask="100")
    response = client.get(OPERATIONS)
    assert html(response).count('data-testid="operation-row"') == 50
    assert count_queries(client, "get", OPERATIONS) == few


def test_operation_detail_queries_do_not_grow_with_market_makers(client, staff):
    makers(5, LP, EUR="100000")
    makers(5, AH, CEA=10000)
    small = operation(staff, bid="50000", ask="50000")
    client.get(f"{OPERATIONS}{small.pk}/")
    few = count_queries(client, "get", f"{OPERATIONS}{small.pk}/")
    makers(45, LP, EUR="100000")
    makers(45, AH, CEA=10000)
    big = operation(staff, bid="50000", ask="50000")
    assert len(big.market_makers_used) == 100 and big.orders.count() == 300
    assert count_queries(client, "get", f"{OPERATIONS}{big.pk}/") == few


@pytest.mark.parametrize(
    ("path", "root"),
    [
        (NEW, '<section id="plan-preview"'),
        (OPERATIONS, '<div id="operations-table"'),
        ("{op}", '<div id="operation-body"'),
        ("{op}withdraw/", '<div id="withdraw-confirm"'),
    ],
)
def test_every_page_answers_a_partial_to_htmx(client, staff, path, root):
    funded_market()
    op = operation(staff)
    url = path.format(op=f"{OPERATIONS}{op.pk}/")
    page = client.get(url)
    assert page.status_code == 200 and is_full_page(page)
    assert root in html(page)
    partial = client.get(url, **HX)
    assert partial.status_code == 200 and not is_full_page(partial)
    assert html(partial).lstrip().startswith(root)


# ============================================================================ nothing to do


def test_a_withdrawn_operation_offers_no_withdrawal_and_a_stale_post_writes_nothing(client, staff):
    funded_market()
    op = operation(staff)
    client.post(f"{OPERATIONS}{op.pk}/withdraw/")
    detail = html(client.get(f"{OPERATIONS}{op.pk}/"))
    assert 'data-testid="withdraw"' not in detail and "was already withdrawn" in detail

    confirm = client.get(f"{OPERATIONS}{op.pk}/withdraw/")
    body = html(confirm)
    assert 'data-testid="withdraw-refusal"' in body and "was already withdrawn" in body
    assert 'action="/backoffice/liquidity/' not in body  # no form to submit
    assert "Back to the operation" in body

    tickets = TicketLog.objects.count()
    for extra in ({}, HX):
        response = client.post(f"{OPERATIONS}{op.pk}/withdraw/", follow=not extra, **extra)
        assert "was already withdrawn" in html(response)
    assert TicketLog.objects.count() == tickets
    assert TicketLog.objects.filter(action_type="LIQUIDITY_WITHDRAWN").count() == 1


def test_an_operation_partly_cancelled_by_deactivation_says_so_and_what_remains(client, staff):
    provider, holder = funded_market()
    op = operation(staff, bid="100000", ask="50000")
    market_maker_deactivate(market_maker=provider, actor=staff, cancel_open_orders=True)
    detail = html(client.get(f"{OPERATIONS}{op.pk}/"))
    assert "Partly cancelled" in detail
    assert "3 of 6 orders cancelled by market-maker deactivation" in detail
    assert 'data-testid="remaining-bid"' in detail and 'data-testid="remaining-ask"' in detail
    bid = detail.split('data-testid="remaining-bid"')[1].split("</li>")[0]
    ask = detail.split('data-testid="remaining-ask"')[1].split("</li>")[0]
    assert "0 of 3 orders resting" in bid and "3 cancelled by deactivation" in bid
    assert "3 of 3 orders resting" in ask and "3,559 CEA still offered" in ask
    assert "market maker deactivated" in detail  # the cancelled orders' reason
    assert 'data-testid="withdraw"' in detail  # the asks can still be withdrawn

    listing = html(client.get(OPERATIONS))
    assert "Partly cancelled" in listing
    assert "3 of 6 orders cancelled by market-maker deactivation" in listing

    market_maker_deactivate(market_maker=holder, actor=staff, cancel_open_orders=True)
    detail = html(client.get(f"{OPERATIONS}{op.pk}/"))
    assert ">\n  Cancelled\n</span>" in detail and 'data-testid="withdraw"' not in detail
    assert "6 of 6 orders cancelled by market-maker deactivation" in detail


def test_fund_existing_splits_the_shortfall_among_the_selected_by_default(client):
    lp1 = factories.market_maker(LP, EUR="30000")
    lp2 = factories.market_maker(LP, EUR="30000")
    lp3 = factories.market_maker(LP, EUR="0.02")
    factories.market_maker(AH, CEA=10000)
    short = client.post(PREVIEW, REQUEST, **HX)
    body = html(short)
    # The shortfall (99,987.06 − 60,000.02, plus one €13.97 certificate per maker and one
    # more) is the total, split: not given to each.
    assert value(body, "bid-amount") == "40042.92"
    checked = [attrs for attrs in inputs(body)["bid-split"] if "checked" in attrs]
    assert [attrs["value"] for attrs in checked] == ["total"]
    assert "Select market makers to fund." in body

    data = {**REQUEST, "side": "BID", "bid-market_makers": [lp1.pk, lp2.pk, lp3.pk]}
    data["bid-amount"] = "40042.92"
    summary = html(client.post("/backoffice/liquidity/provision/fund/summary/", data, **HX))
    assert "€40,042.92</span> in total to 3 market makers" in summary
    assert "€13,347.64 each" in summary
    each = html(
        client.post(
            "/backoffice/liquidity/provision/fund/summary/", {**data, "bid-split": "each"}, **HX
        )
    )
    assert "€120,128.76</span> in total to 3 market makers" in each and "each" in each

    response = html(client.post(PROVISION_FUND, data, **HX))
    assert "Funded 3 market makers with €40,042.92 in total (€13,347.64 each)." in response
    assert 'data-status="ready"' in response
    assert [
        Balance.objects.get(holder=maker.holder, asset="EUR").available
        for maker in (lp1, lp2, lp3)
    ] == [D("43347.64"), D("43347.64"), D("13347.66")]
    assert_all_invariants()


def test_fund_existing_refuses_a_total_too_small_next_to_the_amount(client):
    lps = [factories.market_maker(LP, EUR="30000") for _ in range(3)]
    factories.market_maker(AH, CEA=10000)
    data = {
        **REQUEST,
        "side": "BID",
        "bid-market_makers": [lp.pk for lp in lps],
        "bid-amount": "0.02",
    }
    entries = LedgerEntry.objects.count()
    body = html(client.post(PROVISION_FUND, data, **HX))
    assert 'data-testid="error-amount"' in body and "cannot give each of 3" in body
    assert LedgerEntry.objects.count() == entries


# ============================================================================ ladder

CUSTOM = "0.1:60, 0.3:40"


def test_the_ladder_field_shows_the_default_and_the_format(client):
    page = client.get(NEW)
    field = inputs(page)["ladder"][0]
    assert field["value"] == "0.2:50, 0.4:30, 0.5:20" and field["inputmode"] == "text"
    body = html(page)
    assert "Ladder" in body and "distance:share pairs" in body
    assert "Blank is the default ladder." in body


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ("0.2:50, 0.4:30", "The shares add up to 80 %; they must add up to 100 %."),
        ("0.4:50, 0.2:50", "Level 2: distance 0.2 % must be greater than level 1&#x27;s 0.4 %"),
        (", ".join(f"{n / 10}:{10 if n < 10 else 0}" for n in range(1, 12)), "At most 10 levels"),
        ("0.2-50", "Cannot read"),
    ],
    ids=["shares", "distances", "levels", "notation"],
)
def test_a_bad_ladder_is_refused_next_to_its_field_and_nothing_is_executed(
    client, ladder, message
):
    funded_market()
    before = (TicketLog.objects.count(), LedgerEntry.objects.count())
    for extra in ({}, HX):
        response = client.post(PREVIEW, {**REQUEST, "ladder": ladder}, **extra)
        body = html(response)
        error = re.search(r'<p id="id_ladder_error"[^>]*data-testid="error-ladder">([^<]*)<', body)
        assert error and message in error.group(1), body[:300]
        assert 'id="id_ladder"' in body and 'aria-describedby="id_ladder_error"' in body
        assert value(response, "ladder") == ladder  # kept as typed, to fix
        assert 'data-testid="execute-form"' not in body
    # A confirm carrying a bad ladder (edited by hand) is refused the same way.
    preview = client.post(PREVIEW, REQUEST)
    response = client.post(EXECUTE, execute_data(preview, ladder=ladder))
    assert message in html(response) and 'data-testid="error-ladder"' in html(response)
    assert (TicketLog.objects.count(), LedgerEntry.objects.count()) == before
    assert not LiquidityOperation.objects.exists() and not Order.objects.exists()


def test_a_custom_ladder_is_previewed_then_placed_at_its_distances(client):
    funded_market()
    preview = client.post(PREVIEW, {**REQUEST, "ladder": CUSTOM})
    body = html(preview)
    assert 'data-status="ready"' in body and "4 orders from 2 market makers" in body
    # Reference €14.00: bids 0.1 / 0.3 % below (down to the tick), asks above (up).
    for price in ("€13.98", "€13.95", "€14.02", "€14.05"):
        assert price in body
    assert re.findall(r'data-testid="level-distance">([^<]*)<', body) == [
        "−0.1%", "−0.3%", "+0.1%", "+0.3%"
    ]  # fmt: skip
    assert re.findall(r'data-testid="level-share">([^<]*)<', body) == ["60%", "40%"] * 2
    assert "0.1:60, 0.3:40" in re.search(r'data-testid="plan-ladder">(.*?)</p>', body).group(1)
    # The confirm form carries the ladder previewed, so the plan placed is that plan.
    execute_form = body[body.index('data-testid="execute-form"') :]
    assert value(execute_form, "ladder") == CUSTOM

    response = client.post(EXECUTE, execute_data(preview, ladder=CUSTOM))
    op = LiquidityOperation.objects.get()
    assert response.status_code == 302
    assert op.ladder == [
        {"distance_pct": "0.1", "share_pct": "60"},
        {"distance_pct": "0.3", "share_pct": "40"},
    ]
    assert op.ticket.request_payload["ladder"] == CUSTOM
    prices = {
        side: sorted({str(o.price) for o in op.orders.filter(side=side)})
        for side in ("BUY", "SELL")
    }
    assert prices == {"BUY": ["13.95", "13.98"], "SELL": ["14.02", "14.05"]}
    bids = op.orders.filter(side="BUY")
    at_best = sum(o.price * o.quantity for o in bids.filter(price=D("13.98")))
    assert D("60000") - D("13.98") < at_best <= D("60000")  # 60 % of the €100,000 BID
    assert_all_invariants()

    detail = html(client.get(response["Location"]))
    ladder = detail[detail.index('data-testid="ladder"') :]
    ladder = ladder[: ladder.index("</section>")]
    assert "custom" in ladder and 'data-testid="ladder-default"' not in ladder
    cells = re.findall(r'<td class="px-(?:3|5) py-2 text-right[^"]*">([^<]*)</td>', ladder)
    assert cells == ["±0.1%", "60%", "±0.3%", "40%"]
    listed = html(client.get(OPERATIONS))
    assert 'title="Ladder 0.1:60, 0.3:40">2-level ladder<' in listed


def test_a_ladder_changed_after_the_preview_is_not_placed(client):
    """The fingerprint covers the ladder: a confirm whose ladder differs from the one
    previewed shows the plan for the ladder it carries, and places nothing."""
    funded_market()
    preview = client.post(PREVIEW, {**REQUEST, "ladder": CUSTOM})
    response = client.post(EXECUTE, execute_data(preview, ladder="0.1:50, 0.3:50"))
    body = html(response)
    assert 'data-level="warning"' in body and "changed since the preview" in body
    assert re.findall(r'data-testid="level-share">([^<]*)<', body) == ["50%", "50%"] * 2
    assert not LiquidityOperation.objects.exists() and not Order.objects.exists()


def test_a_blank_ladder_is_the_default_and_says_so(client, staff):
    funded_market()
    preview = client.post(PREVIEW, {**REQUEST, "ladder": ""}, **HX)
    body = html(preview)
    assert re.findall(r'data-testid="level-distance">([^<]*)<', body)[:3] == [
        "−0.2%", "−0.4%", "−0.5%"
    ]  # fmt: skip
    assert "default</span>" in re.search(r'data-testid="plan-ladder">(.*?)</p>', body).group(1)
    client.post(EXECUTE, execute_data(preview, ladder=""))
    op = LiquidityOperation.objects.get()
    assert op.ladder == [
        {"distance_pct": "0.2", "share_pct": "50"},
        {"distance_pct": "0.4", "share_pct": "30"},
        {"distance_pct": "0.5", "share_pct": "20"},
    ]
    detail = html(client.get(f"{OPERATIONS}{op.pk}/"))
    assert 'data-testid="ladder-default"' in detail
    assert detail.count('data-testid="ladder-level"') == 3
    assert ">default ladder<" in html(client.get(OPERATIONS))


def test_an_operation_recorded_before_ladders_shows_the_default(client, staff):
    funded_market()
    op = operation(staff)
    LiquidityOperation.objects.filter(pk=op.pk).update(ladder=[])
    detail = html(client.get(f"{OPERATIONS}{op.pk}/"))
    assert 'data-testid="ladder-default"' in detail
    LiquidityOperation.objects.filter(pk=op.pk).update(ladder={"broken": True})
    detail = client.get(f"{OPERATIONS}{op.pk}/")
    assert detail.status_code == 200 and "The recorded ladder cannot be read." in html(detail)


def test_a_custom_ladder_costs_no_extra_query(client):
    makers(5, LP, EUR="100000")
    makers(5, AH, CEA=10000)
    client.post(PREVIEW, REQUEST, **HX)  # warm up
    default = count_queries(client, "post", PREVIEW, REQUEST, **HX)
    ten = ", ".join(f"{n / 10}:10" for n in range(1, 11))
    assert count_queries(client, "post", PREVIEW, {**REQUEST, "ladder": ten}, **HX) == default


def test_provisioning_keeps_the_ladder_previewed(client):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=100)
    preview = html(client.post(PREVIEW, {**REQUEST, "ladder": CUSTOM}, **HX))
    create_form = preview[preview.index('data-testid="provision-create-ask"') :]
    assert value(create_form, "ladder") == CUSTOM
    data = {**REQUEST, "ladder": CUSTOM, "side": "ASK", "ask-count": "1",
            "ask-total_amount": "5000", "ask-name_prefix": "AH"}  # fmt: skip
    body = html(client.post(PROVISION_CREATE, data, **HX))
    assert 'data-status="ready"' in body
    assert re.findall(r'data-testid="level-share">([^<]*)<', body) == ["60%", "40%"] * 2
    assert value(body[body.index('data-testid="execute-form"') :], "ladder") == CUSTOM
