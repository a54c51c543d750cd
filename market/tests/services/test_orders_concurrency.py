"""Concurrent order placement and cancelling on PostgreSQL (docs/rules.md §5: "any number of app
processes … can place orders at once: no double fill, no overdraft").

Each worker thread has its own database connection (Django's connections are per thread)
and closes it when done (`market.tests.helpers`: `run_together` releases the workers at
once through a barrier; `race_behind_a_lock` is the deterministic form of a race).

Skipped on other databases outside CI; under CI (`CI=true`) these tests always run and
fail when the database is not PostgreSQL.
"""

import random
from collections import defaultdict
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from market.models import Balance, LedgerEntry, Order, Trade
from market.services.ledger import withdraw
from market.services.orders import (
    order_cancel,
    order_place,
    order_request_parse,
    orders_cancel,
)
from market.tests import factories
from market.tests.helpers import (
    assert_all_invariants,
    assert_matching_invariants,
    race_behind_a_lock,
    run_together,
)
from market.validation import IdempotencyKeyReused

D = Decimal
ZERO = D("0")
pytestmark = [
    pytest.mark.postgres,  # row locks
    # Real commits from several connections; the seeded markets and house account are
    # restored after the flush of any earlier transactional test.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("migrated_rows"),
]


def place(holder, side, order_type="LIMIT", market="CEA", **fields):
    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def holder_total(holder, asset):
    balance = Balance.objects.get(holder=holder, asset=asset)
    return balance.available + balance.locked


def deposited(holder, asset):
    return sum(
        LedgerEntry.objects.filter(holder=holder, asset=asset, kind="DEPOSIT").values_list(
            "available_delta", flat=True
        ),
        ZERO,
    )


def assert_no_double_fill():
    """Each order's fills are its trades, never beyond its quantity."""
    traded = defaultdict(int)
    for buy_id, sell_id, quantity in Trade.objects.values_list(
        "buy_order_id", "sell_order_id", "quantity"
    ):
        traded[buy_id] += quantity
        traded[sell_id] += quantity
    for order in Order.objects.all():
        assert order.filled_quantity == traded[order.pk], order
        assert order.quantity is None or order.filled_quantity <= order.quantity, order


def test_many_buyers_and_sellers_at_once_never_double_fill_or_overdraw():
    sellers = [factories.trader(CEA=40) for _ in range(4)]
    # Each buyer tries ~30 orders of 1–3 certificates near €14 (≈ €800) with €250: only
    # correct locking keeps it from spending more than it has.
    buyers = [factories.trader(EUR="250.00") for _ in range(4)]
    prices = ["13.98", "13.99", "14.00", "14.01", "14.02"]
    outcomes = defaultdict(lambda: defaultdict(int))

    def seller_worker(index, holder):
        def work():
            rng = random.Random(f"seller-{index}")
            for _ in range(30):
                quantity = rng.randint(1, 3)
                try:
                    if rng.random() < 0.75:
                        place(holder, "SELL", price=rng.choice(prices), quantity=quantity)
                    else:
                        place(holder, "SELL", "MARKET", quantity=quantity)
                    outcomes[holder.pk]["placed"] += 1
                except ValidationError as error:
                    outcomes[holder.pk][error.messages[0].split(":")[0]] += 1

        return work

    def buyer_worker(index, holder):
        def work():
            rng = random.Random(f"buyer-{index}")
            for _ in range(30):
                kind = rng.random()
                try:
                    if kind < 0.6:
                        price = rng.choice(prices)
                        place(holder, "BUY", price=price, quantity=rng.randint(1, 3))
                    elif kind < 0.8:
                        place(holder, "BUY", "MARKET", quantity=rng.randint(1, 3))
                    else:
                        budget = f"{rng.randint(15, 45)}.{rng.randint(0, 99):02d}"
                        place(holder, "BUY", "MARKET", eur_budget=budget)
                    outcomes[holder.pk]["placed"] += 1
                except ValidationError as error:
                    outcomes[holder.pk][error.messages[0].split(":")[0]] += 1

        return work

    workers = [seller_worker(i, h) for i, h in enumerate(sellers)]
    workers += [buyer_worker(i, h) for i, h in enumerate(buyers)]
    results = run_together(*workers)
    assert results == [None] * len(workers), [r for r in results if r is not None]

    assert Trade.objects.filter(market__code="CEA").count() > 20, "the orders did not cross"
    assert any(outcomes[b.pk]["Insufficient EUR"] for b in buyers), dict(outcomes)
    assert_no_double_fill()
    for buyer in buyers:
        spent = ZERO
        for value, fee in Trade.objects.filter(buyer=buyer).values_list("value", "buyer_fee"):
            spent += value + fee
        assert deposited(buyer, "EUR") == D("250.00")
        assert spent <= D("250.00")
        assert holder_total(buyer, "EUR") == D("250.00") - spent
        bought = sum(Trade.objects.filter(buyer=buyer).values_list("quantity", flat=True))
        assert holder_total(buyer, "CEA") == bought
    for seller in sellers:
        sold = sum(Trade.objects.filter(seller=seller).values_list("quantity", flat=True))
        assert sold <= 40
        assert holder_total(seller, "CEA") == 40 - sold
    assert not Balance.objects.filter(available__lt=0).exists()
    assert not Balance.objects.filter(locked__lt=0).exists()
    assert_all_invariants()
    assert_matching_invariants()


