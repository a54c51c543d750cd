"""Invariant checks shared by the market tests (SPEC §3 and §5)."""

from collections import defaultdict
from decimal import Decimal

from django.db.models import Max, Min

from market.models import Balance, LedgerEntry, Market, Order

ZERO = Decimal("0")


def assert_ledger_matches_balances():
    """Every balance equals the sum of its ledger entries; nothing is negative."""
    # Summed in Python: SQLite adds NUMERIC columns as floating point.
    sums = defaultdict(lambda: [ZERO, ZERO])
    for holder_id, asset, available, locked in LedgerEntry.objects.values_list(
        "holder_id", "asset", "available_delta", "locked_delta"
    ):
        sums[(holder_id, asset)][0] += available
        sums[(holder_id, asset)][1] += locked
    for balance in Balance.objects.all():
        available, locked = sums[(balance.holder_id, balance.asset)]
        assert (balance.available, balance.locked) == (available, locked), balance
        assert balance.available >= 0 and balance.locked >= 0, balance


def assert_locked_equals_open_reservations():
    reserved = defaultdict(lambda: ZERO)
    for order in Order.objects.filter(status__in=Order.RESTING).select_related("market"):
        reserved[(order.owner_id, order.reserve_asset)] += order.reserved
    for balance in Balance.objects.all():
        assert balance.locked == reserved[(balance.holder_id, balance.asset)], balance
    assert not Order.objects.exclude(status__in=Order.RESTING).exclude(reserved=0).exists()


def assert_book_not_crossed():
    for market in Market.objects.all():
        resting = Order.objects.filter(market=market, status__in=Order.RESTING)
        best_bid = resting.filter(side="BUY").aggregate(p=Max("price"))["p"]
        best_ask = resting.filter(side="SELL").aggregate(p=Min("price"))["p"]
        if best_bid is not None and best_ask is not None:
            assert best_bid < best_ask, (market.code, best_bid, best_ask)


def assert_orders_consistent():
    for order in Order.objects.all():
        assert 0 <= order.filled_quantity <= (order.quantity or 0) or order.quantity is None
        assert order.filled_quantity + order.remaining_quantity == (order.quantity or 0)
        if order.status == Order.Status.FILLED:
            assert order.remaining_quantity == 0
        if order.order_type == Order.Type.MARKET:
            assert order.status not in Order.RESTING


def totals_by_asset() -> dict[str, Decimal]:
    totals = defaultdict(lambda: ZERO)
    for asset, available, locked in Balance.objects.values_list("asset", "available", "locked"):
        totals[asset] += available + locked
    return totals


def net_deposits_by_asset() -> dict[str, Decimal]:
    totals = defaultdict(lambda: ZERO)
    for asset, delta in LedgerEntry.objects.filter(kind__in=["DEPOSIT", "WITHDRAWAL"]).values_list(
        "asset", "available_delta"
    ):
        totals[asset] += delta
    return totals


def assert_totals_conserved():
    """Each asset's total over all holders changed only through deposits and withdrawals."""
    totals = totals_by_asset()
    net = net_deposits_by_asset()
    for asset in set(totals) | set(net):
        assert totals[asset] == net[asset], asset


def assert_all_invariants():
    assert_ledger_matches_balances()
    assert_locked_equals_open_reservations()
    assert_book_not_crossed()
    assert_orders_consistent()
    assert_totals_conserved()
