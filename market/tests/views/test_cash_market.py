"""The cash market page and its HTMX partials through Django's test client: access, the
book poll's ETag / 304, HTMX vs plain requests, order entry (preview, MAX, review, place,
bad input), cancel, CSRF, and query counts that do not grow with the book."""

import random
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from market.models import Balance, Market, MarketMakerClient, Order, Trade
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import order_data, place

pytestmark = pytest.mark.django_db

D = Decimal
HTMX = {"HX-Request": "true"}
DECIMAL_FORM = "Use a point for decimals and no thousands separators, e.g. 13.50."
WHOLE_FORM = "Enter a whole number in digits, without separators, e.g. 150."
PAGE = "/market/CEA/"
BOOK = "/market/CEA/book/"
PREVIEW = "/market/CEA/orders/preview/"
PLACE = "/market/CEA/orders/new/"
MY_ORDERS = "/market/CEA/orders/"
BALANCES = "/market/CEA/balances/"
CHART = "/market/CEA/chart/"


def cancel_url(order) -> str:
    return f"/market/CEA/orders/{order.pk}/cancel/"


def html(response) -> str:
    return response.content.decode()


def text(response) -> str:
    """The response's HTML with runs of whitespace collapsed."""
    return re.sub(r"\s+", " ", html(response))