def test_same_idempotency_key_at_once_creates_one_order_and_both_get_it():
    """Two requests with the same client_order_id at once: one order, and both callers
    get it back."""
    for attempt in range(5):
        buyer = factories.trader(EUR="1000.00")
        key = f"retry-{attempt}"

        def attempt_place(buyer=buyer, key=key):
            return place(buyer, "BUY", price="14.00", quantity=10, client_order_id=key)

        results = run_together(attempt_place, attempt_place)
        orders = Order.objects.filter(owner=buyer)
        assert orders.count() == 1, list(orders)
        assert [type(result).__name__ for result in results] == ["Placement", "Placement"], results
        assert {result.order.pk for result in results} == {orders.get().pk}
        assert sorted(result.created for result in results) == [False, True]
    assert_all_invariants()
    assert_matching_invariants()


def test_retry_waiting_for_the_first_order_gets_it_back():
    """Deterministic form of the race above, with funds for one order only: the retry
    looks the key up while the first order is placed but not committed, then waits on the
    market row the first holds. After the first commits, the retry must return that order
    (created=False), not refuse for lack of the funds the first order reserved. (The same
    key on another market is another order: see the next test.)"""
    buyer = factories.trader(EUR="150.00")  # 10 × 14.00 + 0.70 fee, once

    def first():
        return place(buyer, "BUY", price="14.00", quantity=10, client_order_id="k")

    first_result, retry_result, retry_waited = race_behind_a_lock(first, first)
    assert retry_waited is True
    assert not isinstance(first_result, BaseException), first_result
    order = Order.objects.get(owner=buyer)
    assert first_result.created and first_result.order.pk == order.pk
    assert not isinstance(retry_result, BaseException), retry_result
    assert not retry_result.created and retry_result.order.pk == order.pk
    assert_all_invariants()


@pytest.mark.parametrize("retry_market", ["CEA", "EUA"])
def test_a_different_order_racing_the_first_under_its_key_is_refused(retry_market):
    """Same client_order_id, another order (another quantity; on the other market, also
    another price), while the first is placed but not committed: once the first commits,
    the second is refused as a reused key, not placed and not refused for lack of the
    funds the first reserved."""
    buyer = factories.trader(EUR="150.00")  # 10 × 14.00 + 0.70 fee, once

    def first():
        return place(buyer, "BUY", price="14.00", quantity=10, client_order_id="k")

    def second():
        price = "14.00" if retry_market == "CEA" else "81.00"
        return place(
            buyer, "BUY", market=retry_market, price=price, quantity=11, client_order_id="k"
        )

    first_result, second_result, second_waited = race_behind_a_lock(first, second)
    assert second_waited is True
    assert not isinstance(first_result, BaseException), first_result
    assert isinstance(second_result, IdempotencyKeyReused), second_result
    assert Order.objects.filter(owner=buyer).get().pk == first_result.order.pk
    assert_all_invariants()


