"""The placement core (`market.core.placement`), pure: what an order does, with no
database. The same function serves the estimate and `order_place` (see
`market/tests/test_selectors.py` for the two agreeing on real books)."""

from collections import defaultdict
from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core import placement as core
from market.core.matching import BookOrder
from market.core.money import EUR, MAX_AMOUNT, MAX_QUANTITY, fee_on
from market.core.placement import (
    Account,
    CancellingOrder,
    MarketRules,
    OrderRequest,
    RestingOrder,
    still_reserved,
)

CEA = MarketRules(7, "CEA", D("0.01"), D("0.005"), D("0"), True, D("14.00"))
TAKER, MAKER, HOUSE_ID = 1, 2, 99
TRADER = Account(TAKER, core.TRADER)


def request(side="BUY", order_type="LIMIT", quantity=10, price="14.00", budget=None, market=CEA):
    return OrderRequest(
        market,
        side,
        order_type,
        None if budget is not None else quantity,
        D(price) if order_type == "LIMIT" else None,
        D(budget) if budget is not None else None,
    )


def ask(order_id, price, remaining, owner=MAKER, fee_rate=D("0")):
    return BookOrder(
        order_id, owner, D(price), remaining, 0, D("0"), fee_rate, D("0"), D(remaining)
    )


def bid(order_id, price, remaining, owner=MAKER, fee_rate=D("0.005")):
    value = D(price) * remaining
    return BookOrder(
        order_id,
        owner,
        D(price),
        remaining,
        0,
        D("0"),
        fee_rate,
        D("0"),
        value + fee_on(value, fee_rate),
    )


def place(req, book, available=None, account=TRADER, market=CEA):
    available = available or {EUR: D("100000"), "CEA": D("1000")}
    walk = core.match_order(market=market, account=account, request=req, book=book)
    return core.settle(
        walk, available=available, house_id=HOUSE_ID, order_id=500, trade_ids=range(900, 950)
    )


def net(outcome) -> dict:
    change = defaultdict(lambda: [D("0"), D("0")])
    for move in outcome.moves:
        change[(move.holder_id, move.asset)][0] += move.available
        change[(move.holder_id, move.asset)][1] += move.locked
    return change


# --- The rules ----------------------------------------------------------------------------


def test_the_fee_rate_depends_on_the_side_and_market_makers_pay_none():
    assert core.fee_rate_for(CEA, core.TRADER, "BUY") == D("0.005")
    assert core.fee_rate_for(CEA, core.TRADER, "SELL") == D("0")
    assert core.fee_rate_for(CEA, core.MARKET_MAKER, "BUY") == D("0")


def test_a_limit_buy_reserves_its_value_and_the_most_fee_it_can_pay():
    assert still_reserved(side="BUY", price=D("14.00"), remaining=10, fee_rate=D("0.005")) == D(
        "140.70"
    )
    # Part filled: the rest, plus the fee not paid yet on the cumulative value.
    assert still_reserved(
        side="BUY", price=D("14.00"), remaining=4, filled_value=D("84.00"),
        fee_paid=D("0.42"), fee_rate=D("0.005"),
    ) == D("56.28")  # fmt: skip
    assert still_reserved(side="SELL", price=D("14.00"), remaining=4) == D("4")


# --- Placements ---------------------------------------------------------------------------


def test_a_resting_limit_buy_reserves_and_writes_one_order():
    outcome = place(request(quantity=10, price="13.00"), [])
    assert outcome.refusal is None and outcome.order.status == core.OPEN
    assert outcome.order.reserved == outcome.reservation == D("130.65")
    assert [(m.kind, m.available, m.locked) for m in outcome.moves] == [
        ("RESERVE", D("-130.65"), D("130.65"))
    ]
    assert outcome.eur_after == D("100000") - D("130.65")
    assert outcome.message(500) == "Order #500 rests in the book."


