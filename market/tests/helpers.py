"""Shared by the market tests: invariant checks (the ledger, the book and matching),
helpers for the seeding commands, and a race run on PostgreSQL."""

import threading
import time
from collections import defaultdict
from decimal import Decimal
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Max, Min

from market.core.money import fee_on
from market.models import (
    Balance,
    BookLevel,
    LedgerEntry,
    Market,
    MarketMakerClient,
    Order,
    TicketLog,
    Trade,
)
from market.services.holders import house_holder

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


def assert_book_levels_match_orders():
    """The book's level rows, which the database keeps, are exactly the resting orders
    summed by market, side and price: quantity still open and number of orders; no level
    without an order."""
    expected = defaultdict(lambda: [0, 0])
    for market_id, side, price, quantity, filled in Order.objects.filter(
        status__in=Order.RESTING
    ).values_list("market_id", "side", "price", "quantity", "filled_quantity"):
        expected[(market_id, side, price)][0] += quantity - filled
        expected[(market_id, side, price)][1] += 1
    levels = {
        (market_id, side, price): [quantity, count]
        for market_id, side, price, quantity, count in BookLevel.objects.values_list(
            "market_id", "side", "price", "quantity", "order_count"
        )
    }
    assert levels == dict(expected)


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
    assert_book_levels_match_orders()
    assert_orders_consistent()
    assert_totals_conserved()


# Matching invariants, added for the stateful and concurrency tests. They are not
# part of `assert_all_invariants`; call `assert_matching_invariants` next to it.


def assert_fills_match_trades():
    """No double fill: each order's filled quantity, value and fee are the sums of its
    trades; every trade is at the resting order's price, within the taker's limit, and
    never between one holder and itself."""
    fills = defaultdict(lambda: [0, ZERO, ZERO])
    orders = {order.pk: order for order in Order.objects.all()}
    for trade in Trade.objects.all():
        buy, sell = orders[trade.buy_order_id], orders[trade.sell_order_id]
        assert trade.buyer_id == buy.owner_id and trade.seller_id == sell.owner_id, trade
        assert trade.buyer_id != trade.seller_id, trade
        assert (buy.side, sell.side) == ("BUY", "SELL"), trade
        assert buy.market_id == sell.market_id == trade.market_id, trade
        assert trade.value == trade.price * trade.quantity, trade
        maker, taker = (sell, buy) if trade.aggressor_side == "BUY" else (buy, sell)
        assert maker.order_type == Order.Type.LIMIT and trade.price == maker.price, trade
        assert maker.pk < taker.pk, trade
        if buy.price is not None:
            assert trade.price <= buy.price, trade
        if sell.price is not None:
            assert trade.price >= sell.price, trade
        for order, fee in ((buy, trade.buyer_fee), (sell, trade.seller_fee)):
            fills[order.pk][0] += trade.quantity
            fills[order.pk][1] += trade.value
            fills[order.pk][2] += fee
    for order in orders.values():
        quantity, value, fee = fills[order.pk]
        assert order.filled_quantity == quantity, (order, order.filled_quantity, quantity)
        assert order.filled_value == value, (order, order.filled_value, value)
        assert order.fee_paid == fee, (order, order.fee_paid, fee)
        assert order.quantity is None or order.filled_quantity <= order.quantity, order


def assert_status_matches_fills():
    """OPEN has no fill, PARTIALLY_FILLED some, FILLED all; a resting order is a limit order
    and keeps locked at least what its remainder needs."""
    for order in Order.objects.select_related("market"):
        remaining = order.remaining_quantity
        if order.status == Order.Status.OPEN:
            assert order.filled_quantity == 0 and remaining > 0, order
        elif order.status == Order.Status.PARTIALLY_FILLED:
            assert order.filled_quantity > 0 and remaining > 0, order
        elif order.status == Order.Status.FILLED:
            assert remaining == 0 and order.filled_quantity > 0, order
        if order.is_resting:
            assert order.order_type == Order.Type.LIMIT, order
            if order.side == Order.Side.SELL:
                assert order.reserved == remaining, order
            else:
                assert order.reserved >= order.price * remaining, order


def assert_fifo_within_price_levels():
    """Price-time priority: at each market, side and price, only the oldest resting order
    may have been partly filled — a younger one never trades before an older one."""
    levels = defaultdict(list)
    for order in Order.objects.filter(status__in=Order.RESTING).order_by("id"):
        levels[(order.market_id, order.side, order.price)].append(order)
    for level, orders in levels.items():
        fills = [(order.pk, order.filled_quantity) for order in orders]
        assert all(quantity == 0 for _, quantity in fills[1:]), (level, fills)


