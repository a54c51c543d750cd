"""The liquidity plan: worked examples and property tests. No database."""

from dataclasses import replace
from decimal import Decimal as D
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liquidity.ladder import DEFAULT_LADDER, Ladder, LadderLevel
from liquidity.plan import (
    LiquidityPlan,
    MakerFunds,
    MarketSnapshot,
    PlanError,
    build_plan,
    most_orders,
)
from market.core.limits import price_band
from market.core.money import MAX_PRICE, largest_remainder

CEA = MarketSnapshot(code="CEA", tick_size=D("0.01"), default_reference_price=D("14.00"))


def lp(mm_id, eur):
    return MakerFunds(mm_id, f"MM-{mm_id:03d}", f"LP {mm_id}", D(eur))


def ah(mm_id, certificates):
    return MakerFunds(mm_id, f"MM-{mm_id:03d}", f"AH {mm_id}", D(certificates))


def plan_for(market=CEA, bid="0", ask="0", lps=(), ahs=(), ref=None) -> LiquidityPlan:
    return build_plan(
        market=market,
        bid_amount_eur=D(bid),
        ask_amount_eur=D(ask),
        liquidity_providers=list(lps),
        asset_holders=list(ahs),
        reference_price_override=None if ref is None else D(ref),
    )


def cents(value) -> int:
    result = Fraction(value) * 100
    assert result.denominator == 1
    return int(result)


# --------------------------------------------------------------------------- worked examples


def test_reference_plan_worked_example():
    """One LP with €200,000, one AH with 10,000 CEA, empty book (CEA default 14.00),
    BID €100,000 / ASK €50,000: executable, 6 orders."""
    plan = plan_for(bid="100000", ask="50000", lps=[lp(1, "200000")], ahs=[ah(2, "10000")])

    assert plan.can_execute
    assert plan.total_orders_count == 6
    assert plan.shortfalls == () and plan.missing_assets is None
    assert plan.suggested_actions == ()
    assert (plan.reference_price, plan.reference_source) == (D("14.00"), "default")

    bid = plan.bid_plan
    assert [lv.price for lv in bid.levels] == [D("13.97"), D("13.94"), D("13.93")]
    assert [lv.target_eur for lv in bid.levels] == [D("50000.00"), D("30000.00"), D("20000.00")]
    assert [lv.quantity for lv in bid.levels] == [3579, 2152, 1435]
    assert bid.total_value_eur == D("99987.06")  # never above the €100,000 target
    # What the certificates cost at the prices placed: what the BID needs and reserves.
    assert bid.required == D("99987.06") and bid.available == D("200000.00")
    [lp_alloc] = bid.allocations
    assert lp_alloc.allocated == D("99987.06") and lp_alloc.orders_count == 3

    ask = plan.ask_plan
    assert ask.asset == "CEA"
    assert [lv.price for lv in ask.levels] == [D("14.03"), D("14.06"), D("14.07")]
    # €25,000 / 14.03 = 1,781 (€12.57 left over, carried); €15,012.57 / 14.06 = 1,067;
    # €10,010.55 / 14.07 = 711: quantities at the prices placed, not at the reference.
    assert [lv.quantity for lv in ask.levels] == [1781, 1067, 711]
    assert ask.required == D("3559") and ask.total_quantity == 3559
    assert ask.total_value_eur == D("49993.22")  # never above the €50,000 target
    [ah_alloc] = ask.allocations
    assert ah_alloc.allocated == D("3559") and ah_alloc.available == D("10000")

    assert [(o.side, o.price, o.quantity) for o in plan.orders] == [
        ("BUY", D("13.97"), 3579),
        ("BUY", D("13.94"), 2152),
        ("BUY", D("13.93"), 1435),
        ("SELL", D("14.03"), 1781),
        ("SELL", D("14.06"), 1067),
        ("SELL", D("14.07"), 711),
    ]
    assert plan.estimated_spread == D("0.06")
    assert plan.estimated_spread_pct == D("0.43")


def test_split_pro_rata_never_evenly():
    """docs/rules.md §9: the original split evenly and overdrew small makers."""
    plan = plan_for(
        bid="100000",
        ask="14000",
        lps=[lp(1, "10000"), lp(2, "90000"), lp(3, "100000")],
        ahs=[ah(4, "100"), ah(5, "1900")],
    )
    assert plan.can_execute
    # Each level's certificates are shared 5 / 45 / 50 %: 3,579 at the best bid level.
    assert [a.level_allocations[0] / D("13.97") for a in plan.bid_plan.allocations] == [
        179,
        1611,
        1789,
    ]
    assert [a.allocated for a in plan.bid_plan.allocations] == [
        D("5009.11"),
        D("44998.37"),
        D("49979.58"),
    ]
    # 498 / 299 / 199 certificates at the ask levels, 5 % and 95 %.
    assert [a.level_allocations for a in plan.ask_plan.allocations] == [
        (D("25"), D("15"), D("10")),
        (D("473"), D("284"), D("189")),
    ]


