"""The trader's desk on the cash market page, through Django's test client: a Confirm that
cannot succeed is disabled with its reason, the estimate survives a refused placement, a
sell reads as proceeds, the open confirmation re-quotes against the book, and the book,
My Orders and the status read the way a trader expects. (Browser behaviour — focus, tab
order, Escape, the live status — is in test_cash_market_desk_browser.py.)"""

import re
from decimal import Decimal

import pytest

from market.models import MarketMakerClient, Order
from market.services.orders import order_cancel
from market.tests import factories
from market.tests.helpers import order_data, place

pytestmark = pytest.mark.django_db

D = Decimal
HTMX = {"HX-Request": "true"}
PAGE = "/market/CEA/"
PREVIEW = "/market/CEA/orders/preview/"
PLACE = "/market/CEA/orders/new/"
MY_ORDERS = "/market/CEA/orders/"


def text(response) -> str:
    """The response's HTML with runs of whitespace collapsed."""
    return re.sub(r"\s+", " ", response.content.decode())


def confirm_button(body: str) -> str:
    match = re.search(r'<button[^>]*data-testid="confirm-order"[^>]*>', body)
    assert match, "no Confirm button"
    return match.group(0)


def is_disabled(button: str) -> bool:
    """Whether a button tag has the `disabled` attribute (not a `disabled:` class)."""
    return re.search(r"\sdisabled(?=[\s>=])", button) is not None


