"""The guardrails (`market.core.limits`) and how placement applies them, pure: bands,
slippage, order limits, the previous close, the staff reference check."""

from dataclasses import replace
from datetime import date
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from market.core import limits
from market.core import placement as core
from market.core.matching import BookOrder
from market.core.placement import Account, MarketRules, OrderRequest

CEA = MarketRules(
    7, "CEA", D("0.01"), D("0.005"), D("0"), True, D("14.00"), D("10"), D("5"), None, None
)
TRADER = Account(1, core.TRADER)
MAKER = 2
TODAY = date(2026, 12, 1)


def ask(order_id, price, remaining):
    return BookOrder(order_id, MAKER, D(price), remaining, 0, D(0), D(0), D(0), D(remaining))


def bid(order_id, price, remaining):
    value = D(price) * remaining
    return BookOrder(order_id, MAKER, D(price), remaining, 0, D(0), D(0), D(0), value)


def request(side="BUY", order_type="LIMIT", quantity=10, price=None, budget=None, market=CEA):
    return OrderRequest(
        market,
        side,
        order_type,
        None if budget is not None else quantity,
        D(price) if price is not None else None,
        D(budget) if budget is not None else None,
    )


def place(req, book, eur="1000000", certificates=100000):
    return core.place(
        market=req.market,
        account=TRADER,
        request=req,
        book=book,
        available=lambda keys: {"EUR": D(eur), "CEA": D(certificates)},
    )


# --- the previous close and the band ------------------------------------------------------


def test_the_previous_close_is_the_last_trade_of_an_earlier_day():
    kept = D("13.00")
    assert limits.previous_close_on(
        TODAY, last_price=D("14.20"), last_trade_date=date(2026, 11, 30), previous_close=kept
    ) == D("14.20")
    # Traded today already: the close kept when today's first trade came in.
    assert (
        limits.previous_close_on(
            TODAY, last_price=D("14.90"), last_trade_date=TODAY, previous_close=kept
        )
        == kept
    )
    assert (
        limits.previous_close_on(TODAY, last_price=None, last_trade_date=None, previous_close=None)
        is None
    )


def test_band_is_around_the_previous_close_else_the_reference_on_the_tick():
    band = limits.price_band(
        pct=D("10"), previous_close=None, reference_price=D("14.00"), tick=D("0.01")
    )
    assert (band.low, band.high, band.anchor_label) == (D("12.60"), D("15.40"), "reference price")
    band = limits.price_band(
        pct=D("10"), previous_close=D("13.33"), reference_price=D("14.00"), tick=D("0.05")
    )
    # 13.33 × 0.9 = 11.997 up to 12.00; 13.33 × 1.1 = 14.663 down to 14.65.
    assert (band.low, band.high, band.anchor) == (D("12.00"), D("14.65"), D("13.33"))
    assert band.describe() == "€12.00 – €14.65 (±10 % of the previous close €13.33)"
    assert (
        limits.price_band(pct=None, previous_close=None, reference_price=D("14"), tick=D("0.01"))
        is None
    )


@given(
    anchor=st.integers(1, 10**6).map(lambda c: D(c) / 100),
    pct=st.integers(1, 9999).map(lambda h: D(h) / 100),
    tick=st.sampled_from([D("0.01"), D("0.05"), D("0.10"), D("1.00")]),
)
def test_band_edges_are_on_the_tick_and_inside_the_percentage(anchor, pct, tick):
    band = limits.price_band(pct=pct, previous_close=anchor, reference_price=D(1), tick=tick)
    assert band.low % tick == 0 and band.high % tick == 0
    assert tick <= band.low <= band.high
    if band.low == band.high and not (
        anchor * (100 - pct) / 100 <= band.low <= anchor * (100 + pct) / 100
    ):
        # No tick inside the percentage: the one nearest the anchor (at least a tick).
        assert abs(band.low - anchor) <= tick / 2 or band.low == tick
        return
    assert band.high <= anchor * (100 + pct) / 100
    assert band.low >= anchor * (100 - pct) / 100 or band.low == tick


# --- limit orders -----------------------------------------------------------------------------


def test_a_limit_order_outside_the_band_is_refused_with_the_band():
    outcome = place(request(price="15.50"), [ask(1, "15.50", 5)])
    assert outcome.refusal.field == "price"
    assert "€12.60 – €15.40 (±10 % of the reference price €14.00)" in outcome.refusal.message
    assert not outcome.trades
    assert place(request(price="15.40"), [ask(1, "15.40", 5)]).refusal is None