def test_a_crossing_buy_settles_every_fill_and_keeps_what_the_rest_needs():
    book = [ask(11, "13.90", 4), ask(12, "13.95", 3)]
    outcome = place(request(quantity=10, price="14.00"), book)
    assert [(t.sell_order_id, t.buy_order_id, t.price, t.quantity) for t in outcome.trades] == [
        (11, 500, D("13.90"), 4),
        (12, 500, D("13.95"), 3),
    ]
    assert [t.id for t in outcome.trades] == [900, 901]
    assert outcome.order.status == core.PARTIALLY_FILLED and outcome.rest_quantity == 3
    assert outcome.order.filled_value == D("97.45") and outcome.order.fee_paid == D("0.49")
    # What stays locked: 3 × 14.00 plus the fee still due on the whole order's value.
    assert outcome.order.reserved == still_reserved(
        side="BUY", price=D("14.00"), remaining=3, filled_value=D("97.45"),
        fee_paid=D("0.49"), fee_rate=D("0.005"),
    )  # fmt: skip
    change = net(outcome)
    assert change[(TAKER, "CEA")] == [D("7"), D("0")]
    assert change[(TAKER, EUR)] == [
        -(D("97.45") + D("0.49") + outcome.order.reserved),
        outcome.order.reserved,
    ]
    assert change[(MAKER, EUR)] == [D("97.45"), D("0")]
    assert change[(MAKER, "CEA")] == [D("0"), D("-7")]
    assert change[(HOUSE_ID, EUR)] == [D("0.49"), D("0")]
    assert [u.status for u in outcome.maker_updates] == [core.FILLED, core.FILLED]
    assert (
        "Crosses the spread: 7 trade at once, 3 rest in the book at your price." in outcome.notes
    )


def test_settlement_conserves_every_asset():
    book = [bid(21, "14.00", 5), bid(22, "13.95", 5, owner=3)]
    outcome = place(request(side="SELL", quantity=8, price="13.90"), book)
    totals = defaultdict(D)
    for (_, asset), (available, locked) in net(outcome).items():
        totals[asset] += available + locked
    assert totals == {EUR: D("0"), "CEA": D("0")}


def test_a_market_order_never_rests():
    outcome = place(request(order_type="MARKET", quantity=10), [ask(11, "14.00", 4)])
    assert outcome.order.status == core.CANCELLED
    assert outcome.order.status_reason == core.REMAINDER_CANCELLED and outcome.order.reserved == 0
    assert outcome.unfilled_quantity == 6
    assert (
        "Partial fill: only 4 CEA can trade now; the other 6 will be cancelled." in outcome.notes
    )
    assert outcome.message(500) == "Order #500: 4 CEA at avg €14.00; unfilled remainder cancelled."


def test_a_market_buy_by_budget_buys_what_it_affords_and_releases_the_rest():
    outcome = place(request(order_type="MARKET", budget="100.00"), [ask(11, "14.00", 100)])
    assert outcome.order.quantity == outcome.fill_quantity == 7
    assert outcome.order.status == core.FILLED and outcome.reservation == D("100.00")
    assert net(outcome)[(TAKER, EUR)] == [-outcome.walk.result.total_debit, D("0")]


@pytest.mark.parametrize(
    ("req", "book", "field", "message"),
    [
        (
            request(order_type="MARKET"),
            [],
            "quantity",
            "There are no sell orders to trade with in CEA.",
        ),
        (
            request(order_type="MARKET", budget="5"),
            [ask(11, "14.00", 5)],
            "eur_budget",
            "This amount does not buy a single certificate at the best offer.",
        ),
        (
            request(order_type="MARKET"),
            [ask(11, "14.00", 5, owner=TAKER), ask(12, "14.10", 5)],
            "quantity",
            "Your own sell order at €14.00 is first in line, and we do not trade anyone "
            "with themselves: nothing trades, and orders behind yours are not reached. "
            "Cancel your order, or place a limit order.",
        ),
    ],
)
def test_a_market_order_that_cannot_trade_is_refused_with_the_reason(req, book, field, message):
    assert place(req, book).refusal == core.Refusal(field, message)