# --- Access ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/market/"),
        ("get", PAGE),
        ("get", "/market/EUA/"),
        ("get", BOOK),
        ("get", MY_ORDERS),
        ("get", BALANCES),
        ("post", PREVIEW),
        ("post", PLACE),
        ("post", "/market/CEA/orders/1/cancel/"),
    ],
)
def test_anonymous_users_are_sent_to_login(client, cea, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    # An HTMX request is redirected as a whole page, never swapped into a partial.
    response = getattr(client, method)(url, headers=HTMX)
    assert response.status_code == 200 and response["HX-Redirect"].startswith("/accounts/login/")
    assert not Order.objects.exists()


def test_page_of_each_market_with_selector_stats_and_sections(client_alice, book, eua):
    response = client_alice.get(PAGE)
    assert response.status_code == 200
    page = html(response)
    for section in (
        "market-stats",
        "order-entry",
        "order-preview",
        "order-book",
        "depth-chart",
        "recent-trades",
        "my-orders",
        "balances",
        "toasts",
    ):
        assert f'id="{section}"' in page, section
    assert 'href="/market/EUA/"' in page and 'aria-current="page"' in page
    assert "€13.90" in page and "€14.10" in page  # best bid, best ask
    assert page.count('data-testid="bid-level"') == 3
    assert page.count('data-testid="ask-level"') == 3
    assert "/static/js/cash_market.js" in page
    assert "<svg" in page and 'data-testid="depth-bids"' in page

    eua_page = html(client_alice.get("/market/EUA/"))
    assert "EUA / EUR" in eua_page and 'data-testid="order-book-empty"' in eua_page
    assert client_alice.get("/market/").url == PAGE
    assert client_alice.get("/market/cea/").url == PAGE
    assert client_alice.get("/market/XYZ/").status_code == 404


def test_book_levels_link_to_the_page_with_their_price_for_no_js(client_alice, book):
    page = html(client_alice.get(PAGE))
    assert 'href="/market/CEA/?price=14.10#order-entry"' in page
    # Following such a link prefills a limit order at that price.
    prefilled = html(client_alice.get(PAGE, {"price": "14.10"}))
    assert re.search(r'name="price" id="id_price" value="14.10"', prefilled)
    assert re.search(r'value="LIMIT" class="peer sr-only"\s+checked', prefilled)


# --- The book poll: ETag and 304 -----------------------------------------------------------


def test_poll_answers_304_while_unchanged_and_200_once_an_order_changes_the_book(
    client_alice, alice, book
):
    first = client_alice.get(BOOK, headers=HTMX)
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag == f'"book-{Market.objects.get(code="CEA").book_version}-50"'
    assert 'id="order-book"' in html(first)
    # The rest of the market data rides along out of band.
    for section in ("market-stats", "depth-chart", "recent-trades"):
        assert f'id="{section}" hx-swap-oob="true"' in html(first)
    assert first["HX-Trigger"] == "book-changed"
    assert "HX-Request" in first["Vary"]
    # The partial carries its own ETag for the next poll.
    assert 'hx-headers=\'{"If-None-Match": "\\u0022book' in html(first)

    with CaptureQueriesContext(connection) as queries:
        unchanged = client_alice.get(BOOK, headers={**HTMX, "If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["ETag"] == etag
    # Only the version is read (besides the session and the user).
    market_queries = [q["sql"] for q in queries.captured_queries if "market_" in q["sql"]]
    assert len(market_queries) == 1 and "book_version" in market_queries[0]
    assert len(queries.captured_queries) == 3

    response = client_alice.post(PLACE, order_data(price="13.95", quantity="3"), headers=HTMX)
    assert response["HX-Trigger"] == "market-changed"
    changed = client_alice.get(BOOK, headers={**HTMX, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert 'data-book-price="13.95"' in html(changed)
    again = client_alice.get(BOOK, headers={**HTMX, "If-None-Match": changed["ETag"]})
    assert again.status_code == 304


def test_etag_depends_on_depth_and_a_stale_or_foreign_tag_gets_the_book(client_alice, book):
    deep = client_alice.get(BOOK, {"depth": "2"}, headers=HTMX)
    assert deep["ETag"].endswith('-2"')
    assert html(deep).count('data-testid="ask-level"') == 2
    for tag in ('"book-0-50"', "*x", "garbage", ""):
        assert client_alice.get(BOOK, headers={**HTMX, "If-None-Match": tag}).status_code == 200


# --- HTMX partials vs full pages ---------------------------------------------------------------


@pytest.mark.parametrize("url", [BOOK, MY_ORDERS, BALANCES, f"{MY_ORDERS}?tab=history"])
def test_partials_answer_htmx_and_the_full_page_otherwise(client_alice, book, url):
    partial = html(client_alice.get(url, headers=HTMX))
    assert "<html" not in partial and "<nav" not in partial.split('id="my-orders"')[0][:200]
    full = client_alice.get(url)
    assert full.status_code == 200
    assert "<html" in html(full) and 'id="order-book"' in html(full)
    assert 'id="order-entry"' not in partial or url == BOOK


def test_my_orders_tabs_are_links_with_hx_get_and_history_shows_closed_orders(
    client_alice, alice, book
):
    resting = place(alice, "BUY", price="13.50", quantity=2).order
    filled = place(alice, "BUY", order_type="MARKET", quantity=3).order
    open_tab = html(client_alice.get(MY_ORDERS, headers=HTMX))
    assert f'data-order-id="{resting.pk}"' in open_tab
    assert f'data-order-id="{filled.pk}"' not in open_tab
    assert 'href="/market/CEA/?tab=history#my-orders"' in open_tab
    assert 'hx-get="/market/CEA/orders/?tab=history"' in open_tab
    history = html(client_alice.get(MY_ORDERS, {"tab": "history"}, headers=HTMX))
    assert f'data-order-id="{filled.pk}"' in history and "Filled" in history
    assert f'data-order-id="{resting.pk}"' not in history
    # Without JavaScript the tab link opens the page on that tab.
    page = html(client_alice.get(PAGE, {"tab": "history"}))
    assert f'data-order-id="{filled.pk}"' in page and 'data-tab="history"' in page


def test_balances_partial_shows_available_and_locked(client_alice, alice, book):
    place(alice, "SELL", price="15.00", quantity=20)
    response = html(client_alice.get(BALANCES, headers=HTMX))
    assert re.search(r'data-testid="balance-CEA-available">\s*30<', response)
    assert re.search(r'data-testid="balance-CEA-locked">\s*20<', response)
    assert re.search(r'data-testid="balance-EUR-available">\s*€1,000.00<', response)


# --- Preview, MAX and review -------------------------------------------------------------------


def test_preview_estimates_a_market_buy_walking_the_book(client_alice, alice, book):
    response = client_alice.post(
        PREVIEW, order_data(order_type="MARKET", quantity="15"), headers=HTMX
    )
    partial = html(response)
    assert partial.lstrip().startswith('<div id="order-preview"')
    # 10 at 14.10 and 5 at 14.20 = 212.00, fee 0.5 % = 1.06.
    assert re.search(r'preview-quantity">\s*15 CEA', partial)
    assert "€14.1333" in partial
    assert "€1.06" in partial and "€213.06" in partial
    assert "€786.94" in partial  # balance after
    assert not Order.objects.filter(owner=alice).exists()


def test_preview_warns_of_partial_fills_and_missing_funds(client_alice, book):
    partial = html(
        client_alice.post(PREVIEW, order_data(order_type="MARKET", quantity="40"), headers=HTMX)
    )
    assert "Partial fill: only 30 CEA can trade now; the other 10 will be cancelled." in partial
    partial = html(client_alice.post(PREVIEW, order_data(quantity="100"), headers=HTMX))
    assert "Insufficient EUR: €1,407.00 needed, €1,000.00 available." in partial
    partial = html(
        client_alice.post(PREVIEW, order_data(side="SELL", quantity="60"), headers=HTMX)
    )
    assert "Insufficient CEA: 60 CEA needed, 50 CEA available." in partial


def test_preview_of_unfinished_input_says_what_is_missing_without_errors(client_alice, book):
    partial = html(client_alice.post(PREVIEW, order_data(quantity=""), headers=HTMX))
    assert "Enter a quantity" in partial
    assert "data-error-for" not in partial
    partial = html(client_alice.post(PREVIEW, order_data(quantity="1.5"), headers=HTMX))
    assert "Quantity: Certificates are whole units" in partial


@pytest.mark.parametrize(
    "fields, field, expected",
    [
        ({"side": "SELL", "price": "15.00"}, "quantity", "50"),
        ({"side": "BUY", "price": "14.00"}, "quantity", "71"),  # 71 × 14 + 0.5 % ≤ 1,000
        ({"side": "BUY", "order_type": "MARKET", "amount_mode": "eur"}, "eur_budget", "1000.00"),
        ({"side": "BUY", "order_type": "MARKET"}, "quantity", "30"),  # the whole ask side
        ({"side": "SELL", "order_type": "MARKET"}, "quantity", "50"),
    ],
)
def test_max_fills_the_most_the_trader_can_use(client_alice, book, fields, field, expected):
    response = client_alice.post(PREVIEW, order_data(fill_max="1", **fields), headers=HTMX)
    partial = html(response)
    assert partial.lstrip().startswith('<section id="order-entry"')
    assert re.search(rf'name="{field}" id="id_{field}" value="{expected}"', partial)
    assert "Insufficient" not in partial


def test_max_without_a_limit_price_leaves_the_amount_alone(client_alice, book):
    partial = html(
        client_alice.post(PREVIEW, order_data(price="", quantity="", fill_max="1"), headers=HTMX)
    )
    assert 'name="quantity" id="id_quantity" value=""' in partial


def test_max_without_javascript_renders_the_page_with_the_amount(client_alice, book):
    response = client_alice.post(PREVIEW, order_data(side="SELL", price="15.00", fill_max="1"))
    assert response.status_code == 200 and "<html" in html(response)
    assert 'name="quantity" id="id_quantity" value="50"' in html(response)


def test_review_shows_a_confirmation_that_places_nothing(client_alice, alice, book):
    partial = text(client_alice.post(PREVIEW, order_data(quantity="5", review="1"), headers=HTMX))
    assert partial.lstrip().startswith('<section id="order-entry"')
    assert "data-error-for" not in partial
    assert 'data-testid="order-confirm"' in partial and 'data-testid="confirm-order"' in partial
    assert "Buy 5 CEA" in partial and "at limit €14.00" in partial
    assert not Order.objects.exists() or not Order.objects.filter(owner=alice).exists()
    # Without JavaScript the review is a page with the same confirmation.
    page = html(client_alice.post(PREVIEW, order_data(quantity="5", review="1")))
    assert 'data-testid="order-confirm"' in page and "<html" in page


def test_review_of_bad_input_shows_the_form_with_inline_errors(client_alice, book):
    response = client_alice.post(PREVIEW, order_data(quantity="-3", review="1"), headers=HTMX)
    assert html(response).lstrip().startswith('<section id="order-entry"')
    assert 'data-error-for="quantity"' in html(response)
    assert 'data-testid="order-confirm"' not in html(response)


# --- Placing ------------------------------------------------------------------------------------


def test_htmx_place_answers_a_fresh_form_a_toast_and_the_market_changed_event(
    client_alice, alice, book
):
    response = client_alice.post(
        PLACE, order_data(price="13.95", quantity="4", client_order_id="k-1"), headers=HTMX
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "market-changed"
    partial = html(response)
    assert partial.lstrip().startswith('<section id="order-entry"')
    assert 'id="toasts" hx-swap-oob="true"' in partial
    order = Order.objects.get(owner=alice)
    assert f"Order #{order.pk} rests in the book." in partial
    # The next order gets a new idempotency key; side, type and price are kept.
    key = re.search(r'name="client_order_id" value="([0-9a-f]{32})"', partial).group(1)
    assert key != "k-1"
    assert 'name="quantity" id="id_quantity" value=""' in partial
    assert 'name="price" id="id_price" value="13.95"' in partial
    assert order.price == D("13.95") and order.quantity == 4
    assert Balance.objects.get(holder=alice, asset="EUR").locked == D("56.08")


def test_plain_post_places_and_redirects_back_with_a_message(client_alice, alice, book):
    response = client_alice.post(
        PLACE, order_data(order_type="MARKET", quantity="12", price=""), follow=True
    )
    assert response.redirect_chain == [(PAGE, 302)]
    order = Order.objects.get(owner=alice)
    assert order.status == Order.Status.FILLED and order.filled_quantity == 12
    # The same average the estimate shows: 10 at 14.10 and 2 at 14.20.
    assert f"Order #{order.pk} filled: 12 CEA at avg €14.1167." in html(response)
    assert Trade.objects.filter(buy_order=order).count() == 2


def test_market_buy_by_eur_amount(client_alice, alice, book):
    client_alice.post(
        PLACE,
        order_data(order_type="MARKET", amount_mode="eur", eur_budget="100", quantity="999"),
        headers=HTMX,
    )
    order = Order.objects.get(owner=alice)
    # The quantity input is ignored for a buy by amount: 7 × 14.10 + fee ≤ 100.
    assert order.eur_budget == D("100.00") and order.filled_quantity == 7


def test_a_double_submit_places_one_order(client_alice, alice, book):
    data = order_data(price="13.00", quantity="1", client_order_id="same-key")
    client_alice.post(PLACE, data, headers=HTMX)
    response = client_alice.post(PLACE, data, headers=HTMX)
    assert Order.objects.filter(owner=alice).count() == 1
    assert "already placed" in html(response)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_a_key_reused_for_a_different_order_is_refused_on_the_form_with_a_new_key(
    client_alice, alice, book, htmx
):
    """The first submit placed an order but its answer was lost; the trader changed the
    quantity and submitted the same form again."""
    headers = HTMX if htmx else {}
    client_alice.post(
        PLACE, order_data(price="13.00", quantity="1", client_order_id="k-1"), headers=headers
    )
    first = Order.objects.get(owner=alice)
    locked = Balance.objects.get(holder=alice, asset="EUR").locked
    changed = order_data(price="13.00", quantity="2", client_order_id="k-1")
    response = client_alice.post(PLACE, changed, headers=headers)
    assert response.status_code == 200
    body = html(response)
    assert 'data-testid="form-errors"' in body
    assert (
        f"Order #{first.pk} was already placed with this idempotency key, and it is a "
        "different order; nothing was changed."
    ) in body
    assert "Check My orders, then review and confirm again to place it." in body
    if htmx:  # the rest of the page refreshes: it may never have shown the first order
        assert response["HX-Trigger"] == "market-changed"
    assert list(Order.objects.filter(owner=alice)) == [first]
    assert Balance.objects.get(holder=alice, asset="EUR").locked == locked
    # The trader's inputs are kept under a new key: submitting again places the order.
    key = re.search(r'name="client_order_id" value="([0-9a-f]{32})"', body).group(1)
    assert 'name="quantity" id="id_quantity" value="2"' in body
    client_alice.post(PLACE, {**changed, "client_order_id": key}, headers=headers)
    assert Order.objects.filter(owner=alice).exclude(pk=first.pk).get().quantity == 2


BAD_INPUT = [
    ({"quantity": "-5"}, "quantity", "Must be greater than zero."),
    ({"quantity": "0"}, "quantity", "Must be greater than zero."),
    ({"quantity": "NaN"}, "quantity", WHOLE_FORM),
    ({"quantity": "Infinity"}, "quantity", WHOLE_FORM),
    ({"quantity": "2.5"}, "quantity", "Certificates are whole units"),
    ({"quantity": "abc"}, "quantity", WHOLE_FORM),
    ({"quantity": ""}, "quantity", "This field is required."),
    ({"quantity": "1e12"}, "quantity", WHOLE_FORM),
    ({"quantity": "1000000000000"}, "quantity", "Must be at most"),
    ({"quantity": "1,5"}, "quantity", WHOLE_FORM),
    ({"quantity": "１２"}, "quantity", WHOLE_FORM),
    ({"quantity": "1", "price": "-14"}, "price", "Must be greater than zero."),
    ({"quantity": "1", "price": "NaN"}, "price", DECIMAL_FORM),
    ({"quantity": "1", "price": "13,50"}, "price", DECIMAL_FORM),
    ({"quantity": "1", "price": "١٣.٥٠"}, "price", DECIMAL_FORM),
    ({"quantity": "1", "price": "1.4e1"}, "price", DECIMAL_FORM),
    ({"quantity": "1", "price": "14.001"}, "price", "Use at most 2 decimal places."),
    ({"quantity": "1", "price": "14.03"}, "price", "multiple of the tick (0.05)"),
    ({"quantity": "1", "price": ""}, "price", "A limit order needs a price."),
    ({"quantity": "100"}, "quantity", "Insufficient EUR: €1,407.00 needed"),
    ({"side": "SELL", "quantity": "51", "price": "15.00"}, "quantity", "Insufficient CEA"),
    (
        {"order_type": "MARKET", "amount_mode": "eur", "eur_budget": "5000"},
        "eur_budget",
        "Insufficient EUR",
    ),
    (
        {"order_type": "MARKET", "amount_mode": "eur", "eur_budget": "5"},
        "eur_budget",
        "does not buy a single certificate",
    ),
    ({"quantity": "1" * 40}, "quantity", "at most 32 characters"),
    ({"side": "HOLD", "quantity": "1"}, "side", "Select a valid choice."),
    ({"order_type": "STOP", "quantity": "1"}, "order_type", "Select a valid choice."),
]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
@pytest.mark.parametrize("fields, field, message", BAD_INPUT)
def test_bad_input_shows_inline_errors_and_places_nothing(
    client_alice, alice, book, htmx, fields, field, message
):
    Market.objects.filter(code="CEA").update(tick_size=D("0.05"))
    before = Order.objects.count()
    response = client_alice.post(PLACE, order_data(**fields), headers=HTMX if htmx else {})
    assert response.status_code == 200
    body = html(response)
    error = re.search(rf'data-error-for="{field}">([^<]*)<', body)
    assert error, body[:3000]
    assert message in error.group(1).replace("&#x27;", "'")
    assert "HX-Trigger" not in response
    assert ("<html" in body) is not htmx
    assert Order.objects.count() == before
    assert Balance.objects.get(holder=alice, asset="EUR").locked == 0


def test_a_paused_market_is_an_error_above_the_form(client_alice, alice, book):
    Market.objects.filter(code="CEA").update(trading_enabled=False)
    response = client_alice.post(PLACE, order_data(quantity="1"), headers=HTMX)
    assert 'data-testid="form-errors"' in html(response)
    assert "Trading in CEA is paused." in html(response)
    assert not Order.objects.filter(owner=alice).exists()


# --- Cancelling and privacy ---------------------------------------------------------------------


def test_cancel_releases_the_reservation_and_triggers_a_refresh(client_alice, alice, book):
    order = place(alice, "BUY", price="13.00", quantity=10).order
    assert Balance.objects.get(holder=alice, asset="EUR").locked == D("130.65")
    response = client_alice.post(cancel_url(order), headers=HTMX)
    assert response["HX-Trigger"] == "market-changed"
    assert 'id="toasts" hx-swap-oob="true"' in html(response)
    assert f"Order #{order.pk} cancelled; €130.65 released." in html(response)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    eur = Balance.objects.get(holder=alice, asset="EUR")
    assert (eur.available, eur.locked) == (D("1000.00"), D("0"))


def test_cancel_without_javascript_redirects_to_my_orders(client_alice, alice, book):
    order = place(alice, "SELL", price="15.00", quantity=5).order
    response = client_alice.post(cancel_url(order), follow=True)
    assert response.redirect_chain == [(f"{PAGE}#my-orders", 302)]
    assert f"Order #{order.pk} cancelled; 5 CEA released." in html(response)
    # The cancel form works without JavaScript and asks for confirmation with it.
    other = place(alice, "SELL", price="15.50", quantity=1).order
    page = html(client_alice.get(PAGE))
    assert f'action="{cancel_url(other)}"' in page and f'hx-post="{cancel_url(other)}"' in page
    assert f'hx-confirm="Cancel order #{other.pk}: sell 1 CEA at €15.50?"' in page


def test_a_trader_never_sees_nor_cancels_another_traders_orders(client_alice, alice, book):
    bob = factories.trader("bob", EUR="1000")
    theirs = place(bob, "BUY", price="13.50", quantity=3).order
    closed = place(bob, "BUY", order_type="MARKET", quantity=1).order
    mine = place(alice, "BUY", price="13.40", quantity=1).order
    for url in (PAGE, MY_ORDERS, f"{MY_ORDERS}?tab=history", f"{PAGE}?tab=history"):
        body = html(client_alice.get(url, headers=HTMX if url.startswith(MY_ORDERS) else {}))
        assert f'data-order-id="{theirs.pk}"' not in body
        assert f'data-order-id="{closed.pk}"' not in body
        assert cancel_url(theirs) not in body
    assert f'data-order-id="{mine.pk}"' in html(client_alice.get(MY_ORDERS, headers=HTMX))

    for headers in (HTMX, {}):
        response = client_alice.post(cancel_url(theirs), headers=headers, follow=not headers)
        assert f"Order #{theirs.pk} is not one of your orders." in html(response)
        assert "HX-Trigger" not in response
    theirs.refresh_from_db()
    assert theirs.status == Order.Status.OPEN and theirs.reserved > 0


def test_cancelling_a_closed_order_is_refused(client_alice, alice, book):
    order = place(alice, "BUY", order_type="MARKET", quantity=1).order
    response = client_alice.post(cancel_url(order), headers=HTMX)
    assert f"Order #{order.pk} is filled." in html(response)
    assert "HX-Trigger" not in response


# --- CSRF ------------------------------------------------------------------------------------


def test_every_post_needs_a_csrf_token(alice, book):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice.user)
    order = place(alice, "BUY", price="13.00", quantity=1).order
    for url, data in (
        (PLACE, order_data(quantity="1")),
        (PREVIEW, order_data(quantity="1")),
        (PREVIEW, order_data(quantity="1", fill_max="1")),
        (cancel_url(order), {}),
    ):
        for headers in ({}, HTMX):
            assert csrf_client.post(url, data, headers=headers).status_code == 403, url
    assert Order.objects.filter(owner=alice).count() == 1

    # With the token the page hands out (form field or htmx header), they work.
    page = html(csrf_client.get(PAGE))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert f'"X-CSRFToken": "{token}"' in page
    response = csrf_client.post(
        PLACE, order_data(quantity="1"), headers={**HTMX, "X-CSRFToken": token}
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "market-changed"
    response = csrf_client.post(cancel_url(order), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED


def test_get_is_refused_where_only_post_makes_sense(client_alice, book):
    for url in (PLACE, PREVIEW, "/market/CEA/orders/1/cancel/"):
        assert client_alice.get(url).status_code == 405


# --- Cost does not grow with the book ----------------------------------------------------------


def bulk_history(market: Market, trader, maker, count: int, *, seed: int) -> None:
    """`count` resting maker orders over 100 prices a side, `count` of the trader's own
    orders (open and closed) and `count` trades, straight into the tables."""
    rng = random.Random(seed)
    orders = []
    for index in range(count):
        buy = index % 2 == 0
        price = (D("10.00") if buy else D("12.00")) + D(rng.randrange(100)) / 100
        orders.append(
            Order(
                owner=maker,
                market=market,
                side="BUY" if buy else "SELL",
                order_type="LIMIT",
                price=price,
                quantity=rng.randint(1, 500),
                status=Order.Status.OPEN,
            )
        )
        orders.append(
            Order(
                owner=trader,
                market=market,
                side="BUY",
                order_type="LIMIT",
                price=D("9.00"),
                quantity=1,
                status=Order.Status.OPEN if index % 2 else Order.Status.CANCELLED,
            )
        )
    created = Order.objects.bulk_create(orders, batch_size=2000)
    buy_order = next(order for order in created if order.owner_id == trader.pk)
    sell_order = next(order for order in created if order.side == "SELL")
    Trade.objects.bulk_create(
        (
            Trade(
                market=market,
                buy_order=buy_order,
                sell_order=sell_order,
                buyer=trader,
                seller=maker,
                price=D("11.00"),
                quantity=2,
                value=D("22.00"),
                aggressor_side="BUY" if index % 2 else "SELL",
            )
            for index in range(count)
        ),
        batch_size=2000,
    )
    Market.objects.filter(pk=market.pk).update(book_version=market.book_version + seed)


def query_counts(client) -> dict[str, int]:
    from django.core.cache import cache, caches

    requests = {
        "page": lambda: client.get(PAGE),
        "page (history)": lambda: client.get(PAGE, {"tab": "history"}),
        "book": lambda: client.get(BOOK, headers=HTMX),
        "my orders": lambda: client.get(MY_ORDERS, headers=HTMX),
        "history": lambda: client.get(MY_ORDERS, {"tab": "history"}, headers=HTMX),
        "balances": lambda: client.get(BALANCES, headers=HTMX),
        "chart": lambda: client.get(CHART, {"interval": "1h"}, headers=HTMX),
        "book grouped": lambda: client.get(BOOK, {"group": "10", "depth": "20"}, headers=HTMX),
        "preview": lambda: client.post(
            PREVIEW, order_data(order_type="MARKET", quantity="5000"), headers=HTMX
        ),
        "preview limit": lambda: client.post(
            PREVIEW, order_data(price="12.50", quantity="2000"), headers=HTMX
        ),
        # MAX of a market buy walks the book with all the trader's EUR: a budget walk,
        # read in growing batches (one query per batch, never per order; see
        # test_orders.py): a budget that reaches a few orders reads one batch.
        "max": lambda: client.post(
            PREVIEW, order_data(order_type="MARKET", fill_max="1"), headers=HTMX
        ),
        "max limit": lambda: client.post(
            PREVIEW, order_data(fill_max="1", price="12.50"), headers=HTMX
        ),
    }
    counts = {}
    for name, request in requests.items():
        cache.clear()
        caches["book"].clear()
        with CaptureQueriesContext(connection) as miss:
            assert request().status_code == 200, name
        with CaptureQueriesContext(connection) as hit:
            request()
        counts[name] = (len(miss.captured_queries), len(hit.captured_queries))
    market = Market.objects.get(code="CEA")
    with CaptureQueriesContext(connection) as not_modified:
        etag = f'"book-{market.book_version}-50"'
        assert client.get(BOOK, headers={**HTMX, "If-None-Match": etag}).status_code == 304
    counts["304"] = len(not_modified.captured_queries)
    return counts


def test_page_and_partials_cost_the_same_for_10_and_10000_orders_and_trades(cea):
    trader = factories.trader("whale", EUR="2000", CEA=1000)
    maker = factories.market_maker(MarketMakerClient.Type.ASSET_HOLDER, CEA=10).holder
    client = Client()
    client.force_login(trader.user)

    bulk_history(cea, trader, maker, 10, seed=1)
    small = query_counts(client)
    assert small["304"] == 3  # session, user, book version
    # A miss: session, user, version, market, the markets (for the selector), the book
    # (3: the market row and both sides), 24 h stats (2), recent trades, and the trader's
    # own levels (3: the market row and both sides). A hit serves the body and the own
    # levels cached for the version: session, user, version (and none at all through the
    # live feed: test_live.py).
    assert small["book"] == small["book grouped"] == (14, 3)
    # + the trader, their orders and balances, and the candles (3).
    assert small["page"] == (19, 14)
    # Session, user, the newest trade id (the ETag), then on a miss the market, the
    # markets and the candles (3); a hit serves the HTML cached for the ETag.
    assert small["chart"] == (8, 3)

    bulk_history(cea, trader, maker, 9_990, seed=2)
    assert Order.objects.filter(owner=maker, status__in=Order.RESTING).count() == 10_000
    assert Trade.objects.count() == 10_000
    assert query_counts(client) == small


# --- The estimate agrees with what placing does --------------------------------------------


@pytest.mark.parametrize(
    "side, order_type, fields",
    [
        ("BUY", "MARKET", {"quantity": "25"}),
        ("BUY", "MARKET", {"eur_budget": "300"}),
        ("BUY", "MARKET", {"quantity": "45"}),  # more than the book holds
        ("BUY", "LIMIT", {"price": "14.20", "quantity": "25"}),  # crosses, rest rests
        ("SELL", "MARKET", {"quantity": "15"}),
        ("SELL", "LIMIT", {"price": "13.85", "quantity": "30"}),
        ("SELL", "LIMIT", {"price": "15.00", "quantity": "5"}),  # rests only
    ],
)
def test_the_estimate_matches_the_placement(book, side, order_type, fields):
    from market import selectors

    trader = factories.trader(EUR="5000", CEA=100)
    request = order_request_parse(market_code="CEA", side=side, order_type=order_type, **fields)
    estimate = selectors.order_estimate(holder=trader, request=request)
    placed = order_place(owner=trader, request=request).order
    assert estimate.fill_quantity == placed.filled_quantity
    assert estimate.fill_value == placed.filled_value
    assert estimate.rest_quantity == (placed.remaining_quantity if placed.is_resting else 0)
    eur = Balance.objects.get(holder=trader, asset="EUR")
    cea = Balance.objects.get(holder=trader, asset="CEA")
    assert estimate.eur_after == eur.available
    assert estimate.certificates_after == cea.available
    if order_type == "MARKET":
        assert estimate.fee == placed.fee_paid


def test_the_estimate_stops_at_the_traders_own_order(client_alice, alice, book):
    place(alice, "SELL", price="14.15", quantity=5)
    partial = text(
        client_alice.post(PREVIEW, order_data(order_type="MARKET", quantity="25"), headers=HTMX)
    )
    assert "only 10 CEA can trade now" in partial
    assert (
        "Your own sell order at €14.15 is next in line: the rest is cancelled rather than "
        "traded with yourself." in partial
    )


def test_the_order_form_shows_the_allowed_range_and_refuses_outside_it(client_alice, cea):
    Market.objects.filter(pk=cea.pk).update(
        price_band_pct=Decimal("10"), max_order_quantity=500, max_order_value=Decimal("5000")
    )
    page = html(client_alice.get(PAGE))
    limits = re.search(r'data-testid="order-limits">(.*?)</p>', page, re.S).group(1)
    assert "Allowed price" in limits and "€12.60 – €15.40" in limits
    assert "max 500 CEA" in limits and "max €5,000.00 per order" in limits
    # The estimate and the placement refuse the same price with the same message.
    message = "The price must lie within today&#x27;s price band €12.60 – €15.40"
    outside = order_data(price="16.00", quantity="1")
    estimate = html(client_alice.post(PREVIEW, outside, headers=HTMX))
    placed = html(client_alice.post(PLACE, outside, headers=HTMX))
    assert message in estimate and message in placed
    assert not Order.objects.exists()


# --- Price chart ------------------------------------------------------------------------------


def test_the_chart_answers_304_until_a_trade_prints_then_draws_its_candle(
    client_alice, alice, book
):
    page = html(client_alice.get(PAGE))
    assert 'id="price-chart"' in page and 'data-testid="chart-empty"' in page
    first = client_alice.get(CHART, headers=HTMX)
    assert first.status_code == 200 and first["ETag"].startswith('"chart-5m-0-')
    assert "<html" not in html(first)
    with CaptureQueriesContext(connection) as queries:
        unchanged = client_alice.get(CHART, headers={**HTMX, "If-None-Match": first["ETag"]})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert len(queries.captured_queries) == 3  # session, user, the newest trade id

    # Alice lifts the best ask: a trade, so a new ETag and a candle.
    place(alice, "BUY", order_type="MARKET", quantity=4)
    changed = client_alice.get(CHART, headers={**HTMX, "If-None-Match": first["ETag"]})
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    body = text(changed)
    assert body.count('data-testid="candle"') == 1 and "€14.10" in body
    assert 'role="img"' in body and "<desc" in body and "Candles as a table" in body
    assert (
        client_alice.get(CHART, headers={**HTMX, "If-None-Match": changed["ETag"]}).status_code
        == 304
    )

    hourly = client_alice.get(CHART, {"interval": "1h"}, headers=HTMX)
    assert hourly["ETag"].startswith(
        '"chart-1h-'
    ) and 'aria-current="true" data-testid="interval-1h"' in html(hourly)
    # Interval links work without JavaScript: the page draws the chart at ?interval=.
    assert 'href="/market/CEA/?interval=1d#price-chart"' in page
    no_js = html(client_alice.get(PAGE, {"interval": "1d"}))
    assert 'aria-current="true" data-testid="interval-1d"' in no_js
    assert client_alice.get(CHART, {"interval": "2m"}, headers=HTMX)["ETag"].startswith(
        '"chart-5m-'
    )
    assert client_alice.get("/market/XYZ/chart/", headers=HTMX).status_code == 404


# --- The book: own orders, grouping, depth, spread row ------------------------------------------


def test_each_trader_sees_only_their_own_orders_marked_and_the_shared_book_carries_none(
    client, alice, book
):
    bob = factories.trader("bob", EUR="1000", CEA=50)
    place(alice, "BUY", price="13.85", quantity=2)
    place(alice, "SELL", price="14.40", quantity=3)

    def marks(user):
        client.force_login(user)
        response = client.get(BOOK, headers=HTMX)
        assert response.status_code == 200
        body = html(response)
        (own,) = re.findall(r'<div id="book-own-marks".*?</div>', body, re.S)
        return body.replace(own, ""), own

    alice_book, alice_marks = marks(alice.user)
    assert 'data-own-bids="1" data-own-asks="1"' in alice_marks
    assert '[data-book-side="BUY"][data-book-price="13.85"]' in alice_marks
    assert '[data-book-side="SELL"][data-book-price="14.40"]' in alice_marks
    assert "buy 2 CEA at €13.85" in alice_marks
    bob_book, bob_marks = marks(bob.user)  # served the same cached book
    assert 'data-own-bids="0" data-own-asks="0"' in bob_marks and "13.85" not in bob_marks
    # The shared HTML is identical for both and names nobody's orders.
    assert alice_book == bob_book and "Your resting orders" not in bob_book
    # The full page marks them too (without JavaScript nothing else would).
    client.force_login(alice.user)
    assert '[data-book-price="13.85"]' in html(client.get(PAGE))
    client.force_login(bob.user)
    assert '[data-book-price="13.85"]' not in html(client.get(PAGE))

    # Bob's own order changes the book version: his next poll gets his mark.
    etag = client.get(BOOK, headers=HTMX)["ETag"]
    place(bob, "BUY", price="13.80", quantity=1)
    changed = client.get(BOOK, headers={**HTMX, "If-None-Match": etag})
    assert changed.status_code == 200
    assert '[data-book-side="BUY"][data-book-price="13.80"]' in html(changed)


def test_grouping_and_depth_selectors_reshape_the_book(client_alice, book):
    page = html(client_alice.get(PAGE))
    assert 'data-testid="book-spread-row"' in page
    assert re.search(r'data-testid="book-spread">€0.20</span> <span>\(1.43%\)', page)
    assert 'hx-get="/market/CEA/book/?depth=10&amp;group=1"' in page
    assert 'href="/market/CEA/?depth=50&amp;group=10#order-book"' in page
    assert ">€13.90<" in page.replace("</span>€", "€")  # prices with the € sign
    grouped = client_alice.get(BOOK, {"depth": "50", "group": "10"}, headers=HTMX)
    assert grouped["ETag"].endswith('-50-x10"')
    body = html(grouped)
    # Bids 13.90 / 13.85 / 13.80 group down to 13.80 (13.90 is its own step); asks up.
    assert re.findall(r'data-book-price="([\d.]+)" data-book-side="BUY"', body) == [
        "13.90",
        "13.80",
    ]
    assert re.findall(r'data-book-price="([\d.]+)" data-book-side="SELL"', body) == [
        "14.10",
        "14.20",
        "14.30",
    ]
    assert 'hx-get="/market/CEA/book/?group=10"' in body  # the poll keeps the grouping
    shallow = client_alice.get(BOOK, {"depth": "1", "group": "5"}, headers=HTMX)
    assert html(shallow).count('data-testid="bid-level"') == 1
    # An unknown grouping is the plain book.
    assert client_alice.get(BOOK, {"group": "7"}, headers=HTMX)["ETag"].endswith('-50"')


# --- Order types, amend, cancel all ---------------------------------------------------------

AMEND = "/market/CEA/orders/{}/amend/"
CANCEL_ALL = "/market/CEA/orders/cancel-all/"


def test_a_market_sell_behind_the_traders_own_bid_says_why_and_cannot_be_confirmed(
    client_alice, alice, book
):
    """The self-trade bug: the trader's own bid is first, others' bids rest below it. The
    estimate says what happens, its Confirm is disabled at €0.00 with the reason, and
    placing says the same."""
    place(alice, "BUY", price="13.95", quantity=2)
    data = order_data(side="SELL", order_type="MARKET", price=None, quantity="3")
    review = text(client_alice.post(PREVIEW, {**data, "review": "1"}, headers=HTMX))
    said = (
        "Your own buy order at €13.95 is first in line, and we do not trade anyone with "
        "themselves: nothing trades, and orders behind yours are not reached. Cancel your "
        "order, or place a limit order."
    )
    assert said in review and "There are no buy orders" not in review
    (confirm,) = re.findall(r'<button[^>]*data-testid="confirm-order"[^>]*>', review)
    assert re.search(r"\sdisabled(?=[\s>=])", confirm)
    assert 'data-testid="confirm-blocked"' in review
    placed = text(client_alice.post(PLACE, data, headers=HTMX))
    assert said in placed
    assert Order.objects.filter(owner=alice).count() == 1


def test_the_form_places_an_ioc_limit_and_shows_it_in_the_estimate(client_alice, alice, book):
    data = order_data(price="14.10", quantity="15", time_in_force="IOC")
    preview = text(client_alice.post(PREVIEW, data, headers=HTMX))
    assert "IOC: 10 fill now, the remaining 5 are cancelled." in preview
    client_alice.post(PLACE, data)
    order = Order.objects.get(owner=alice)
    assert (order.time_in_force, order.status, order.filled_quantity) == ("IOC", "CANCELLED", 10)


def test_fok_and_post_only_refusals_show_next_to_their_inputs(client_alice, alice, book):
    fok = text(
        client_alice.post(PREVIEW, order_data(price="14.10", quantity="15", time_in_force="FOK"),
                          headers=HTMX)
    )  # fmt: skip
    assert "Fill or kill: only 10 of 15 CEA can trade now at €14.10 or better" in fok
    post_only = text(
        client_alice.post(
            PLACE, order_data(price="14.10", quantity="1", post_only="on"), headers=HTMX
        )
    )
    assert 'data-error-for="price"' in post_only
    assert "Post-only: this order would trade at once (best ask €14.10)" in post_only
    # The checkbox is hidden for a market order and counts only for limits: it trades.
    client_alice.post(
        PLACE, order_data(order_type="MARKET", price=None, quantity="1", post_only="on")
    )
    market = Order.objects.get(owner=alice)
    assert (market.order_type, market.post_only, market.time_in_force) == ("MARKET", False, "IOC")


def test_amend_without_javascript_shrinks_in_place_then_replaces(client_alice, alice, book):
    order = place(alice, "BUY", price="13.00", quantity=10).order
    page = html(client_alice.get(AMEND.format(order.pk)))
    assert "<html" in page and 'value="13.00"' in page and 'value="10"' in page
    preview = text(
        client_alice.post(AMEND.format(order.pk), {"price": "13.00", "quantity": "4",
                                                  "preview": "1"})
    )  # fmt: skip
    assert "Keeps its place in the queue" in preview
    response = client_alice.post(AMEND.format(order.pk), {"price": "13.00", "quantity": "4"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.quantity, order.status) == (4, "OPEN")
    client_alice.post(AMEND.format(order.pk), {"price": "13.05", "quantity": "4"})
    order.refresh_from_db()
    new = Order.objects.filter(owner=alice).order_by("-pk").first()
    assert order.status == "CANCELLED" and order.status_reason == f"replaced by #{new.pk}"
    assert (new.price, new.quantity, new.status) == (D("13.05"), 4, "OPEN")


def test_amend_htmx_previews_and_refuses_with_the_reason(client_alice, alice, book):
    order = place(alice, "BUY", price="13.00", quantity=10).order
    panel = text(client_alice.get(AMEND.format(order.pk), headers=HTMX))
    assert panel.lstrip().startswith('<section id="amend-order"')
    typing = text(
        client_alice.post(AMEND.format(order.pk), {"price": "13.00", "quantity": "900",
                                                  "preview": "1"},
                          headers={**HTMX, "HX-Target": "amend-preview"})
    )  # fmt: skip
    assert typing.lstrip().startswith('<div id="amend-preview"')
    assert "Insufficient EUR" in typing and "Loses its place in the queue" in typing
    refused = text(
        client_alice.post(AMEND.format(order.pk), {"price": "13.00", "quantity": "900"},
                          headers=HTMX)
    )  # fmt: skip
    assert "Insufficient EUR" in refused
    order.refresh_from_db()
    assert (order.quantity, order.status) == (10, "OPEN")


def test_another_trader_cannot_amend_and_sees_it_is_not_theirs(client, alice, book):
    order = place(alice, "BUY", price="13.00", quantity=10).order
    bob = factories.trader("bob", EUR="1000")
    client.force_login(bob.user)
    response = client.post(AMEND.format(order.pk), {"price": "13.00", "quantity": "4"},
                           follow=True)  # fmt: skip
    assert f"Order #{order.pk} is not one of your orders." in text(response)
    order.refresh_from_db()
    assert order.quantity == 10


def test_cancel_all_cancels_only_the_traders_orders_in_this_market(client_alice, alice, book):
    place(alice, "BUY", price="13.00", quantity=10)
    place(alice, "SELL", price="15.00", quantity=5)
    place(alice, "BUY", market="EUA", price="80.00", quantity=1)
    page = html(client_alice.get(PAGE))
    assert 'data-testid="cancel-all"' in page and 'data-testid="amend-order-link"' in page
    response = client_alice.post(CANCEL_ALL, headers=HTMX)
    assert response["HX-Trigger"] == "market-changed"
    assert "2 orders cancelled in CEA; €130.65 and 5 CEA released." in text(response)
    assert set(
        Order.objects.filter(owner=alice, status__in=Order.RESTING).values_list(
            "market__code", flat=True
        )
    ) == {"EUA"}
    assert "You have no open orders in CEA." in text(client_alice.post(CANCEL_ALL, follow=True))


def test_the_book_poll_varies_by_session_as_it_carries_own_marks(client_alice, book):
    first = client_alice.get(BOOK, headers=HTMX)
    unchanged = client_alice.get(BOOK, headers={**HTMX, "If-None-Match": first["ETag"]})
    for response in (first, unchanged):
        assert "Cookie" in response["Vary"] and "HX-Request" in response["Vary"]
