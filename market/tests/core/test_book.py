"""The pure order-book aggregation (market.book): a worked example and its invariants."""

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.core.book import (
    GROUPINGS,
    build_order_book,
    depth_pct,
    group_levels,
    mid_price,
    reference_price,
)

D = Decimal
TICK = D("0.01")


def test_worked_example():
    book = build_order_book(
        market_code="CEA",
        # Unordered on purpose, with a duplicate price and an empty level.
        bids=[(D("13.90"), 30, 2), (D("14.00"), 10, 1), (D("13.90"), 10, 1), (D("13.80"), 0, 1)],
        asks=[(D("14.30"), 60, 3), (D("14.10"), 20, 1)],
        tick=TICK,
        version=7,
    )
    assert [(lv.price, lv.quantity, lv.order_count) for lv in book.bids] == [
        (D("14.00"), 10, 1),
        (D("13.90"), 40, 3),
    ]
    assert [(lv.cumulative_quantity, lv.cumulative_value) for lv in book.bids] == [
        (10, D("140.00")),
        (50, D("696.00")),
    ]
    assert [(lv.cumulative_quantity, lv.cumulative_value) for lv in book.asks] == [
        (20, D("282.00")),
        (80, D("1140.00")),
    ]
    # The asks are the deeper side (80): 10/80 = 12.5 % rounds half up to 13.
    assert book.max_cumulative == 80
    assert [lv.depth_pct for lv in book.bids] == [13, 63]
    assert [lv.depth_pct for lv in book.asks] == [25, 100]
    assert (book.best_bid, book.best_ask, book.spread) == (D("14.00"), D("14.10"), D("0.10"))
    assert book.mid == D("14.05")
    assert book.spread_pct == D("0.71")  # 0.10 / 14.05 = 0.7117 %
    assert (book.market_code, book.version) == ("CEA", 7)
    assert (book.bid_quantity, book.ask_quantity) == (50, 80)
    assert (book.bid_value, book.ask_value) == (D("696.00"), D("1140.00"))

    curve = book.depth_curve()
    assert [(p.price, p.cumulative_quantity) for p in curve.bids] == [
        (D("13.90"), 50),
        (D("14.00"), 10),
    ]
    assert [(p.price, p.cumulative_quantity) for p in curve.asks] == [
        (D("14.10"), 20),
        (D("14.30"), 80),
    ]
    assert (curve.low_price, curve.high_price, curve.max_cumulative) == (
        D("13.90"),
        D("14.30"),
        80,
    )

    data = book.as_dict()
    assert data["bids"][0] == {
        "price": "14.00",
        "quantity": 10,
        "order_count": 1,
        "cumulative_quantity": 10,
        "cumulative_value": "140.00",
        "depth_pct": 13,
    }
    assert (data["mid"], data["spread"], data["spread_pct"]) == ("14.05", "0.10", "0.71")


def test_mid_rounds_an_exact_half_tick_towards_the_bid():
    assert mid_price(D("14.00"), D("14.01"), TICK) == D("14.00")
    assert mid_price(D("14.00"), D("14.03"), TICK) == D("14.01")
    assert mid_price(D("14.00"), D("14.04"), TICK) == D("14.02")
    assert mid_price(D("10.00"), D("10.15"), D("0.05")) == D("10.05")


def test_one_sided_and_empty_books():
    book = build_order_book(market_code="EUA", bids=[(D("80.00"), 5, 1)], asks=[])
    assert (book.best_bid, book.best_ask) == (D("80.00"), None)
    assert book.spread is None and book.spread_pct is None and book.mid is None
    assert book.bids[0].depth_pct == 100
    empty = build_order_book(market_code="EUA", bids=(), asks=(), version=3)
    assert empty.is_empty and empty.max_cumulative == 0 and empty.version == 3
    assert empty.best_bid is None and empty.bid_value == 0
    curve = empty.depth_curve()
    assert curve.bids == curve.asks == () and curve.low_price is None


def test_depth_pct_is_at_least_one_for_a_thin_level():
    assert depth_pct(1, 1_000_000) == 1
    assert depth_pct(0, 10) == 0
    assert depth_pct(10, 10) == 100


def test_float_prices_are_refused():
    with pytest.raises(TypeError):
        build_order_book(market_code="CEA", bids=[(14.0, 1, 1)], asks=[])


# --- Properties -------------------------------------------------------------------------