def test_both_sides_short_reports_two_shortfalls():
    plan = plan_for(bid="100000", ask="50000", lps=[lp(1, "60000.50")], ahs=[ah(2, "1000")])

    assert not plan.can_execute
    bid_short, ask_short = plan.shortfalls
    assert (bid_short.side, bid_short.asset, bid_short.maker_type) == (
        "BID",
        "EUR",
        "LIQUIDITY_PROVIDER",
    )
    assert (bid_short.required, bid_short.available, bid_short.shortfall) == (
        D("99987.06"),
        D("60000.50"),
        D("40014.50"),
    )
    assert (ask_short.side, ask_short.asset, ask_short.maker_type) == (
        "ASK",
        "CEA",
        "ASSET_HOLDER",
    )
    assert (ask_short.required, ask_short.available, ask_short.shortfall) == (
        D("3559"),
        D("1000"),
        D("2559"),
    )
    assert plan.missing_assets == bid_short
    assert plan.suggested_actions == (
        "Create liquidity providers holding €40,014.50 more",
        "Fund existing liquidity providers with €40,014.50",
        "Create asset holders holding 2,559 CEA more",
        "Fund existing asset holders with 2,559 CEA",
    )
    # Short sides still show what they would need, but allocate and place nothing.
    for side in (plan.bid_plan, plan.ask_plan):
        assert not side.sufficient and side.allocations == () and side.orders == ()
        assert len(side.levels) == 3 and all(lv.target_quantity > 0 for lv in side.levels)
    assert plan.total_orders_count == 0
    assert plan.estimated_spread == D("0.06")  # from the levels it would place


def test_only_ask_short_reports_only_the_ask():
    plan = plan_for(bid="1000", ask="50000", lps=[lp(1, "1000")], ahs=[])
    assert [s.side for s in plan.shortfalls] == ["ASK"]
    assert plan.missing_assets.asset == "CEA" and plan.missing_assets.available == D("0")
    assert plan.bid_plan.sufficient and plan.bid_plan.orders
    assert not plan.can_execute


def test_one_sided_plan_is_executable():
    plan = plan_for(bid="0", ask="1400", ahs=[ah(1, "500")])
    assert plan.can_execute
    assert plan.bid_plan.levels == () and plan.bid_plan.sufficient
    assert plan.bid_plan.required == D("0.00")
    # €700 / 14.03, then €420 + €12.74 carried / 14.06, then €280 + €10.24 / 14.07.
    assert [lv.quantity for lv in plan.ask_plan.levels] == [49, 30, 20]
    assert plan.ask_plan.total_value_eur == D("1390.67")
    assert plan.estimated_spread is None and plan.estimated_spread_pct is None


def test_amount_below_one_certificate_places_nothing_and_says_so():
    plan = plan_for(bid="0", ask="13.99", ahs=[ah(1, "500")])
    assert plan.ask_plan.required == D("0") and plan.ask_plan.sufficient
    assert plan.total_orders_count == 0 and not plan.can_execute
    assert any("less than one CEA" in w for w in plan.warnings)


def test_zero_and_fractional_holdings_are_tolerated():
    plan = plan_for(
        bid="10",
        ask="28",
        lps=[lp(1, "0"), lp(2, "10.009")],  # sub-cent EUR is not usable
        ahs=[ah(3, "0"), ah(4, "2.9")],  # neither is a fraction of a certificate
    )
    assert plan.bid_plan.available == D("10.00")
    assert plan.ask_plan.available == D("2")
    # €10 buys no certificate at any level; 2 CEA offer one at the second level, where
    # the first level's €14 share carried over makes €22.40.
    assert plan.bid_plan.allocations == ()
    assert any("does not buy one certificate" in w for w in plan.warnings)
    [holder] = plan.ask_plan.allocations
    assert (holder.market_maker_id, holder.level_allocations) == (4, (D(0), D(1), D(0)))


# --------------------------------------------------------------------------- reference price


@pytest.mark.parametrize(
    ("book", "expected", "source"),
    [
        ({"best_bid": D("14.00"), "best_ask": D("14.04")}, D("14.02"), "mid"),
        # An exact half tick rounds down (towards the bid).
        ({"best_bid": D("14.00"), "best_ask": D("14.01")}, D("14.00"), "mid"),
        ({"best_bid": D("14.00"), "best_ask": D("14.03")}, D("14.01"), "mid"),
        ({"best_bid": D("13.50")}, D("13.50"), "best_bid"),
        ({"best_ask": D("15.10")}, D("15.10"), "best_ask"),
        ({"last_price": D("12.34")}, D("12.34"), "last_price"),
        ({"best_ask": D("15.10"), "last_price": D("12.34")}, D("15.10"), "best_ask"),
        ({}, D("14.00"), "default"),
    ],
)
def test_reference_price_sources(book, expected, source):
    plan = plan_for(market=replace(CEA, **book), bid="1000", ask="1000")
    assert (plan.reference_price, plan.reference_source) == (expected, source)


def test_book_prices_round_to_a_coarser_tick():
    market = replace(CEA, tick_size=D("0.05"), best_bid=D("14.01"), best_ask=D("14.04"))
    plan = plan_for(market=market, bid="1000", ask="1000")
    assert plan.reference_price == D("14.00")  # mid 14.025 is 280.5 ticks: half rounds down
    assert all(lv.price < D("14.04") for lv in plan.bid_plan.levels)
    assert all(lv.price > D("14.01") for lv in plan.ask_plan.levels)


