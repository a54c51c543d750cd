"""`market.selectors_trader`: one trader's rows only, oldest first, in a fixed number of
queries whatever the number of orders and trades."""

import pytest

from market import selectors_trader as reads
from market.models import Order
from market.services.orders import order_place, order_request_parse
from market.tests import factories

pytestmark = pytest.mark.django_db


def place(holder, side, price, quantity):
    request = order_request_parse(
        market_code="CEA", side=side, order_type="LIMIT", price=price, quantity=quantity
    )
    return order_place(owner=holder, request=request).order


@pytest.mark.parametrize("rounds", [1, 12])
def test_each_read_runs_a_fixed_number_of_queries(rounds, django_assert_num_queries):
    alice = factories.trader(EUR="100000", CEA=100)
    bob = factories.trader(EUR="100000", CEA=100)
    for _ in range(rounds):
        place(bob, "SELL", "14.00", 1)
        place(alice, "BUY", "14.00", 1)
        place(alice, "BUY", "12.00", 1)
    ids = list(Order.objects.filter(owner=alice).values_list("pk", flat=True))

    with django_assert_num_queries(1):
        orders = reads.trader_orders(holder=alice)
        assert {order.market.code for order in orders} == {"CEA"}
    with django_assert_num_queries(1):
        fills = reads.trader_fills(holder=alice)
    with django_assert_num_queries(1):
        by_order = reads.order_fills(holder=alice, order_ids=ids)
    with django_assert_num_queries(2):
        times = reads.last_fill_times(order_ids=ids)
    with django_assert_num_queries(1):
        assert len(reads.trader_orders_by_id(holder=alice, order_ids=ids)) == len(ids)

    assert len(orders) == 2 * rounds and all(order.owner_id == alice.pk for order in orders)
    assert [order.pk for order in orders] == sorted(order.pk for order in orders)
    assert len(fills) == rounds and {fill.side for fill in fills} == {"BUY"}
    assert sum(len(f) for f in by_order.values()) == rounds
    assert set(times) == {fill.order_id for fill in fills}


def test_a_trader_reads_none_of_another_traders_rows():
    alice = factories.trader(EUR="1000", CEA=10)
    bob = factories.trader(EUR="1000", CEA=10)
    theirs = place(bob, "SELL", "14.00", 1)
    place(alice, "BUY", "14.00", 1)

    assert reads.trader_order(holder=alice, order_id=theirs.pk) is None
    assert reads.trader_orders_by_id(holder=alice, order_ids=[theirs.pk]) == []
    assert reads.order_fills(holder=alice, order_ids=[theirs.pk]) == {theirs.pk: []}
    (fill,) = reads.trader_fills(holder=alice)
    assert fill.order_id != theirs.pk and fill.taker
    (maker_fill,) = reads.trader_fills(holder=bob)
    assert (maker_fill.order_id, maker_fill.side, maker_fill.taker) == (theirs.pk, "SELL", False)