def assert_fees_reach_house():
    """The house holds exactly its net deposits plus every fee charged; each order paid
    the fee on its cumulative traded value, rounded once (`fee_on`)."""
    house = house_holder()
    fees = ZERO
    for buyer_fee, seller_fee in Trade.objects.values_list("buyer_fee", "seller_fee"):
        fees += buyer_fee + seller_fee
    net = ZERO
    for delta in LedgerEntry.objects.filter(
        holder=house, asset="EUR", kind__in=["DEPOSIT", "WITHDRAWAL"]
    ).values_list("available_delta", flat=True):
        net += delta
    balance = house.balances.get(asset="EUR")
    assert balance.available + balance.locked == net + fees, (balance, net, fees)
    for order in Order.objects.all():
        assert order.fee_paid == fee_on(order.filled_value, order.fee_rate), order


def assert_matching_invariants():
    assert_fills_match_trades()
    assert_status_matches_fills()
    assert_fifo_within_price_levels()
    assert_fees_reach_house()


def run_command(*args, **options) -> str:
    """Run a management command and return what it printed."""
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def seeded_state():
    """What a seeding command writes, to compare before and after a rerun."""
    return (
        sorted(MarketMakerClient.objects.values_list("code", "name", "mm_type", "is_active")),
        sorted(Balance.objects.values_list("holder_id", "asset", "available", "locked")),
        LedgerEntry.objects.count(),
        TicketLog.objects.count(),
        sorted(get_user_model().objects.values_list("username", "is_staff", "is_superuser")),
    )


def maker_available(name: str, asset: str) -> Decimal:
    maker = MarketMakerClient.objects.get(name=name)
    return Balance.objects.get(holder=maker.holder, asset=asset).available


def run_together(*workers, timeout=120):
    """Run each callable in its own thread, released at once by a barrier; return their
    results (a value, or the exception it raised) in order."""
    barrier = threading.Barrier(len(workers))
    results = [None] * len(workers)

    def run(index, worker):
        try:
            barrier.wait(timeout=30)
            results[index] = worker()
        except BaseException as error:  # reported to the test, never lost in the thread
            results[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index, worker), daemon=True)
        for index, worker in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a worker hung (deadlock?)"
    return results


def race_behind_a_lock(first, second, *, timeout: float = 30):
    """The deterministic form of a race, on PostgreSQL: `first` runs in a thread inside a
    transaction it keeps open; once it is done, `second` starts in another thread, and
    `first` commits only when a session of this database waits on a lock (`second`,
    queued behind what `first` holds), or after `timeout`.

    Returns (what `first` returned, what `second` returned, whether `second` was seen
    waiting on a lock); a worker that raised returns its exception. Each thread has its
    own connection, closed when it is done (a third one watches: PostgreSQL's activity
    view holds still within a transaction).
    """
    first_done, release = threading.Event(), threading.Event()

    def hold_first():
        try:
            with transaction.atomic():
                outcome = first()
                first_done.set()
                release.wait(timeout * 2)
            return outcome
        finally:
            first_done.set()

    def start_second():
        assert first_done.wait(timeout), "the first worker never finished"
        return second()

    def watch():
        try:
            assert first_done.wait(timeout), "the first worker never finished"
            return _a_session_waits_on_a_lock(timeout)
        finally:
            release.set()

    results: list = [None, None, None]

    def run(index, work):
        try:
            results[index] = work()
        except BaseException as error:  # reported to the test, never lost in the thread
            results[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index, work), daemon=True)
        for index, work in enumerate((hold_first, start_second, watch))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout * 4)
        assert not thread.is_alive(), "a worker hung (deadlock?)"
    return tuple(results)


def _a_session_waits_on_a_lock(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def place(holder, side, *, market="CEA", order_type="LIMIT", **fields):
    """Place an order for `holder` through the service, parsed as the order form would."""
    from market.services.orders import order_place, order_request_parse

    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def order_data(**fields) -> dict:
    """The order form's data: a limit buy at €14.00 by quantity, changed by `fields`
    (None leaves a field out)."""
    data = {"side": "BUY", "order_type": "LIMIT", "amount_mode": "quantity", "price": "14.00"}
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}