def test_cancel_racing_a_crossing_order_never_uses_the_same_quantity_twice():
    """The owner cancels a resting sell while a buyer crosses it: the certificates are
    either sold or released, never both, whichever wins."""
    for attempt in range(12):
        seller = factories.trader(CEA=10)
        buyer = factories.trader(EUR="1000.00")
        resting = place(seller, "SELL", price="14.00", quantity=10).order
        assert resting.status == Order.Status.OPEN
        quantity = 6 if attempt % 2 else 10
        order_type = "MARKET" if attempt % 3 == 0 else "LIMIT"
        fields = {"quantity": quantity} | ({"price": "14.00"} if order_type == "LIMIT" else {})

        def cancel(order_id=resting.pk, user=seller.user):
            return order_cancel(order_id=order_id, user=user)

        def buy(buyer=buyer, order_type=order_type, fields=fields):
            return place(buyer, "BUY", order_type, **fields)

        cancel_result, buy_result = run_together(cancel, buy)
        for result in (cancel_result, buy_result):
            if isinstance(result, BaseException) and not isinstance(result, ValidationError):
                raise result

        resting.refresh_from_db()
        sold = sum(Trade.objects.filter(sell_order=resting).values_list("quantity", flat=True))
        assert resting.filled_quantity == sold
        released = sum(
            LedgerEntry.objects.filter(
                order=resting, kind="RELEASE", holder=seller, asset="CEA"
            ).values_list("available_delta", flat=True),
            ZERO,
        )
        # Every certificate is sold or released back, once.
        assert sold + released == 10, (sold, released)
        assert holder_total(seller, "CEA") == 10 - sold
        assert Balance.objects.get(holder=seller, asset="CEA").locked == 0
        cancelled = not isinstance(cancel_result, BaseException)
        if cancelled:
            assert resting.status == Order.Status.CANCELLED
            assert cancel_result.released == 10 - sold
        else:
            # The buy got there first and took everything: nothing left to cancel.
            assert resting.status == Order.Status.FILLED and sold == 10
        if isinstance(buy_result, BaseException):
            # Only a market buy that found the book empty may fail.
            assert order_type == "MARKET" and sold == 0 and cancelled
        # A clean book for the next round: a rested buy would otherwise take its sell.
        orders_cancel(orders=Order.objects.filter(status__in=Order.RESTING), reason="test")
    assert_all_invariants()
    assert_matching_invariants()


def test_withdrawal_racing_an_order_never_spends_the_same_euros_twice():
    """A withdrawal of everything and a limit buy that needs everything: one wins."""
    for _ in range(8):
        buyer = factories.trader(EUR="140.70")  # 10 × 14.00 + 0.5 % fee

        def withdraw_all(buyer=buyer):
            return withdraw(holder=buyer, asset="EUR", amount="140.70")

        def buy(buyer=buyer):
            return place(buyer, "BUY", price="14.00", quantity=10)

        results = run_together(withdraw_all, buy)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ValidationError):
                raise result
        assert sum(not isinstance(result, BaseException) for result in results) == 1, results
        balance = Balance.objects.get(holder=buyer, asset="EUR")
        assert balance.available == 0
        placed = Order.objects.filter(owner=buyer).exists()
        assert balance.locked == (D("140.70") if placed else 0)
        orders_cancel(orders=Order.objects.filter(status__in=Order.RESTING), reason="test")
    assert_all_invariants()
    assert_matching_invariants()