def hidden(body: str, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', body)
    assert match, f"no hidden {name}"
    return match.group(1)


# --- Confirm only what can succeed -------------------------------------------------------------


def test_confirm_is_disabled_with_the_reason_when_funds_are_short(client_alice, book):
    # 100 CEA at 14.00 need €1,407.00 with the fee; alice has €1,000.00.
    body = text(client_alice.post(PREVIEW, order_data(quantity="100", review="1"), headers=HTMX))
    button = confirm_button(body)
    assert is_disabled(button) and 'aria-describedby="confirm-blocked"' in button
    reason = re.search(r'id="confirm-blocked"[^>]*>([^<]*)<', body).group(1)
    assert "Insufficient EUR: €1,407.00 needed, €1,000.00 available." in reason
    # Without JavaScript the review page says the same.
    page = text(client_alice.post(PREVIEW, order_data(quantity="100", review="1")))
    assert is_disabled(confirm_button(page))


def test_confirm_is_disabled_when_a_market_order_finds_nothing_to_trade(client_alice, cea):
    body = text(
        client_alice.post(
            PREVIEW, order_data(order_type="MARKET", quantity="5", review="1"), headers=HTMX
        )
    )
    assert is_disabled(confirm_button(body))
    assert re.search(r'id="confirm-blocked"[^>]*>[^<]*\S', body)


def test_confirm_is_enabled_for_an_order_that_can_be_placed(client_alice, book):
    body = text(client_alice.post(PREVIEW, order_data(quantity="5", review="1"), headers=HTMX))
    assert not is_disabled(confirm_button(body))
    assert 'id="confirm-blocked"' not in body


# --- The estimate after a refused placement; a sell's total ------------------------------------


def test_a_refused_placement_keeps_the_estimate_of_the_filled_in_fields(client_alice, book):
    response = client_alice.post(PLACE, order_data(quantity="100"), headers=HTMX)
    body = text(response)
    assert 'data-error-for="quantity"' in body and "Insufficient EUR" in body
    assert "Enter a quantity" not in body
    assert re.search(r'data-testid="preview-total">\s*€1,407.00', body)
    assert not Order.objects.filter(owner__kind="TRADER").exists()
    # The page without JavaScript too.
    page = text(client_alice.post(PLACE, order_data(quantity="100")))
    assert re.search(r'data-testid="preview-total">\s*€1,407.00', page)


def test_a_sells_total_reads_as_proceeds_with_or_without_an_estimate(client_alice, book):
    for quantity in ("", "5"):
        body = text(
            client_alice.post(PREVIEW, order_data(side="SELL", quantity=quantity), headers=HTMX)
        )
        label = re.search(r'data-testid="preview-total-label">([^<]*)<', body).group(1)
        assert label.strip() == "Total proceeds", quantity
        assert "Total cost" not in body
    body = text(client_alice.post(PREVIEW, order_data(quantity=""), headers=HTMX))
    assert re.search(r'data-testid="preview-total-label">\s*Total cost', body)
    # The first page, with a sell chosen from a link.
    page = text(client_alice.get(PAGE, {"side": "SELL"}))
    assert re.search(r'data-testid="preview-total-label">\s*Total proceeds', page)


# --- The open confirmation follows the book (re-quote) ---------------------------------------


def review_market_buy(client, quantity="15") -> str:
    return text(
        client.post(
            PREVIEW, order_data(order_type="MARKET", quantity=quantity, review="1"), headers=HTMX
        )
    )


def requote(client, reviewed: str, **fields) -> str:
    data = order_data(order_type="MARKET", quantity="15", review="1", requote="1", **fields)
    data["reviewed_average"] = hidden(reviewed, "reviewed_average")
    data["reviewed_quantity"] = hidden(reviewed, "reviewed_quantity")
    return text(client.post(PREVIEW, data, headers=HTMX))


def test_the_confirmation_carries_what_was_reviewed_and_asks_to_be_re_quoted(client_alice, book):
    # 10 at 14.10 and 5 at 14.20.
    body = review_market_buy(client_alice)
    assert hidden(body, "reviewed_average") == "14.1333"
    assert hidden(body, "reviewed_quantity") == "15"
    # The estimate re-requests itself, as a re-quote, when the book or the market changes.
    preview = re.search(r'<div id="order-preview"[^>]*>', body).group(0)
    assert "book-changed from:body" in preview and "market-changed from:body" in preview
    assert '"requote": "1"' in preview


def test_a_market_order_whose_price_moved_asks_for_a_new_review(client_alice, book):
    reviewed = review_market_buy(client_alice)
    # Someone takes the 10 at 14.10: 15 now cost 10 at 14.20 and 5 at 14.30 (+0.71 %).
    taker = factories.trader(EUR="1000")
    place(taker, "BUY", order_type="MARKET", quantity=10)
    body = requote(client_alice, reviewed)
    assert "Price moved: was €14.1333, now €14.2333 — review again." in body
    assert 'data-testid="confirm-order"' not in body
    assert 'data-testid="review-again"' in body
    assert re.search(r'data-testid="preview-average">\s*€14.2333', body)
    # The answer is the estimate alone: the inputs the trader may be typing in stay put.
    assert body.lstrip().startswith('<div id="order-preview"')
    # Reviewing again confirms at the new price.
    again = review_market_buy(client_alice)
    assert hidden(again, "reviewed_average") == "14.2333"
    assert not is_disabled(confirm_button(again))


def test_a_small_move_re_quotes_without_asking_again(client_alice, book):
    reviewed = review_market_buy(client_alice)
    # 5 more at 14.10: 15 at 14.10 (−0.24 %, within the 0.5 % tolerance).
    maker = factories.market_maker(MarketMakerClient.Type.ASSET_HOLDER, CEA=100)
    place(maker.holder, "SELL", price="14.10", quantity=5)
    body = requote(client_alice, reviewed)
    assert re.search(r'data-testid="preview-average">\s*€14.1000', body)
    assert "Price moved" not in body
    assert not is_disabled(confirm_button(body))
    # The originally reviewed figures stay the reference for the next re-quote.
    assert hidden(body, "reviewed_average") == "14.1333"


def test_a_limit_order_re_quotes_but_its_limit_bounds_it(client_alice, book):
    data = order_data(price="14.30", quantity="15", review="1")
    reviewed = text(client_alice.post(PREVIEW, data, headers=HTMX))
    place(factories.trader(EUR="1000"), "BUY", order_type="MARKET", quantity=10)
    data.update(
        requote="1",
        reviewed_average=hidden(reviewed, "reviewed_average"),
        reviewed_quantity=hidden(reviewed, "reviewed_quantity"),
    )
    body = text(client_alice.post(PREVIEW, data, headers=HTMX))
    assert re.search(r'data-testid="preview-average">\s*€14.2333', body)
    assert "Price moved" not in body
    assert not is_disabled(confirm_button(body))


def test_a_re_quote_whose_order_can_no_longer_succeed_disables_confirm(client_alice, book):
    reviewed = review_market_buy(client_alice)
    place(factories.trader(EUR="10000"), "BUY", order_type="MARKET", quantity=30)
    body = requote(client_alice, reviewed)
    assert 'id="confirm-blocked"' in body
    assert 'data-testid="confirm-order"' not in body or is_disabled(confirm_button(body))


def test_a_re_quote_with_tampered_reviewed_figures_is_a_fresh_review(client_alice, book):
    data = order_data(order_type="MARKET", quantity="15", review="1", requote="1")
    for bad in ("abc", "1e9", "-1", "14.13333"):
        body = text(
            client_alice.post(
                PREVIEW, {**data, "reviewed_average": bad, "reviewed_quantity": "15"}, headers=HTMX
            )
        )
        assert "Price moved" not in body, bad
        assert hidden(body, "reviewed_average") == "14.1333"


# --- Book, My Orders, status ---------------------------------------------------------------------


def test_book_and_recent_trade_prices_carry_the_euro_sign(client_alice, book):
    place(factories.trader(EUR="1000"), "BUY", order_type="MARKET", quantity=1)
    body = text(client_alice.get(PAGE))
    # The price, after the (hidden unless it is yours) mark of a bid level.
    own_mark = r'(?:<span class="book-own[^"]*"[^>]*>●</span>)?'
    assert re.search(rf'class="book-price[^"]*">{own_mark}€13.90<', body)
    assert re.search(r'class="book-price[^"]*">€14.10<', body)
    trade_price = re.search(r'data-testid="trade-price"[^>]*>([^<]*)<', body).group(1)
    assert trade_price == "€14.10"


def test_average_prices_have_four_decimals_everywhere(client_alice, alice, book):
    body = text(client_alice.post(PREVIEW, order_data(quantity="5", price="14.10"), headers=HTMX))
    assert re.search(r'data-testid="preview-average">\s*€14.1000<', body)
    placed = client_alice.post(
        PLACE, order_data(order_type="MARKET", quantity="5", price=""), headers=HTMX
    )
    assert "5 CEA at avg €14.1000." in text(placed)
    history = text(client_alice.get(MY_ORDERS, {"tab": "history"}, headers=HTMX))
    assert re.search(r'data-testid="my-order-average"[^>]*>€14.1000<', history)


def test_a_cancelled_order_says_cancelled_once(client_alice, alice, book):
    order = place(alice, "BUY", price="13.00", quantity=2).order
    order_cancel(order_id=order.pk, user=alice.user)
    history = text(client_alice.get(MY_ORDERS, {"tab": "history"}, headers=HTMX))
    row = re.search(rf'data-order-id="{order.pk}".*?</tr>', history).group(0)
    assert len(re.findall("cancelled", row, flags=re.IGNORECASE)) == 1, row
    assert "by owner" in row


def test_the_live_status_is_hidden_until_javascript_shows_it(client_alice, book):
    body = text(client_alice.get(PAGE))
    status = re.search(r"<span[^>]*data-live-status[^>]*>", body).group(0)
    assert " hidden" in status
    assert "animate-ping" not in body  # no always-green pulsing dot