def test_override_wins_and_levels_step_away_from_the_book():
    market = replace(CEA, best_bid=D("14.00"), best_ask=D("14.02"))
    plan = plan_for(market=market, bid="1000", ask="1000", ref="20.00")
    assert (plan.reference_price, plan.reference_source) == (D("20.00"), "override")
    # Nominal bids 19.96 / 19.92 / 19.90 would cross the 14.02 ask: stepped below it.
    assert [lv.price for lv in plan.bid_plan.levels] == [D("14.01"), D("14.00"), D("13.99")]
    assert [lv.price for lv in plan.ask_plan.levels] == [D("20.04"), D("20.08"), D("20.10")]

    plan = plan_for(market=market, bid="1000", ask="1000", ref="10.00")
    assert [lv.price for lv in plan.bid_plan.levels] == [D("9.98"), D("9.96"), D("9.95")]
    assert [lv.price for lv in plan.ask_plan.levels] == [D("14.01"), D("14.02"), D("14.03")]


def test_collapsed_levels_step_outward_by_a_tick():
    plan = plan_for(bid="100", ask="100", ref="0.05")
    assert [lv.price for lv in plan.bid_plan.levels] == [D("0.04"), D("0.03"), D("0.02")]
    assert [lv.price for lv in plan.ask_plan.levels] == [D("0.06"), D("0.07"), D("0.08")]


def test_reference_too_low_for_three_bid_levels():
    with pytest.raises(PlanError) as caught:
        plan_for(bid="100", ask="100", ref="0.03")
    assert caught.value.field == "reference_price"
    assert "too low" in caught.value.message
    # An ASK-only plan needs no bid levels.
    assert plan_for(bid="0", ask="100", ahs=[ah(1, "10000")], ref="0.01").can_execute
    # The best ask limits the bids too.
    with pytest.raises(PlanError):
        plan_for(market=replace(CEA, best_ask=D("0.03")), bid="100", ask="0", ref="14.00")


# --------------------------------------------------------------------------- validation
# Amounts and prices reach the plan parsed by the one strict parser (`market.core.money`,
# tested in `market/tests/core/test_money.py`): anything else is a programming error, not
# a second set of messages for staff.


@pytest.mark.parametrize("field", ["bid_amount_eur", "ask_amount_eur"])
@pytest.mark.parametrize(
    "value",
    [D("-0.01"), D("NaN"), D("sNaN"), D("Infinity"), D("1.001"), 1.5, "100", True, None],
)
def test_unparsed_amounts_are_programming_errors(field, value):
    kwargs = {"bid_amount_eur": D("100"), "ask_amount_eur": D("100"), field: value}
    with pytest.raises(ValueError) as caught:
        build_plan(market=CEA, liquidity_providers=[], asset_holders=[], **kwargs)
    assert type(caught.value) is ValueError


def test_amounts_with_trailing_zeros_and_ints_are_fine():
    plan = build_plan(
        market=CEA,
        bid_amount_eur=D("100.000"),
        ask_amount_eur=100,
        liquidity_providers=[],
        asset_holders=[],
    )
    assert (plan.bid_amount_eur, plan.ask_amount_eur) == (D("100.00"), D("100.00"))


def test_both_amounts_zero_is_a_programming_error():
    with pytest.raises(ValueError) as caught:
        plan_for(bid="0", ask="0.00")
    assert type(caught.value) is ValueError


@pytest.mark.parametrize("value", [D("0"), D("-14"), D("14.005"), D("NaN"), 14.0, "14"])
def test_an_unparsed_reference_price_override_is_a_programming_error(value):
    with pytest.raises(ValueError) as caught:
        build_plan(
            market=CEA,
            bid_amount_eur=D("100"),
            ask_amount_eur=D("100"),
            liquidity_providers=[],
            asset_holders=[],
            reference_price_override=value,
        )
    assert type(caught.value) is ValueError


def test_a_reference_price_too_high_for_the_ask_levels_names_the_field():
    with pytest.raises(PlanError) as caught:
        plan_for(bid="100", ask="100", ref=str(MAX_PRICE))
    assert caught.value.field == "reference_price" and "too high" in caught.value.message


def test_override_must_be_on_the_tick():
    market = replace(CEA, tick_size=D("0.05"))
    with pytest.raises(PlanError, match="tick"):
        plan_for(market=market, bid="100", ask="100", ref="14.01")
    assert plan_for(market=market, bid="100", ask="100", ref="14.05").reference_price == D("14.05")


def test_order_above_the_per_order_maximum_is_refused():
    with pytest.raises(PlanError) as caught:
        plan_for(bid="1000000000000", lps=[lp(1, "1000000000000")])
    assert caught.value.field == "bid_amount_eur"
    with pytest.raises(PlanError) as caught:
        plan_for(ask="1000000000000", ahs=[ah(1, "1000000000000")], ref="1.00")
    assert caught.value.field == "ask_amount_eur"