def test_order_limits_refuse_quantity_and_value_for_every_type():
    market = replace(CEA, max_order_quantity=100, max_order_value=D("1000.00"))
    too_many = place(request(quantity=101, price="14.00", market=market), [])
    assert too_many.refusal == core.Refusal(
        "quantity", "At most 100 CEA per order in this market (this order is for 101)."
    )
    too_dear = place(request(quantity=72, price="14.00", market=market), [])
    assert too_dear.refusal.field == "quantity"
    assert "At most €1,000.00 per order" in too_dear.refusal.message
    assert "€1,008.00" in too_dear.refusal.message
    budget = place(request(order_type="MARKET", budget="1000.01", market=market), [])
    assert budget.refusal.field == "eur_budget"
    # A market order by quantity: the value it would trade.
    sell = place(request("SELL", "MARKET", quantity=80, market=market), [bid(1, "14.00", 80)])
    assert sell.refusal.field == "quantity"
    assert "this order is worth €1,120.00" in sell.refusal.message
    assert place(request(quantity=71, price="14.00", market=market), []).refusal is None


# --- market orders ----------------------------------------------------------------------------


def test_a_market_buy_stops_at_the_slippage_limit_and_says_why():
    # Best ask 14.00: 5 % is 14.70; the ask at 14.80 is beyond it.
    book = [ask(1, "14.00", 3), ask(2, "14.70", 3), ask(3, "14.80", 3)]
    outcome = place(request(order_type="MARKET", quantity=9), book)
    assert outcome.refusal is None
    assert outcome.fill_quantity == 6
    assert outcome.order.status == core.CANCELLED
    assert outcome.order.status_reason == (
        "unfilled remainder cancelled: the next price €14.80 is more than 5 % from the best "
        "price €14.00 on entry"
    )
    assert "the other 3 will be cancelled: the next price €14.80" in outcome.warnings[0]
    assert "unfilled remainder cancelled: the next price €14.80" in outcome.message(42)


def test_a_market_sell_never_trades_below_the_band():
    # Band low 12.60 (reference 14.00); slippage off, so the band alone bounds it.
    market = replace(CEA, slippage_pct=None)
    book = [bid(1, "13.00", 2), bid(2, "12.60", 2), bid(3, "12.59", 2)]
    outcome = place(request("SELL", "MARKET", quantity=6, market=market), book)
    assert [trade.price for trade in outcome.trades] == [D("13.00"), D("12.60")]
    assert outcome.order.status_reason == (
        "unfilled remainder cancelled: the next price €12.59 is outside today's band "
        "€12.60 – €15.40"
    )


def test_a_market_order_that_cannot_trade_within_the_band_is_refused():
    outcome = place(request(order_type="MARKET", quantity=5), [ask(1, "15.50", 5)])
    assert outcome.refusal.field == "quantity"
    assert outcome.refusal.message.startswith("Nothing can trade: the next price €15.50")


def test_a_market_buy_by_budget_says_what_stays_unspent_at_the_bound():
    book = [ask(1, "14.00", 1), ask(2, "15.00", 10)]
    outcome = place(request(order_type="MARKET", budget="100.00"), book)
    assert outcome.fill_quantity == 1
    assert (
        "Only 1 CEA can trade now (the next price €15.00 is more than 5 %" in (outcome.warnings[0])
    )


def test_without_guardrails_a_market_order_walks_the_whole_book():
    market = replace(CEA, price_band_pct=None, slippage_pct=None)
    book = [ask(1, "14.00", 1), ask(2, "99.00", 1)]
    assert place(request(order_type="MARKET", quantity=2, market=market), book).fill_quantity == 2


def test_max_amount_respects_the_largest_order():
    market = replace(CEA, max_order_quantity=50, max_order_value=D("560.00"))
    most = core.max_amount(
        market=market,
        account=TRADER,
        side="SELL",
        order_type="LIMIT",
        price=D("14.00"),
        by_eur=False,
        available={"CEA": D(1000)},
    )
    assert most == 40  # €560 / €14.00
    budget = core.max_amount(
        market=market,
        account=TRADER,
        side="BUY",
        order_type="MARKET",
        price=None,
        by_eur=True,
        available={"EUR": D(10000)},
    )
    assert budget == D("560.00")