def test_refusals_known_before_the_walk():
    closed = replace(CEA, trading_enabled=False)
    assert place(request(market=closed), [], market=closed).refusal == core.Refusal(
        "market", "Trading in CEA is paused."
    )
    assert place(request(), [], account=Account(HOUSE_ID, core.HOUSE)).refusal == core.Refusal(
        core.NON_FIELD, "The house fee account does not trade."
    )
    coarse = replace(CEA, tick=D("0.05"))
    assert place(request(price="14.03"), [], market=coarse).refusal == core.Refusal(
        "price", "The price must be a multiple of the tick (0.05)."
    )


def test_not_enough_funds_is_refused_but_the_figures_stay_shown():
    outcome = place(
        request(quantity=10, price="14.00"), [], available={EUR: D("100"), "CEA": D("0")}
    )
    assert outcome.refusal == core.Refusal(
        "quantity", "Insufficient EUR: €140.70 needed, €100.00 available."
    )
    assert outcome.insufficient and outcome.total == D("140.70") and outcome.eur_after < 0


def test_a_limit_order_stopped_by_the_traders_own_order_cancels_its_rest():
    book = [ask(11, "13.90", 2), ask(12, "13.95", 5, owner=TAKER)]
    outcome = place(request(quantity=10, price="14.00"), book)
    assert outcome.order.status == core.CANCELLED and outcome.order.reserved == 0
    assert outcome.order.status_reason == core.REST_CANCELLED_SELF and outcome.fill_quantity == 2
    assert (
        "Your own sell order at €13.95 is next in line: the rest is cancelled rather than "
        "traded with yourself." in outcome.notes
    )


def test_the_estimate_figures_of_a_limit_order_count_what_rests_at_the_limit():
    outcome = place(request(quantity=10, price="14.00"), [ask(11, "13.90", 4)])
    assert outcome.quantity == 10 and outcome.fill_quantity == 4 and outcome.rest_quantity == 6
    assert outcome.value == D("13.90") * 4 + D("14.00") * 6
    assert outcome.fee == fee_on(outcome.value, D("0.005"))
    assert outcome.total == outcome.value + outcome.fee
    assert outcome.average_price == (outcome.value / 10).quantize(D("0.0001"))


# --- Liquidity's resting orders and cancellations -------------------------------------------


def test_resting_orders_reserve_by_the_same_rule_and_never_cross():
    orders = [RestingOrder(5, "BUY", D("13.90"), 10), RestingOrder(6, "SELL", D("14.10"), 7)]
    resting = core.rest(
        market=CEA, orders=orders, best_bid=D("13.95"), best_ask=D("14.05"), ticket_id=3
    )
    assert resting.refusal is None
    assert [(o.side, o.reserved, o.ticket_id, o.fee_rate) for o in resting.orders] == [
        ("BUY", D("139.00"), 3, D("0")),
        ("SELL", D("7"), 3, D("0")),
    ]
    assert [(m.holder_id, m.asset, m.locked) for m in resting.reservations] == [
        (5, EUR, D("139.00")),
        (6, "CEA", D("7")),
    ]
    crossing = core.rest(market=CEA, orders=orders, best_bid=D("14.10"), best_ask=None)
    assert crossing.refusal == core.Refusal(
        core.NON_FIELD, "An ask at 14.10 would cross the best bid 14.10."
    )
    with pytest.raises(ValueError):
        core.rest(
            market=CEA,
            orders=[RestingOrder(5, "BUY", D("13.905"), 1)],
            best_bid=None,
            best_ask=None,
        )
    named = core.rest(market=CEA, orders=orders, best_bid=None, best_ask=None, order_ids=[41, 42])
    assert [o.id for o in named.orders] == [m.order_id for m in named.reservations] == [41, 42]
    with pytest.raises(ValueError, match="1 ids for 2 orders"):
        core.rest(market=CEA, orders=orders, best_bid=None, best_ask=None, order_ids=[41])
    paused = core.rest(
        market=replace(CEA, trading_enabled=False),
        orders=orders,
        best_bid=None,
        best_ask=None,
    )
    assert paused.orders == () and paused.reservations == ()
    assert paused.refusal == core.Refusal("market", "Trading in CEA is paused.")