quantities = st.integers(min_value=1, max_value=10_000_000)
counts = st.integers(min_value=1, max_value=500)


def side_rows(low_tick: int, high_tick: int, *, max_size: int = 40):
    """Distinct prices between `low_tick` and `high_tick` ticks, in any order."""
    return st.lists(
        st.tuples(st.integers(low_tick, high_tick), quantities, counts),
        max_size=max_size,
        unique_by=lambda row: row[0],
    ).map(lambda rows: [(TICK * ticks, quantity, count) for ticks, quantity, count in rows])


@st.composite
def uncrossed_books(draw):
    """Bid rows strictly below ask rows: every bid tick < `split` ≤ every ask tick."""
    split = draw(st.integers(min_value=2, max_value=1_000_000))
    bids = draw(side_rows(1, split - 1))
    asks = draw(side_rows(split, split + 100_000))
    return bids, asks


def assert_side_invariants(levels, rows, *, descending: bool, max_cumulative: int):
    prices = [level.price for level in levels]
    assert prices == sorted(prices, reverse=descending)
    assert len(set(prices)) == len(prices)
    by_price = {price: (quantity, count) for price, quantity, count in rows}
    running_quantity, running_value = 0, D("0")
    previous_pct = 0
    for level in levels:
        assert (level.quantity, level.order_count) == by_price[level.price]
        running_quantity += level.quantity
        running_value += level.price * level.quantity
        assert level.cumulative_quantity == running_quantity
        assert level.cumulative_value == running_value
        assert 1 <= level.depth_pct <= 100
        assert level.depth_pct >= previous_pct
        previous_pct = level.depth_pct
    assert running_quantity <= max_cumulative
    assert len(levels) == len(rows)


@given(uncrossed_books())
def test_aggregation_invariants(book_rows):
    bid_rows, ask_rows = book_rows
    book = build_order_book(market_code="CEA", bids=bid_rows, asks=ask_rows, tick=TICK)

    assert_side_invariants(
        book.bids, bid_rows, descending=True, max_cumulative=book.max_cumulative
    )
    assert_side_invariants(
        book.asks, ask_rows, descending=False, max_cumulative=book.max_cumulative
    )
    totals = [levels[-1].cumulative_quantity for levels in (book.bids, book.asks) if levels]
    assert book.max_cumulative == max(totals, default=0)
    # The deepest level of the deeper side is the full bar.
    deepest = [levels[-1] for levels in (book.bids, book.asks) if levels]
    if deepest:
        assert max(level.depth_pct for level in deepest) == 100

    assert book.best_bid == (max(p for p, _, _ in bid_rows) if bid_rows else None)
    assert book.best_ask == (min(p for p, _, _ in ask_rows) if ask_rows else None)
    if bid_rows and ask_rows:
        assert book.best_bid < book.best_ask
        assert book.spread == book.best_ask - book.best_bid > 0
        assert book.best_bid <= book.mid <= book.best_ask
        assert book.mid % TICK == 0
        assert abs(book.mid - (book.best_bid + book.best_ask) / 2) <= TICK / 2
        assert book.spread_pct == (book.spread / book.mid * 100).quantize(
            D("0.01"), rounding=ROUND_HALF_UP
        )
        assert book.spread_pct >= 0
    else:
        assert book.spread is None and book.mid is None and book.spread_pct is None

    curve = book.depth_curve()
    assert [p.price for p in curve.bids + curve.asks] == sorted(
        p.price for p in curve.bids + curve.asks
    )
    assert len(curve.bids) == len(book.bids) and len(curve.asks) == len(book.asks)


@given(side_rows(1, 50, max_size=60).flatmap(lambda rows: st.permutations(rows + rows)))
def test_rows_at_the_same_price_merge_and_order_does_not_matter(rows):
    book = build_order_book(market_code="CEA", bids=rows, asks=rows)
    expected: dict[Decimal, list[int]] = {}
    for price, quantity, count in rows:
        slot = expected.setdefault(price, [0, 0])
        slot[0] += quantity
        slot[1] += count
    for levels in (book.bids, book.asks):
        assert {lv.price: [lv.quantity, lv.order_count] for lv in levels} == expected