def test_malformed_maker_and_market_data_are_programming_errors():
    with pytest.raises(ValueError, match="twice"):
        plan_for(bid="100", lps=[lp(1, "100"), lp(1, "200")])
    with pytest.raises(ValueError):
        lp(1, "-1")
    with pytest.raises(ValueError):
        MakerFunds(1, "MM-001", "x", 1.0)
    with pytest.raises(ValueError):
        replace(CEA, tick_size=D("0"))
    with pytest.raises(ValueError):
        replace(CEA, tick_size=D("0.001"))
    with pytest.raises(ValueError):
        replace(CEA, best_bid=D("-1"))


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_for_equal_inputs():
    kwargs = dict(bid="100000", ask="50000", lps=[lp(1, "70000"), lp(2, "80000")])
    kwargs["ahs"] = [ah(3, "5000"), ah(4, "6000")]
    first, second = plan_for(**kwargs), plan_for(**kwargs)
    assert first == second
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 64
    # The order makers are passed in does not matter.
    shuffled = plan_for(**{**kwargs, "lps": kwargs["lps"][::-1], "ahs": kwargs["ahs"][::-1]})
    assert shuffled.fingerprint() == first.fingerprint()


def test_fingerprint_changes_when_an_allocation_changes():
    base = plan_for(bid="100000", ask="50000", lps=[lp(1, "70000"), lp(2, "80000")])
    moved = plan_for(bid="100000", ask="50000", lps=[lp(1, "70000"), lp(2, "90000")])
    assert base.bid_plan.allocations != moved.bid_plan.allocations
    assert base.fingerprint() != moved.fingerprint()
    other_maker = plan_for(bid="100000", ask="50000", lps=[lp(1, "70000"), lp(3, "80000")])
    assert other_maker.fingerprint() != base.fingerprint()


def test_fingerprint_changes_with_reference_price_and_sufficiency():
    base = plan_for(bid="1000", ask="1000", lps=[lp(1, "5000")], ahs=[ah(2, "500")])
    assert plan_for(
        bid="1000", ask="1000", lps=[lp(1, "5000")], ahs=[ah(2, "500")], ref="14.01"
    ).fingerprint() != (base.fingerprint())
    short = plan_for(bid="1000", ask="1000", lps=[lp(1, "900")], ahs=[ah(2, "500")])
    assert short.fingerprint() != base.fingerprint()


def test_fingerprint_ignores_balance_moves_that_change_nothing():
    """A lone maker gets the whole side whatever it holds above it: still the same plan."""
    base = plan_for(bid="1000", ask="1000", lps=[lp(1, "5000")], ahs=[ah(2, "500")])
    richer = plan_for(bid="1000", ask="1000", lps=[lp(1, "6000")], ahs=[ah(2, "900")])
    assert richer.fingerprint() == base.fingerprint()


# --------------------------------------------------------------------------- properties

TICKS = [D("0.01"), D("0.05"), D("0.10"), D("0.25"), D("1.00")]


