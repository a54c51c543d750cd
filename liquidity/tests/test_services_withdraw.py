"""`liquidity_withdraw`: cancels what still rests, once; an operation with nothing left
(withdrawn, filled, emptied by market-maker deactivation) is refused and nothing is
written, not even a ticket (docs/rules.md §7)."""

from decimal import Decimal

import pytest

from liquidity.services import (
    NothingToWithdraw,
    liquidity_execute,
    liquidity_request_parse,
    liquidity_withdraw,
)
from market.models import Balance, LedgerEntry, MarketMakerClient, Order, TicketLog
from market.services.market_makers import market_maker_deactivate
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


def execute(staff, *, bid="1000", ask="1000"):
    request = liquidity_request_parse(market_code="CEA", bid_amount_eur=bid, ask_amount_eur=ask)
    return liquidity_execute(request=request, user=staff)


def written():
    """What a refused withdrawal must leave as it was."""
    return (
        TicketLog.objects.count(),
        LedgerEntry.objects.count(),
        sorted(Order.objects.values_list("pk", "status", "reserved")),
        sorted(Balance.objects.values_list("pk", "available", "locked")),
    )


def test_a_second_withdrawal_is_refused_and_writes_no_ticket(staff):
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    operation = execute(staff)
    cancelled = liquidity_withdraw(operation=operation, user=staff)
    assert len(cancelled) == operation.orders_created
    assert TicketLog.objects.filter(action_type="LIQUIDITY_WITHDRAWN").count() == 1

    before = written()
    with pytest.raises(NothingToWithdraw, match=r"already withdrawn .* by staff"):
        liquidity_withdraw(operation=operation, user=factories.StaffFactory())
    assert written() == before
    operation.refresh_from_db()
    assert operation.withdrawn_by == staff  # the first withdrawal stays the one recorded
    assert_all_invariants()


def test_a_fully_filled_operation_has_nothing_to_withdraw(staff):
    factories.market_maker(AH, CEA=10000)
    operation = execute(staff, bid="0", ask="1000")
    sells = Order.objects.filter(ticket_id=operation.ticket_id)
    quantity = sum(order.quantity for order in sells)
    buyer = factories.trader(EUR="100000")
    order_place(
        owner=buyer,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="MARKET", quantity=quantity
        ),
    )
    assert not sells.filter(status__in=Order.RESTING).exists()

    before = written()
    with pytest.raises(NothingToWithdraw, match="no open orders left"):
        liquidity_withdraw(operation=operation, user=staff)
    assert written() == before
    operation.refresh_from_db()
    assert operation.withdrawn_at is None


def test_an_operation_emptied_by_deactivation_has_nothing_to_withdraw(staff):
    provider = factories.market_maker(LP, EUR="200000")
    holder = factories.market_maker(AH, CEA=10000)
    operation = execute(staff)
    for maker in (provider, holder):
        market_maker_deactivate(market_maker=maker, actor=staff, cancel_open_orders=True)
    before = written()
    with pytest.raises(NothingToWithdraw) as refused:
        liquidity_withdraw(operation=operation, user=staff)
    assert refused.value.code == "nothing_to_withdraw"
    assert written() == before


def test_after_a_partial_deactivation_withdraw_takes_what_is_left(staff):
    provider = factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    operation = execute(staff)
    market_maker_deactivate(market_maker=provider, actor=staff, cancel_open_orders=True)
    asks = Order.objects.filter(ticket_id=operation.ticket_id, side="SELL").count()

    cancelled = liquidity_withdraw(operation=operation, user=staff)
    assert len(cancelled) == asks  # only the holder's offers were still resting
    ticket = TicketLog.objects.get(action_type="LIQUIDITY_WITHDRAWN")
    assert ticket.user == staff and ticket.after_state["orders_cancelled"] == asks
    assert_all_invariants()