def test_a_cancellation_releases_everything_still_reserved():
    updates, moves = core.cancel(
        [CancellingOrder(8, 5, EUR, D("56.28"), 6, D("84.00"), D("0.42"))],
        reason="cancelled by owner",
    )
    assert [(u.id, u.reserved, u.status, u.status_reason) for u in updates] == [
        (8, D("0"), core.CANCELLED, "cancelled by owner")
    ]
    assert [(m.holder_id, m.kind, m.available, m.locked, m.order_id) for m in moves] == [
        (5, "RELEASE", D("56.28"), D("-56.28"), 8)
    ]


def test_max_amount():
    available = {EUR: D("1000"), "CEA": D("12")}

    def maximum(side, order_type, price=None, by_eur=False, book=()):
        return core.max_amount(
            market=CEA, account=TRADER, side=side, order_type=order_type, price=price,
            by_eur=by_eur, available=available, book=book,
        )  # fmt: skip

    assert maximum("SELL", "LIMIT") == 12
    assert maximum("BUY", "MARKET", by_eur=True) == D("1000")
    assert maximum("BUY", "LIMIT") is None
    assert maximum("BUY", "LIMIT", price=D("14.00")) == 71  # 71 × 14.07 = 998.97
    assert maximum("BUY", "MARKET", book=[ask(1, "14.00", 10), ask(2, "20.00", 100)]) == 10 + 42
    # Never more than one order may take, so the form's MAX is always accepted.
    available.update({EUR: MAX_AMOUNT * 3, "CEA": D(MAX_QUANTITY * 2)})
    assert maximum("BUY", "MARKET", by_eur=True) == MAX_AMOUNT
    assert maximum("SELL", "MARKET") == MAX_QUANTITY


# --- Any order ----------------------------------------------------------------------------

levels = st.sampled_from(["13.90", "13.95", "14.00", "14.05", "14.10"])


@settings(max_examples=500, deadline=None)
@given(
    book=st.lists(
        st.tuples(levels, st.integers(1, 10), st.sampled_from([MAKER, 3, TAKER])), max_size=8
    ),
    side=st.sampled_from(["BUY", "SELL"]),
    order_type=st.sampled_from(["LIMIT", "MARKET"]),
    quantity=st.integers(1, 40),
    price=levels,
    funds=st.sampled_from([D("0"), D("50"), D("100000")]),
)
def test_every_placement_conserves_assets_and_locks_exactly_what_rests(
    book, side, order_type, quantity, price, funds
):
    maker = bid if side == "SELL" else ask
    ordered = sorted(book, key=lambda row: D(row[0]), reverse=side == "SELL")
    resting = [maker(n, p, q, owner=o) for n, (p, q, o) in enumerate(ordered, start=1)]
    req = request(side=side, order_type=order_type, quantity=quantity, price=price)
    outcome = place(req, resting, available={EUR: funds, "CEA": funds})
    change = net(outcome)
    totals = defaultdict(D)
    for (_, asset), (available, locked) in change.items():
        totals[asset] += available + locked
    assert all(total == 0 for total in totals.values()), totals
    # The taker's locked change is exactly what its order keeps resting.
    reserve_asset = EUR if side == "BUY" else "CEA"
    assert change[(TAKER, reserve_asset)][1] == outcome.order.reserved
    assert outcome.order.status in core.RESTING or outcome.order.reserved == 0
    assert all(t.buyer_id != t.seller_id for t in outcome.trades)
    if outcome.refusal is None:
        assert outcome.reservation <= funds
        # Nobody's available balance goes below zero.
        assert change[(TAKER, reserve_asset)][0] >= -funds