def holdings(count: int, needed: int):
    """`count` holdings (cents or certificates) that in total cover `needed` by a drawn
    factor: short, exactly enough, or plenty; some makers may hold nothing."""

    @st.composite
    def draw_holdings(draw):
        weights = draw(
            st.lists(
                st.one_of(st.integers(1, 10**6), st.integers(0, 10)),
                min_size=count,
                max_size=count,
            )
        )
        if chance(draw, 5):  # short
            factor = draw(st.sampled_from([Fraction(1, 2), Fraction(999, 1000)]))
        else:  # exactly enough, or more
            factor = draw(st.sampled_from([1, 1, Fraction(1001, 1000), 2, 3, 10, 50]))
        total = int(needed * factor) + draw(st.sampled_from([0, 0, 1, 7]))
        if not any(weights):
            return weights
        parts = [total * w // sum(weights) for w in weights]
        parts[weights.index(max(weights))] += total - sum(parts)
        return parts

    return draw_holdings()


def chance(draw, one_in: int) -> bool:
    return draw(st.integers(0, one_in - 1)) == 0


SUBCENT = [D("0"), D("0"), D("0"), D("0.004")]
FRAC = [D("0"), D("0"), D("0"), D("0.5")]


@st.composite
def scenarios(draw):
    tick = draw(st.sampled_from(TICKS))
    tick_c = cents(tick)
    # Prices in ticks: now and then too low for three bid levels, mostly not.
    ticks = st.integers(0, 9).flatmap(
        lambda mode: st.integers(1, 6) if mode == 0 else st.integers(7, 20_000)
    )
    book_cents = st.one_of(
        ticks.map(lambda n: n * tick_c),  # on tick
        st.integers(1, 2_000_000),  # off tick (the tick changed since)
    )
    best_bid = draw(st.none() | book_cents)
    best_ask = draw(st.none() | book_cents)
    if best_bid is not None and best_ask is not None and best_bid >= best_ask:
        best_bid, best_ask = best_ask, best_bid + (best_bid == best_ask)
    market = MarketSnapshot(
        code=draw(st.sampled_from(["CEA", "EUA"])),
        tick_size=tick,
        default_reference_price=D(draw(ticks) * tick_c) / 100,
        best_bid=None if best_bid is None else D(best_bid) / 100,
        best_ask=None if best_ask is None else D(best_ask) / 100,
        last_price=draw(st.none() | book_cents.map(lambda c: D(c) / 100)),
    )
    override = draw(st.none() | ticks.map(lambda n: D(n * tick_c) / 100))
    ref, _ = expected_reference(market, override)

    def amount():
        """EUR up to €1M (no order can reach the per-order maximum); mostly some
        certificates' worth at the reference price, sometimes tiny, arbitrary or zero."""
        mode = draw(st.integers(0, 19))
        if mode == 0:
            units = 0
        elif mode < 3:
            units = draw(st.integers(0, 10**4))
        elif mode < 6:
            units = draw(st.integers(0, 10**8))
        else:
            units = draw(st.integers(1, 300)) * max(ref, 1) + draw(st.integers(0, 99))
        return D(min(units, 10**8)) / 100

    bid, ask = amount(), amount()
    if bid == 0 and ask == 0:
        bid = D("1000.00")
    ids = draw(st.lists(st.integers(1, 10_000), unique=True, min_size=2, max_size=12))
    # Now and then one side has no market maker at all.
    split = (
        draw(st.sampled_from([0, len(ids)]))
        if chance(draw, 10)
        else draw(st.integers(1, len(ids) - 1))
    )
    bid_units = cents(bid)
    ask_units = cents(ask) // ref if ref else 0  # the ASK certificate total
    lps = [
        MakerFunds(i, f"MM-{i}", f"LP {i}", D(units) / 100 + draw(st.sampled_from(SUBCENT)))
        for i, units in zip(ids[:split], draw(holdings(split, bid_units)), strict=True)
    ]
    ahs = [
        MakerFunds(i, f"MM-{i}", f"AH {i}", D(units) + draw(st.sampled_from(FRAC)))
        for i, units in zip(ids[split:], draw(holdings(len(ids) - split, ask_units)), strict=True)
    ]
    return dict(
        market=market,
        bid_amount_eur=bid,
        ask_amount_eur=ask,
        liquidity_providers=lps,
        asset_holders=ahs,
        reference_price_override=override,
    )


MOST_ORDERS_INPUTS = (
    "bid_amount_eur",
    "ask_amount_eur",
    "liquidity_providers",
    "asset_holders",
    "ladder",
)


def expected_reference(market: MarketSnapshot, override) -> tuple[int, str]:
    if override is not None:
        return cents(override), "override"
    tick = cents(market.tick_size)
    if market.best_bid is not None and market.best_ask is not None:
        raw, source = (Fraction(market.best_bid) + Fraction(market.best_ask)) / 2, "mid"
    elif market.best_bid is not None:
        raw, source = Fraction(market.best_bid), "best_bid"
    elif market.best_ask is not None:
        raw, source = Fraction(market.best_ask), "best_ask"
    elif market.last_price is not None:
        raw, source = Fraction(market.last_price), "last_price"
    else:
        raw, source = Fraction(market.default_reference_price), "default"
    in_ticks = raw * 100 / tick
    nearest = int(in_ticks) + (1 if in_ticks - int(in_ticks) > Fraction(1, 2) else 0)
    return nearest * tick, source


def pro_rata_ok(part, total, holding, holdings):
    """part is the floor or the ceiling of total × holding / Σ holdings."""
    exact = Fraction(total * holding, holdings)
    return exact - 1 < part < exact + 1


def check_levels(plan: LiquidityPlan, market: MarketSnapshot):
    tick = cents(market.tick_size)
    ref = cents(plan.reference_price)
    for side, sign in ((plan.bid_plan, -1), (plan.ask_plan, 1)):
        target = cents(side.target_eur)
        assert len(side.levels) == (3 if target else 0)
        prices = [cents(lv.price) for lv in side.levels]
        for price in prices:
            assert price > 0 and price % tick == 0
            assert (price - ref) * sign > 0  # bids below, asks above the reference
        for better, worse in pairwise(prices):
            assert (worse - better) * sign >= tick  # strictly ordered, a tick apart
        if side.side == "BID" and market.best_ask is not None:
            assert all(p < cents(market.best_ask) for p in prices)  # never crosses
        if side.side == "ASK" and market.best_bid is not None:
            assert all(p > cents(market.best_bid) for p in prices)
        # Nominal price unless a constraint forced a step outward.
        multipliers = ((998, 996, 995) if sign < 0 else (1002, 1004, 1005))[: len(prices)]
        for price, mult in zip(prices, multipliers, strict=True):
            nominal = Fraction(ref * mult, 1000)
            assert price <= nominal if sign < 0 else price >= nominal
        assert [lv.share for lv in side.levels] == [level.share for level in DEFAULT_LADDER][
            : len(prices)
        ]
        if prices:
            level_eur = [cents(lv.target_eur) for lv in side.levels]
            assert sum(level_eur) == target
            assert level_eur == largest_remainder(target, [5, 3, 2])


def level_quantities(level_eur, prices):
    """Whole certificates per level at its own price; what a level's share cannot pay
    carries over to the next."""
    quantities, carry = [], 0
    for eur, price in zip(level_eur, prices, strict=True):
        quantities.append((eur + carry) // price)
        carry = (eur + carry) % price
    return quantities


def check_side(side, makers, target_c: int, *, bid: bool, asset: str):
    """One side: quantities at the prices placed, whole certificates allocated level by
    level within each maker's funds, never above the target, short of it by less than one
    certificate."""
    # Usable holdings: sub-cent EUR and fractional certificates are floored away.
    unit = 1 if bid else 100
    holdings = {m.market_maker_id: int(Fraction(m.available) * 100) // unit for m in makers}
    prices = [cents(lv.price) for lv in side.levels]
    costs = prices if bid else [1] * len(prices)
    expected = level_quantities([cents(lv.target_eur) for lv in side.levels], prices)
    assert [lv.target_quantity for lv in side.levels] == expected
    assert side.target_quantity == sum(expected)
    required = sum(q * c for q, c in zip(expected, costs, strict=True))
    as_units = cents if bid else int
    assert as_units(side.required) == required
    assert as_units(side.available) == sum(holdings.values())
    assert side.asset == asset and side.order_side == ("BUY" if bid else "SELL")
    # The planned quantities are worth at most the target, less than a certificate short.
    planned_value = sum(q * p for q, p in zip(expected, prices, strict=True))
    assert planned_value <= target_c
    if prices:
        assert target_c - planned_value < prices[-1]
    held = sum(holdings.values())
    if not bid:
        assert side.sufficient == (held >= required)
    elif held >= required + len(holdings) * max(prices, default=0):
        assert side.sufficient  # enough slack that no split of the EUR can fail

    if not side.sufficient:
        assert side.allocations == () and side.orders == ()
        assert all(lv.quantity == 0 for lv in side.levels)
        assert as_units(side.shortfall) >= max(required - held, 1)
        return
    assert side.shortfall == 0
    assert held >= required
    for lv_no, level in enumerate(side.levels, 1):
        at_level = [o for o in side.orders if o.level == lv_no]
        assert all(o.price == level.price and o.quantity > 0 for o in at_level)
        assert level.quantity == level.target_quantity == sum(o.quantity for o in at_level)
        assert level.orders_count == len(at_level)
        assert level.value_eur == level.price * level.quantity
    assert sum(cents(o.value_eur) for o in side.orders) == planned_value
    assert cents(side.total_value_eur) == planned_value
    for alloc in side.allocations:
        mine = [o for o in side.orders if o.market_maker_id == alloc.market_maker_id]
        assert mine and alloc.orders_count == len(mine)  # listed only if it places one
        spent = sum(cents(o.value_eur) if bid else o.quantity for o in mine)
        assert as_units(alloc.allocated) == spent <= holdings[alloc.market_maker_id]
        assert as_units(alloc.available) == holdings[alloc.market_maker_id]
        assert [as_units(x) for x in alloc.level_allocations] == [
            sum(cents(o.value_eur) if bid else o.quantity for o in mine if o.level == lv)
            for lv in range(1, len(prices) + 1)
        ]
        assert alloc.quantity == sum(o.quantity for o in mine)
        assert cents(alloc.value_eur) == sum(cents(o.value_eur) for o in mine)
    assert {a.market_maker_id for a in side.allocations} == {
        o.market_maker_id for o in side.orders
    }


def check_bid(plan: LiquidityPlan, inputs):
    check_side(
        plan.bid_plan,
        inputs["liquidity_providers"],
        cents(inputs["bid_amount_eur"]),
        bid=True,
        asset="EUR",
    )


def check_ask(plan: LiquidityPlan, inputs):
    check_side(
        plan.ask_plan,
        inputs["asset_holders"],
        cents(inputs["ask_amount_eur"]),
        bid=False,
        asset=inputs["market"].code,
    )


def check_plan(plan: LiquidityPlan, inputs):
    market = inputs["market"]
    assert (cents(plan.reference_price), plan.reference_source) == expected_reference(
        market, inputs["reference_price_override"]
    )
    check_levels(plan, market)
    check_bid(plan, inputs)
    check_ask(plan, inputs)

    short = [s for s in (plan.bid_plan, plan.ask_plan) if not s.sufficient]
    assert [s.side for s in plan.shortfalls] == [s.side for s in short]
    for shortfall, side in zip(plan.shortfalls, short, strict=True):
        assert shortfall.required == side.required and shortfall.available == side.available
        assert shortfall.shortfall == side.shortfall >= side.required - side.available
        assert shortfall.shortfall > 0
    assert plan.missing_assets == (plan.shortfalls[0] if plan.shortfalls else None)
    assert bool(plan.suggested_actions) == bool(plan.shortfalls)
    assert plan.total_orders_count == len(plan.orders)
    assert plan.can_execute == (not plan.shortfalls and plan.total_orders_count > 0)
    if plan.estimated_spread is not None:
        assert plan.estimated_spread == plan.ask_plan.best_price - plan.bid_plan.best_price > 0


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_plan_invariants(inputs):
    tick = cents(inputs["market"].tick_size)
    ref, _ = expected_reference(inputs["market"], inputs["reference_price_override"])
    best_ask = inputs["market"].best_ask
    if ref == 0:  # an off-tick book price under half a tick
        with pytest.raises(PlanError, match="rounds to zero") as caught:
            build_plan(**inputs)
        assert caught.value.field == "reference_price"
        return
    # Three bids fit iff both the reference and the best ask are above three ticks.
    if inputs["bid_amount_eur"] > 0 and (
        ref <= 3 * tick or (best_ask is not None and cents(best_ask) <= 3 * tick)
    ):
        with pytest.raises(PlanError, match="too low") as caught:
            build_plan(**inputs)
        assert caught.value.field == "reference_price"
        return
    plan = build_plan(**inputs)  # the amounts drawn are all valid
    check_plan(plan, inputs)
    assert plan.total_orders_count <= most_orders(
        **{key: inputs[key] for key in MOST_ORDERS_INPUTS if key in inputs}
    )

    # Deterministic, and independent of the order the makers come in.
    again = build_plan(
        **{
            **inputs,
            "liquidity_providers": inputs["liquidity_providers"][::-1],
            "asset_holders": inputs["asset_holders"][::-1],
        }
    )
    assert again == plan and again.fingerprint() == plan.fingerprint()


# --------------------------------------------------------------------------- guardrails


def test_a_far_reference_on_a_live_book_plans_no_more_than_the_target():
    """A €1.00 reference on a CEA book around €14: the asks are pushed above the best bid,
    and their quantities are computed at those prices, so €1,000 plans at most €1,000."""
    market = replace(CEA, best_bid=D("13.95"), best_ask=D("14.05"))
    plan = plan_for(market, bid="0", ask="1000", ahs=[ah(1, "100000")], ref="1.00")
    assert [lv.price for lv in plan.ask_plan.levels] == [D("13.96"), D("13.97"), D("13.98")]
    assert D("1000") - D("13.98") < plan.ask_plan.total_value_eur <= D("1000")


def test_small_targets_are_placed_within_one_certificate():
    plan = plan_for(
        bid="1000", ask="0", lps=[lp(i, "22.80") for i in range(1, 4)] + [lp(9, "5000")]
    )
    side = plan.bid_plan
    assert plan.can_execute
    assert D("1000") - D("13.93") < side.total_value_eur <= D("1000")
    # A maker with €22.80 buys one certificate where its share calls for one, or is not
    # listed at all: never an allocation it cannot use.
    for allocation in side.allocations:
        assert allocation.orders_count > 0
        assert allocation.value_eur == allocation.allocated <= allocation.available


def test_a_reference_far_from_the_books_is_refused_unless_overridden():
    market = replace(CEA, best_bid=D("13.95"), best_ask=D("14.05"), reference_band_pct=D("10"))
    with pytest.raises(PlanError) as refused:
        plan_for(market, bid="1000", lps=[lp(1, "5000")], ref="1.00")
    assert refused.value.field == "reference_price"
    assert refused.value.message == (
        "The reference price €1.00 is more than 10 % from the book's reference €14.00: enter "
        "a price within €12.60 – €15.40, or tick the override to use it anyway."
    )
    overridden = build_plan(
        market=replace(market, best_ask=None),
        bid_amount_eur=D("100"),
        ask_amount_eur=D("0"),
        liquidity_providers=[lp(1, "5000")],
        asset_holders=[],
        reference_price_override=D("12.00"),
        reference_outside_band=True,
    )
    assert overridden.reference_outside_band and overridden.reference_price == D("12.00")
    # Ticked for a price inside the band: nothing was overridden, nothing is recorded.
    ticked = build_plan(
        market=replace(market, best_ask=None),
        bid_amount_eur=D("100"),
        ask_amount_eur=D("0"),
        liquidity_providers=[lp(1, "5000")],
        asset_holders=[],
        reference_price_override=D("13.50"),
        reference_outside_band=True,
    )
    assert not ticked.reference_outside_band
    within = plan_for(replace(market, best_ask=None), bid="100", lps=[lp(1, "5000")], ref="13.00")
    assert not within.reference_outside_band
    # Without a staff reference there is nothing to override.
    assert not plan_for(market, bid="100", lps=[lp(1, "5000")]).reference_outside_band


def test_no_level_is_planned_outside_the_price_band():
    band = price_band(
        pct=D("10"), previous_close=D("14.00"), reference_price=D("14.00"), tick=D("0.01")
    )
    market = replace(CEA, band=band)
    with pytest.raises(PlanError) as refused:
        plan_for(market, ask="1000", ahs=[ah(1, "1000")], ref="15.40")
    assert refused.value.field == "reference_price"
    assert "An ask level at €15.44 would lie outside today's price band €12.60 – €15.40" in (
        refused.value.message
    )
    assert plan_for(market, ask="1000", ahs=[ah(1, "1000")], ref="15.30").can_execute


@settings(max_examples=300, deadline=None)
@given(
    bid=st.integers(1, 10**7).map(lambda c: D(c) / 100),
    funds=st.lists(st.integers(0, 10**7), min_size=1, max_size=8),
    new_maker=st.booleans(),
)
def test_funding_a_bid_shortfall_always_covers_the_side(bid, funds, new_maker):
    """What the preview asks staff to add, spread over the providers or given to a new one,
    makes the BID side executable: whole certificates per maker never leave it short."""
    lps = [lp(i + 1, D(c) / 100) for i, c in enumerate(funds)]
    plan = plan_for(bid=str(bid), lps=lps)
    if plan.bid_plan.sufficient:
        return
    shortfall = cents(plan.bid_plan.shortfall)
    assert shortfall >= cents(plan.bid_plan.required) - cents(plan.bid_plan.available) > 0 or (
        plan.bid_plan.required <= plan.bid_plan.available
    )
    if new_maker:
        funded = [*lps, lp(99, D(shortfall) / 100)]
    else:
        shares = largest_remainder(shortfall, [1] * len(lps))
        funded = [
            lp(m.market_maker_id, m.available + D(share) / 100)
            for m, share in zip(lps, shares, strict=True)
        ]
    assert plan_for(bid=str(bid), lps=funded).bid_plan.sufficient


# --------------------------------------------------------------------------- ladders

ladders = st.lists(
    st.integers(min_value=1, max_value=300), min_size=1, max_size=10, unique=True
).flatmap(
    lambda bps: st.lists(
        st.integers(min_value=1, max_value=50), min_size=len(bps), max_size=len(bps)
    ).map(lambda raw: _ladder(sorted(bps), raw))
)


def _ladder(distances_bp, raw_weights):
    """Shares in hundredths of a percent summing to exactly 100 %."""
    weights = largest_remainder(10000, raw_weights)
    if 0 in weights:
        weights = [10000 // len(weights)] * (len(weights) - 1)
        weights.append(10000 - sum(weights))
    return Ladder(
        tuple(
            LadderLevel(D(bp).scaleb(-2), D(w).scaleb(-2))
            for bp, w in zip(distances_bp, weights, strict=True)
        )
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    ladder=ladders,
    ref=st.integers(min_value=500, max_value=100_000),
    bid=st.integers(min_value=0, max_value=5_000_000),
    ask=st.integers(min_value=1, max_value=5_000_000),
)
def test_any_ladder_sets_the_levels_and_their_shares(ladder, ref, bid, ask):
    plan = build_plan(
        market=CEA,
        bid_amount_eur=D(bid).scaleb(-2),
        ask_amount_eur=D(ask).scaleb(-2),
        liquidity_providers=[lp(1, "1000000")],
        asset_holders=[ah(2, "1000000")],
        reference_price_override=D(ref).scaleb(-2),
        reference_outside_band=True,
        ladder=ladder,
    )
    assert plan.ladder == ladder
    # One maker a side, holding plenty: an order at each level its amount buys something
    # at, and at most one order a level.
    bought = [lv for side in (plan.bid_plan, plan.ask_plan) for lv in side.levels if lv.quantity]
    assert (
        plan.total_orders_count
        == len(bought)
        <= most_orders(
            bid_amount_eur=D(bid).scaleb(-2),
            ask_amount_eur=D(ask).scaleb(-2),
            liquidity_providers=[lp(1, "1000000")],
            asset_holders=[ah(2, "1000000")],
            ladder=ladder,
        )
    )
    for side, target, sign in ((plan.bid_plan, bid, -1), (plan.ask_plan, ask, 1)):
        if not target:
            assert side.levels == ()
            continue
        assert len(side.levels) == len(ladder)
        weights = [level.share_weight for level in ladder]
        assert [cents(lv.target_eur) for lv in side.levels] == largest_remainder(target, weights)
        for level, step in zip(side.levels, ladder, strict=True):
            assert level.distance_pct == step.distance_pct
            assert level.share == step.share
            nominal = Fraction(ref * (10000 + sign * step.distance_bp), 10000)
            price = cents(level.price)
            assert price <= nominal if sign < 0 else price >= nominal
        prices = [cents(lv.price) for lv in side.levels]
        for better, worse in pairwise(prices):
            assert (worse - better) * sign >= 1
        assert cents(side.total_value_eur) <= target
    # The ladder is part of what execution must find unchanged.
    if not ladder.is_default:
        default = build_plan(
            market=CEA,
            bid_amount_eur=D(bid).scaleb(-2),
            ask_amount_eur=D(ask).scaleb(-2),
            liquidity_providers=[lp(1, "1000000")],
            asset_holders=[ah(2, "1000000")],
            reference_price_override=D(ref).scaleb(-2),
            reference_outside_band=True,
        )
        assert default.fingerprint() != plan.fingerprint()


def test_most_orders_counts_the_makers_that_hold_something_on_a_side_with_an_amount():
    makers = {
        "liquidity_providers": [lp(1, "5000"), lp(2, "0.01"), lp(3, "0.009"), lp(4, "0")],
        "asset_holders": [ah(5, "300"), ah(6, "1"), ah(7, "0.99")],
    }
    levels = len(DEFAULT_LADDER)
    assert most_orders(bid_amount_eur=D("100"), ask_amount_eur=D("100"), **makers) == 4 * levels
    assert most_orders(bid_amount_eur=D("100"), ask_amount_eur=D("0"), **makers) == 2 * levels
    assert most_orders(bid_amount_eur=D("0"), ask_amount_eur=D("100"), **makers) == 2 * levels
