"""Fill notices: each maker fill of a holder is claimed once, taker fills never, and of
two polls at once only one gets them."""

from decimal import Decimal

import pytest

from market.models import Holder, Trade
from market.services.fill_notices import MAX_NOTICES, fill_notices_claim
from market.services.orders import order_place, order_request_parse
from market.tests import factories

D = Decimal


def place(holder, side, *, market="CEA", order_type="LIMIT", **fields):
    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


@pytest.fixture
def alice(db):
    return factories.trader("alice", EUR="10000", CEA=100)


@pytest.fixture
def bob(db):
    return factories.trader("bob", EUR="10000", CEA=100)


def fresh(holder) -> Holder:
    return Holder.objects.get(pk=holder.pk)


def test_a_resting_order_filled_by_another_is_notified_once(alice, bob):
    bid = place(alice, "BUY", price="13.95", quantity=40).order
    assert not fill_notices_claim(holder=fresh(alice))
    place(bob, "SELL", order_type="MARKET", quantity=40)
    notices = fill_notices_claim(holder=fresh(alice))
    (fill,) = notices.fills
    assert (fill.order_id, fill.side, fill.role, fill.quantity, fill.price) == (
        bid.pk,
        "BUY",
        "MAKER",
        40,
        D("13.95"),
    )
    assert not notices.more
    assert fresh(alice).fills_notified_through == Trade.objects.get().pk
    assert not fill_notices_claim(holder=fresh(alice))  # the next poll: nothing again


def test_the_taker_is_never_notified_of_its_own_fill(alice, bob):
    place(alice, "BUY", price="13.95", quantity=5)
    place(bob, "SELL", order_type="MARKET", quantity=5)
    assert not fill_notices_claim(holder=fresh(bob))
    assert fresh(bob).fills_notified_through == 0  # nothing was claimed


def test_of_two_polls_reading_the_same_marker_only_one_gets_the_fill(alice, bob):
    place(alice, "SELL", price="14.05", quantity=3)
    place(bob, "BUY", order_type="MARKET", quantity=3)
    first_tab, second_tab = fresh(alice), fresh(alice)  # both loaded before either claims
    assert len(fill_notices_claim(holder=first_tab).fills) == 1
    assert not fill_notices_claim(holder=second_tab)


def test_many_fills_at_once_list_the_newest_and_say_there_are_more(alice, bob):
    for _ in range(MAX_NOTICES + 2):
        place(alice, "BUY", price="13.00", quantity=1)
    place(bob, "SELL", order_type="MARKET", quantity=MAX_NOTICES + 2)
    notices = fill_notices_claim(holder=fresh(alice))
    newest = list(Trade.objects.order_by("-id").values_list("id", flat=True))
    assert [fill.trade_id for fill in notices.fills] == newest[:MAX_NOTICES]
    assert notices.more
    assert fresh(alice).fills_notified_through == newest[0]
    assert not fill_notices_claim(holder=fresh(alice))  # the older ones are not toasted later


def test_claims_cost_one_query_when_nothing_is_new_and_two_otherwise(
    alice, bob, django_assert_num_queries
):
    place(alice, "BUY", price="13.00", quantity=60)
    holder = fresh(alice)
    with django_assert_num_queries(1):
        fill_notices_claim(holder=holder)
    for _ in range(60):
        place(bob, "SELL", order_type="MARKET", quantity=1)
    with django_assert_num_queries(2):
        assert fill_notices_claim(holder=holder).more