# --- the staff reference ----------------------------------------------------------------------


def test_a_staff_reference_far_from_the_books_needs_an_override():
    assert (
        limits.reference_refusal(
            entered=D("15.40"), book_reference=D("14.00"), pct=D("10"), tick=D("0.01")
        )
        is None
    )
    message = limits.reference_refusal(
        entered=D("1.00"), book_reference=D("14.00"), pct=D("10"), tick=D("0.01")
    )
    assert message == (
        "The reference price €1.00 is more than 10 % from the book's reference €14.00: enter "
        "a price within €12.60 – €15.40, or tick the override to use it anyway."
    )
    assert (
        limits.reference_refusal(
            entered=D("1.00"), book_reference=D("14.00"), pct=None, tick=D("0.01")
        )
        is None
    )


def test_a_market_buy_passes_over_an_ask_left_below_todays_band():
    """The band moved overnight (previous close €15.00: €13.50 – €16.50); an ask resting
    at €12.70 since yesterday is not traded by a market order, the next one is."""
    market = replace(CEA, previous_close=D("15.00"))
    book = [ask(1, "12.70", 5), ask(2, "15.00", 5)]
    outcome = place(request(order_type="MARKET", quantity=3, market=market), book)
    assert [(trade.sell_order_id, trade.price) for trade in outcome.trades] == [(2, D("15.00"))]
    # Slippage is measured from the best price inside the band.
    assert outcome.walk.stop_reason == ""
    alone = place(request(order_type="MARKET", quantity=3, market=market), [ask(1, "12.70", 5)])
    assert alone.refusal.message == (
        "Nothing can trade: the next price €12.70 is outside today's band €13.50 – €16.50."
    )


def test_a_market_buy_by_amount_respects_the_largest_quantity():
    market = replace(CEA, max_order_quantity=50)
    outcome = place(
        request(order_type="MARKET", budget="5000", market=market), [ask(1, "14", 500)]
    )
    assert outcome.refusal == core.Refusal(
        "eur_budget", "At most 50 CEA per order in this market (this order is for 355)."
    )


@given(
    price=st.integers(1, 10**8).map(lambda c: D(c) / 100),
    pct=st.integers(1, 9999).map(lambda h: D(h) / 100),
)
def test_a_stop_reason_fits_the_orders_status_reason(price, pct):
    """The reason is stored on the order (255 characters); the widest prices and
    percentages still fit."""
    band = limits.price_band(pct=pct, previous_close=price, reference_price=D(1), tick=D("0.01"))
    for kind in ("band", "slippage"):
        reason = limits.bound_reason(
            kind=kind, best=price, band=band, slippage_pct=pct, next_price=price
        )
        assert len(f"{core.REMAINDER_CANCELLED}: {reason}") <= 255


# --- Re-quote of an open confirmation --------------------------------------------------------

AVERAGES = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=4)


def moved(average, reviewed, *, market_order=True, quantity=10, reviewed_quantity=10):
    return limits.quote_moved(
        market_order=market_order,
        reviewed_average=reviewed,
        reviewed_quantity=reviewed_quantity,
        average=average,
        quantity=quantity,
    )


def test_a_market_orders_quote_moves_beyond_half_a_percent():
    assert not moved(D("14.0700"), D("14.0000"))  # exactly 0.5 %
    assert moved(D("14.0701"), D("14.0000"))
    assert moved(D("13.9299"), D("14.0000"))
    assert not moved(D("13.9300"), D("14.0000"))
    # Another quantity (a thinner book, an EUR amount buying fewer) is a move.
    assert moved(D("14.0000"), D("14.0000"), quantity=9)
    assert moved(None, D("14.0000"), quantity=0)
    # A limit order is bounded by its price: never asked again.
    assert not moved(D("15.0000"), D("14.0000"), market_order=False, quantity=3)


@given(AVERAGES, AVERAGES)
def test_a_quote_moved_exactly_when_its_average_left_the_tolerance(average, reviewed):
    assert not moved(reviewed, reviewed)
    assert moved(average, reviewed) is (
        abs(average - reviewed) / reviewed > limits.REQUOTE_TOLERANCE_PCT / 100
    )
    assert not moved(average, reviewed, market_order=False)
