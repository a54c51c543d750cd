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
    assert outcome.message(500) == (
        "Order #500: 4 CEA at avg €14.0000; unfilled remainder cancelled."
    )


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


_RESTING_ORDERS = st.lists(
    st.builds(
        RestingOrder,
        st.integers(1, 4),
        st.sampled_from(["BUY", "SELL"]),
        st.integers(1300, 1500).map(lambda cents: D(cents) / 100),
        st.integers(1, 50),
    ),
    min_size=1,
    max_size=12,
)
_BEST = st.none() | st.integers(1300, 1500).map(lambda cents: D(cents) / 100)


@given(orders=_RESTING_ORDERS, best_bid=_BEST, best_ask=_BEST, data=st.data())
def test_resting_orders_that_pass_together_pass_and_rest_alike_in_any_split(
    orders, best_bid, best_ask, data
):
    # `resting_orders_place` checks the whole set, then rests it a side at a time.
    market = replace(CEA, price_band_pct=D("2"), previous_close=D("14.00"))
    whole = core.rest(
        market=market, orders=orders, best_bid=best_bid, best_ask=best_ask,
        order_ids=list(range(1, len(orders) + 1)),
    )  # fmt: skip
    refusal = core.rest_refusal(market=market, orders=orders, best_bid=best_bid, best_ask=best_ask)
    assert refusal == whole.refusal
    if refusal is not None:
        return
    chosen = data.draw(st.lists(st.booleans(), min_size=len(orders), max_size=len(orders)))
    parts = [
        [(i, o) for i, (o, first) in enumerate(zip(orders, chosen, strict=True)) if first == side]
        for side in (True, False)
    ]
    rows, moves = {}, {}
    for part in parts:
        resting = core.rest(
            market=market, orders=[o for _, o in part], best_bid=best_bid, best_ask=best_ask,
            order_ids=[i + 1 for i, _ in part],
        )  # fmt: skip
        assert resting.refusal is None
        rows |= {row.id: row for row in resting.orders}
        moves |= {move.order_id: move for move in resting.reservations}
    assert [rows[row.id] for row in whole.orders] == list(whole.orders)
    assert [moves[move.order_id] for move in whole.reservations] == list(whole.reservations)


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
    time_in_force=st.sampled_from(["GTC", "IOC", "FOK"]),
    post_only=st.booleans(),
)
def test_every_placement_conserves_assets_and_locks_exactly_what_rests(
    book, side, order_type, quantity, price, funds, time_in_force, post_only
):
    maker = bid if side == "SELL" else ask
    ordered = sorted(book, key=lambda row: D(row[0]), reverse=side == "SELL")
    resting = [maker(n, p, q, owner=o) for n, (p, q, o) in enumerate(ordered, start=1)]
    if core.time_in_force_refusal(order_type, time_in_force, post_only) is not None:
        post_only, time_in_force = False, "IOC" if order_type == "MARKET" else time_in_force
    req = replace(
        request(side=side, order_type=order_type, quantity=quantity, price=price),
        time_in_force=time_in_force,
        post_only=post_only,
    )
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
    if outcome.order.status in core.RESTING:
        assert outcome.order.time_in_force == "GTC" and order_type == "LIMIT"
    if post_only:
        assert outcome.trades == ()
    if outcome.refusal is None and time_in_force == "FOK":
        assert outcome.order.status == core.FILLED
    if outcome.refusal is None:
        assert outcome.reservation <= funds
        # Nobody's available balance goes below zero.
        assert change[(TAKER, reserve_asset)][0] >= -funds


# --- Time in force and post-only ------------------------------------------------------------


def tif(time_in_force, *, post_only=False, **fields):
    return replace(request(**fields), time_in_force=time_in_force, post_only=post_only)


def test_an_ioc_limit_trades_what_crosses_now_and_cancels_the_remainder():
    book = [ask(11, "13.90", 4), ask(12, "14.10", 50)]
    outcome = place(tif("IOC", quantity=10, price="14.00"), book)
    assert outcome.refusal is None and outcome.fill_quantity == 4
    assert (outcome.order.status, outcome.order.status_reason) == (
        core.CANCELLED,
        core.REMAINDER_CANCELLED,
    )
    assert outcome.order.time_in_force == "IOC" and outcome.order.reserved == 0
    assert outcome.rest_quantity == 0 and outcome.unfilled_quantity == 6
    # It reserves only what it spends (the book is locked while it walks).
    assert outcome.reservation == outcome.walk.result.total_debit
    assert "IOC: 4 fill now, the remaining 6 are cancelled." in outcome.notes
    assert net(outcome)[(TAKER, EUR)][1] == 0


