"""Price-time matching (`market.core.matching`), pure: no database."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.matching import BookOrder, Stop, affordable_quantity, match
from market.core.money import fee_on

TAKER = 1
RATE = D("0.005")


def resting(order_id, price, remaining, *, owner=2, fee_rate=D("0"), filled=0, value="0"):
    return BookOrder(
        order_id=order_id,
        owner_id=owner,
        price=D(price),
        quantity=remaining + filled,
        filled_quantity=filled,
        filled_value=D(value),
        fee_rate=fee_rate,
        fee_paid=fee_on(D(value), fee_rate),
        reserved=D("0"),
    )


class CountingBook:
    """A book that counts how many resting orders the walk read."""

    def __init__(self, orders):
        self.orders, self.read = list(orders), 0

    def __iter__(self):
        for order in self.orders:
            self.read += 1
            yield order


def walk(book, side="BUY", **order):
    order.setdefault("taker_fee_rate", RATE)
    return match(taker_owner_id=TAKER, side=side, book=book, **order)


def test_fills_in_priority_order_at_the_resting_price():
    book = [resting(1, "14.00", 3), resting(2, "14.00", 4), resting(3, "14.10", 10)]
    result = walk(book, quantity=9)
    assert [(f.maker.order_id, f.price, f.quantity) for f in result.fills] == [
        (1, D("14.00"), 3),
        (2, D("14.00"), 4),
        (3, D("14.10"), 2),
    ]
    assert result.filled_quantity == 9
    assert result.filled_value == D("14.00") * 7 + D("14.10") * 2
    assert result.stop == Stop.FILLED


def test_a_limit_stops_the_walk_and_the_book_is_read_no_further_than_needed():
    book = CountingBook([resting(1, "14.00", 3), resting(2, "14.20", 5), resting(3, "14.30", 5)])
    result = walk(book, quantity=10, limit_price=D("14.10"))
    assert result.filled_quantity == 3 and result.stop == Stop.LIMIT
    assert result.stopped_at.order_id == 2 and book.read == 2
    filled = CountingBook([resting(1, "14.00", 3), resting(2, "14.20", 5)])
    assert walk(filled, quantity=3).stop == Stop.FILLED and filled.read == 1


def test_a_sell_walks_bids_down_to_its_limit():
    bids = [resting(1, "14.00", 2), resting(2, "13.90", 2), resting(3, "13.80", 2)]
    result = walk(bids, side="SELL", quantity=6, limit_price=D("13.90"))
    assert [f.maker.order_id for f in result.fills] == [1, 2] and result.stop == Stop.LIMIT


def test_the_walk_stops_at_the_takers_own_order():
    book = [resting(1, "14.00", 2), resting(2, "14.05", 2, owner=TAKER), resting(3, "14.10", 9)]
    result = walk(book, quantity=10)
    assert [f.maker.order_id for f in result.fills] == [1]
    assert result.stop == Stop.SELF_TRADE and result.stopped_at.order_id == 2


def test_fees_are_charged_on_cumulative_value():
    # Ten fills of €1.00: per-fill rounding would charge 10 × €0.01, cumulative €0.05.
    result = walk([resting(n, "1.00", 1) for n in range(10)], quantity=10)
    assert result.fee_paid == D("0.05") == fee_on(D("10.00"), RATE)
    assert sum(f.taker_fee for f in result.fills) == D("0.05")


def test_a_partly_filled_resting_order_pays_its_fee_on_its_cumulative_value():
    maker = resting(1, "1.00", 5, fee_rate=RATE, filled=1, value="1.00")
    result = walk([maker], side="SELL", quantity=1)
    assert result.fills[0].maker_fee == fee_on(D("2.00"), RATE) - fee_on(D("1.00"), RATE)


def test_a_budget_buys_what_it_can_afford_fee_included():
    result = walk([resting(1, "14.00", 100)], eur_budget=D("100.00"))
    assert result.filled_quantity == 7  # 7 × 14.00 × 1.005 = 98.49 ≤ 100 < 8 × 14.07
    assert result.total_debit <= D("100.00") and result.stop == Stop.BUDGET
    assert walk([resting(1, "14.00", 100)], eur_budget=D("5")).filled_quantity == 0


def test_exactly_one_bound():
    with pytest.raises(ValueError):
        walk([], quantity=1, eur_budget=D("1"))
    with pytest.raises(ValueError):
        walk([])


@settings(max_examples=300)
@given(
    price=st.decimals(min_value=D("0.01"), max_value=D("1000"), places=2),
    budget=st.decimals(min_value=0, max_value=D("100000"), places=2),
    spent=st.decimals(min_value=0, max_value=D("1000"), places=2),
    rate=st.sampled_from([D("0"), D("0.005"), D("0.012345")]),
)
def test_affordable_quantity_is_the_most_the_budget_covers(price, budget, spent, rate):
    quantity = affordable_quantity(
        price=price, budget=budget, spent_value=spent, fee_rate=rate, limit=10**9
    )

    def cost(q):
        value = spent + price * q
        return value + fee_on(value, rate)

    assert quantity == 0 or cost(quantity) <= budget
    assert cost(quantity + 1) > budget or quantity == 10**9


prices = st.sampled_from([D("13.90"), D("13.95"), D("14.00"), D("14.05"), D("14.10")])
book_orders = st.lists(
    st.tuples(prices, st.integers(1, 20), st.sampled_from([2, 3, TAKER])), max_size=12
)


@settings(max_examples=500)
@given(
    orders=book_orders,
    quantity=st.integers(1, 100),
    limit=st.none() | prices,
    budget=st.none() | st.decimals(min_value=1, max_value=2000, places=2),
)
def test_any_walk_is_price_time_within_its_bounds_and_never_trades_with_itself(
    orders, quantity, limit, budget
):
    book = [
        resting(n, price, remaining, owner=owner)
        for n, (price, remaining, owner) in enumerate(sorted(orders, key=lambda o: o[0]))
    ]
    bound = {"eur_budget": budget} if budget is not None else {"quantity": quantity}
    result = walk(book, limit_price=limit, **bound)
    fills = result.fills
    assert [f.maker for f in fills] == book[: len(fills)]  # the best first, none skipped
    assert all(f.maker.owner_id != TAKER for f in fills)
    assert all(limit is None or f.price <= limit for f in fills)
    assert all(f.quantity == f.maker.remaining for f in fills[:-1])  # only the last partly
    assert result.filled_value == sum(f.price * f.quantity for f in fills)
    assert result.fee_paid == fee_on(result.filled_value, RATE)
    if budget is None:
        assert result.filled_quantity <= quantity
    else:
        assert result.total_debit <= budget
    # It stopped for the reason it gives.
    reached = book[len(fills) :]
    if result.stop == Stop.SELF_TRADE:
        assert result.stopped_at.owner_id == TAKER
    elif result.stop == Stop.LIMIT:
        assert result.stopped_at.price > limit
    elif result.stop == Stop.BOOK:
        assert not reached  # every resting order was consumed
    elif result.stop == Stop.FILLED:
        assert result.filled_quantity == quantity
