"""An operation's state, derived from its orders: a market maker's deactivation that
cancelled some of them shows as "partly cancelled" (all of them: "cancelled"), with what
remains of each side."""

import pytest

from liquidity import selectors
from liquidity.selectors import OperationState, SideRemaining
from liquidity.services import liquidity_execute, liquidity_request_parse, liquidity_withdraw
from market.models import MarketMakerClient, Order
from market.services.market_makers import market_maker_deactivate
from market.tests import factories

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


def row(operation):
    (found,) = selectors.operation_rows([selectors.operation_detail(operation_id=operation.pk)])
    return found


def test_state_after_deactivations_and_what_remains_per_side(staff):
    provider = factories.market_maker(LP, EUR="200000")
    holder = factories.market_maker(AH, CEA=10000)
    request = liquidity_request_parse(
        market_code="CEA", bid_amount_eur="100000", ask_amount_eur="50000"
    )
    operation = liquidity_execute(request=request, user=staff)
    orders = Order.objects.filter(ticket_id=operation.ticket_id)
    bids, asks = orders.filter(side="BUY"), orders.filter(side="SELL")
    bid_count, ask_count = bids.count(), asks.count()
    ask_quantity = sum(order.quantity for order in asks)
    assert row(operation).state == OperationState.ACTIVE
    assert row(operation).deactivation_note == ""

    market_maker_deactivate(market_maker=provider, actor=staff, cancel_open_orders=True)
    partly = row(operation)
    assert partly.state == OperationState.PARTLY_CANCELLED == "partly cancelled"
    assert partly.deactivation_note == (
        f"{bid_count} of {bid_count + ask_count} orders cancelled by market-maker deactivation"
    )
    assert partly.sides == (
        SideRemaining("BID", bid_count, 0, bid_count, 0),
        SideRemaining("ASK", ask_count, ask_count, 0, ask_quantity),
    )

    market_maker_deactivate(market_maker=holder, actor=staff, cancel_open_orders=True)
    emptied = row(operation)
    assert emptied.state == OperationState.CANCELLED
    assert emptied.sides[1] == SideRemaining("ASK", ask_count, 0, ask_count, 0)


def test_a_withdrawal_is_not_a_deactivation(staff):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    request = liquidity_request_parse(market_code="CEA", bid_amount_eur="1000", ask_amount_eur="0")
    operation = liquidity_execute(request=request, user=staff)
    liquidity_withdraw(operation=operation, user=staff)
    withdrawn = row(operation)
    assert withdrawn.state == OperationState.WITHDRAWN
    assert withdrawn.deactivation_note == "" and withdrawn.operation.orders_deactivated == 0
    assert [side.side for side in withdrawn.sides] == ["BID"]  # no ASK was placed


def test_the_list_reads_states_in_one_query(staff, django_assert_num_queries):
    provider = factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    for _ in range(3):
        request = liquidity_request_parse(
            market_code="CEA", bid_amount_eur="1000", ask_amount_eur="1000"
        )
        liquidity_execute(request=request, user=staff)
    market_maker_deactivate(market_maker=provider, actor=staff, cancel_open_orders=True)
    with django_assert_num_queries(1):
        rows = selectors.operation_rows(list(selectors.operations_list()))
    assert {r.state for r in rows} == {OperationState.PARTLY_CANCELLED}