@pytest.mark.parametrize(
    ("bid", "ask", "last", "expected"),
    [
        ("13.98", "14.03", "13.00", ("14.00", "mid")),  # 14.005: a half tick rounds down
        ("13.98", None, "13.00", ("13.98", "best_bid")),
        (None, "14.03", "13.00", ("14.03", "best_ask")),
        (None, None, "13.00", ("13.00", "last_price")),
        (None, None, None, ("14.00", "default")),
    ],
)
def test_the_reference_price_is_the_mid_else_one_side_else_the_last_trade_else_the_default(
    bid, ask, last, expected
):
    def price(text):
        return None if text is None else D(text)

    found = reference_price(
        best_bid=price(bid),
        best_ask=price(ask),
        last_price=price(last),
        default=D("14.00"),
        tick=D("0.01"),
    )
    assert found == (D(expected[0]), expected[1])


def test_the_reference_price_is_on_the_tick_even_when_the_book_is_not():
    # Prices placed before the tick grew from 0.01 to 0.05.
    assert reference_price(
        best_bid=D("14.02"), best_ask=None, last_price=None, default=D("14.00"), tick=D("0.05")
    ) == (D("14.00"), "best_bid")


# --- Grouping by multiples of the tick ----------------------------------------------------------


def test_grouping_worked_example():
    book = build_order_book(
        market_code="CEA",
        bids=[(D("13.99"), 5, 1), (D("13.95"), 7, 2), (D("13.94"), 1, 1), (D("13.90"), 2, 1)],
        asks=[(D("14.01"), 3, 1), (D("14.05"), 4, 1), (D("14.06"), 6, 2)],
        tick=TICK,
        grouping=5,
    )
    # Bids down to a multiple of €0.05, asks up.
    assert [(lv.price, lv.quantity, lv.order_count) for lv in book.bids] == [
        (D("13.95"), 12, 3),
        (D("13.90"), 3, 2),
    ]
    assert [(lv.price, lv.quantity, lv.order_count) for lv in book.asks] == [
        (D("14.05"), 7, 2),
        (D("14.10"), 6, 2),
    ]
    assert book.step == D("0.05") and book.grouping == 5
    assert book.spread == D("0.10")
    cut = build_order_book(
        market_code="CEA", bids=[(D("13.99"), 5, 1)], asks=[], tick=TICK, grouping=5, depth=0
    )
    assert cut.bids == ()
    with pytest.raises(ValueError):
        build_order_book(market_code="CEA", bids=[], asks=[], tick=TICK, grouping=0)
    with pytest.raises(ValueError):
        group_levels([], step=D("0"), bids=True)


@given(uncrossed_books(), st.sampled_from(GROUPINGS))
def test_grouped_sides_hold_exactly_what_the_ungrouped_sides_hold(book_rows, grouping):
    bid_rows, ask_rows = book_rows
    step = TICK * grouping
    for rows, bids in ((bid_rows, True), (ask_rows, False)):
        grouped = group_levels(rows, step=step, bids=bids)
        assert sum(q for _, q, _ in grouped) == sum(q for _, q, _ in rows)
        assert sum(c for _, _, c in grouped) == sum(c for _, _, c in rows)
        prices = [price for price, _, _ in grouped]
        assert prices == sorted(set(prices), reverse=bids)
        assert all(price % step == 0 for price in prices)
        for price, _, _ in rows:
            # Every order sits in the one group within a step on its far side (Decimal's %
            # of positive numbers is the remainder of the division).
            group = price - price % step if bids else price + (step - price % step) % step
            assert group in prices
            assert (group <= price < group + step) if bids else (group - step < price <= group)
    book = build_order_book(
        market_code="CEA", bids=bid_rows, asks=ask_rows, tick=TICK, grouping=grouping
    )
    if book.best_bid is not None and book.best_ask is not None:
        assert book.best_bid < book.best_ask  # grouping never crosses the book
    if grouping == 1:
        ungrouped = build_order_book(market_code="CEA", bids=bid_rows, asks=ask_rows, tick=TICK)
        assert book == ungrouped


@given(side_rows(1, 2_000, max_size=120), st.sampled_from(GROUPINGS), st.integers(1, 20))
def test_the_best_depth_times_grouping_levels_give_complete_grouped_levels(rows, grouping, depth):
    """What the selector relies on: reading only the best depth × grouping ungrouped levels
    yields the same first `depth` grouped levels as reading them all."""
    for bids in (True, False):
        best = sorted(rows, key=lambda row: row[0], reverse=bids)[: depth * grouping]
        everything = group_levels(rows, step=TICK * grouping, bids=bids)[:depth]
        assert group_levels(best, step=TICK * grouping, bids=bids)[:depth] == everything