def test_an_ioc_that_fills_in_full_is_filled_and_one_that_cannot_trade_is_refused():
    filled = place(tif("IOC", quantity=4, price="14.00"), [ask(11, "13.90", 10)])
    assert filled.order.status == core.FILLED and "IOC: all 4 fill now; nothing rests." in (
        filled.notes
    )
    nothing = place(tif("IOC", quantity=4, price="13.80"), [ask(11, "13.90", 10)])
    assert nothing.refusal == core.Refusal(
        "quantity",
        "Nothing can trade now: there are no sell orders at €13.80 or below (the best is "
        "€13.90). An immediate-or-cancel order does not rest; nothing was placed.",
    )


def test_a_fok_limit_fills_completely_or_is_refused():
    book = [ask(11, "13.90", 4), ask(12, "14.00", 3), ask(13, "14.10", 50)]
    whole = place(tif("FOK", quantity=7, price="14.00"), book)
    assert whole.refusal is None and whole.order.status == core.FILLED
    assert whole.order.time_in_force == "FOK" and whole.fill_quantity == 7
    part = place(tif("FOK", quantity=8, price="14.00"), book)
    assert part.refusal == core.Refusal(
        "quantity",
        "Fill or kill: only 7 of 8 CEA can trade now at €14.00 or better; nothing was placed.",
    )
    own = place(
        tif("FOK", quantity=8, price="14.00"),
        [ask(11, "13.90", 4), ask(12, "13.95", 4, owner=TAKER), ask(13, "14.00", 9)],
    )
    assert own.refusal.message.startswith("Fill or kill: only 4 of 8 CEA") and (
        "before your own order at €13.95" in own.refusal.message
    )


def test_a_post_only_order_rests_or_is_refused_when_it_would_take():
    rested = place(tif("GTC", post_only=True, quantity=5, price="13.90"), [ask(11, "13.95", 5)])
    assert rested.refusal is None and rested.order.status == core.OPEN and rested.order.post_only
    assert rested.trades == () and rested.order.reserved == rested.reservation
    taking = place(tif("GTC", post_only=True, quantity=5, price="14.00"), [ask(11, "13.95", 5)])
    assert taking.refusal == core.Refusal(
        "price",
        "Post-only: this order would trade at once (best ask €13.95); lower the price to rest it.",
    )
    assert taking.trades == ()
    selling = place(
        tif("GTC", post_only=True, side="SELL", quantity=5, price="13.90"),
        [bid(11, "13.95", 5, owner=TAKER)],
    )
    assert selling.refusal == core.Refusal(
        "price",
        "Post-only: your own buy order at €13.95 is first in line, so this order could "
        "neither trade nor rest; raise the price above €13.95.",
    )


@pytest.mark.parametrize(
    ("order_type", "time_in_force", "post_only", "field"),
    [
        ("MARKET", "FOK", False, "time_in_force"),
        ("MARKET", "IOC", True, "post_only"),
        ("LIMIT", "IOC", True, "post_only"),
        ("LIMIT", "FOK", True, "post_only"),
    ],
)
def test_meaningless_combinations_are_refused_on_their_input(
    order_type, time_in_force, post_only, field
):
    refusal = core.time_in_force_refusal(order_type, time_in_force, post_only)
    assert refusal is not None and refusal.field == field


def test_sensible_combinations_have_their_policy():
    for order_type, time_in_force in (("LIMIT", "GTC"), ("LIMIT", "IOC"), ("LIMIT", "FOK")):
        assert core.time_in_force_refusal(order_type, time_in_force, False) is None
        assert core.policy_of(tif(time_in_force, order_type=order_type)).time_in_force == (
            time_in_force
        )
    assert core.policy_of(request(order_type="MARKET")).time_in_force == "IOC"


# --- Amending -------------------------------------------------------------------------------


def resting_buy(quantity=10, price="14.00", filled=0, filled_value="0", fee_paid="0"):
    """The trader's resting limit buy #70, reserving what the rule says it must."""
    reserved = still_reserved(
        side="BUY", price=D(price), remaining=quantity - filled, filled_value=D(filled_value),
        fee_paid=D(fee_paid), fee_rate=D("0.005"),
    )  # fmt: skip
    return core.AmendingOrder(
        70, TAKER, "BUY", D(price), quantity, filled, D(filled_value), D("0.005"),
        D(fee_paid), reserved,
    )  # fmt: skip


def amend(order, price=None, quantity=None, book=(), available=None):
    plan = core.amend_plan(market=CEA, order=order, price=price, quantity=quantity)
    walk = None
    if plan.refusal is None and plan.request is not None:
        walk = core.match_order(market=CEA, account=TRADER, request=plan.request, book=book)
    return core.amend_settle(
        plan, account=TRADER, walk=walk,
        available=available or {EUR: D("1000"), "CEA": D("0")},
        house_id=HOUSE_ID, new_order_id=501, trade_ids=range(900, 950),
    )  # fmt: skip


def test_shrinking_the_quantity_keeps_the_order_and_its_place_and_releases_the_surplus():
    order = resting_buy(quantity=10, filled=4, filled_value="56.00", fee_paid="0.28")
    amended = amend(order, quantity=2)  # open 6 → 2
    assert amended.refusal is None and amended.keeps_priority and amended.placement is None
    keep = still_reserved(
        side="BUY", price=D("14.00"), remaining=2, filled_value=D("56.00"),
        fee_paid=D("0.28"), fee_rate=D("0.005"),
    )  # fmt: skip
    assert amended.shrunk == core.QuantityUpdate(70, 6, keep)
    assert [(m.kind, m.available, m.locked, m.order_id) for m in amended.moves] == [
        ("RELEASE", order.reserved - keep, keep - order.reserved, 70)
    ]
    assert amended.eur_after == D("1000") + order.reserved - keep
    assert amended.notes[0].startswith("Keeps its place in the queue")
    assert amended.message() == (
        f"Order #70 amended: 2 CEA open at €14.00, still in its place in the queue; "
        f"€{order.reserved - keep} released."
    )


def test_a_new_price_or_a_larger_quantity_replaces_the_order_with_its_funds():
    order = resting_buy(quantity=10, price="14.00")  # reserves 140.70
    grown = amend(order, quantity=12, available={EUR: D("30"), "CEA": D("0")})
    assert grown.refusal is None and not grown.keeps_priority
    assert grown.cancelled == core.OrderUpdate(
        70, 0, D("0"), D("0"), D("0"), core.CANCELLED, "replaced by #501"
    )
    assert grown.placement.order.id == 501 and grown.placement.order.quantity == 12
    assert grown.placement.order.reserved == D("168.84")  # 12 × 14.00 + 0.5 %
    # 140.70 of its own funds plus 28.14 of the 30.00 available.
    assert grown.eur_after == D("30") + D("140.70") - D("168.84")
    assert grown.moves[0] == core.Move(TAKER, EUR, "RELEASE", D("140.70"), D("-140.70"), 70)
    short = amend(order, quantity=13, available={EUR: D("30"), "CEA": D("0")})
    assert short.refusal == core.Refusal(
        "quantity", "Insufficient EUR: €182.91 needed, €170.70 available."
    )
    crossing = amend(order, price=D("14.10"), book=[ask(11, "14.05", 4)])
    assert [t.quantity for t in crossing.placement.trades] == [4]
    assert crossing.placement.order.status == core.PARTIALLY_FILLED
    assert crossing.message(501).startswith("Order #70 replaced by #501. Order #501 partly filled")


def test_amend_refusals_change_nothing():
    order = resting_buy()
    assert amend(order, price=D("14.00"), quantity=10).refusal == core.Refusal(
        core.NON_FIELD, core.NOTHING_TO_AMEND
    )
    own = amend(order, price=D("14.10"), book=[ask(11, "14.05", 4, owner=TAKER)])
    assert own.refusal.field == "price" and "your own order" in own.refusal.message
    post_only = amend(order._replace(post_only=True), price=D("14.10"), book=[ask(11, "14.05", 4)])
    assert post_only.refusal.message.startswith("Post-only: this order would trade at once")


@settings(max_examples=300, deadline=None)
@given(
    book=st.lists(
        st.tuples(levels, st.integers(1, 10), st.sampled_from([MAKER, TAKER])), max_size=6
    ),
    quantity=st.integers(2, 20),
    filled=st.integers(0, 1),
    new_price=st.one_of(st.none(), levels),
    new_quantity=st.one_of(st.none(), st.integers(1, 25)),
    funds=st.sampled_from([D("0"), D("50"), D("100000")]),
)
def test_every_amendment_conserves_assets_and_locks_exactly_what_rests(
    book, quantity, filled, new_price, new_quantity, funds
):
    ordered = sorted(book, key=lambda row: D(row[0]))
    resting = [ask(n, p, q, owner=o) for n, (p, q, o) in enumerate(ordered, start=1)]
    order = resting_buy(
        quantity=quantity,
        price="13.90",
        filled=filled,
        filled_value="13.90" if filled else "0",
        fee_paid="0.07" if filled else "0",
    )
    amended = amend(
        order,
        price=D(new_price) if new_price else None,
        quantity=new_quantity,
        book=resting,
        available={EUR: funds, "CEA": D("0")},
    )
    if amended.refusal is not None:
        return
    moves = list(amended.moves) + list(amended.placement.moves if amended.placement else ())
    totals = defaultdict(D)
    locked = D("0")
    for move in moves:
        totals[move.asset] += move.available + move.locked
        if move.holder_id == TAKER and move.asset == EUR:
            locked += move.locked
    assert all(total == 0 for total in totals.values()), totals
    # What stays locked for the taker is exactly what the amended (or new) order keeps.
    assert order.reserved + locked == amended.reserved_after
    assert amended.eur_after >= 0
    assert amended.keeps_priority == (
        (new_price is None or D(new_price) == order.price)
        and new_quantity is not None
        and new_quantity < order.remaining
    )
