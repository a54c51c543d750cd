"""Reads for the cash market (market.selectors): results from real orders and trades, and a
number of queries that does not grow with the book."""

import contextlib
import random
import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from market import selectors
from market.db.orders import best_prices
from market.models import LedgerEntry, Market, Order, Trade
from market.services.orders import (
    order_amend,
    order_cancel,
    order_place,
    order_request_parse,
)
from market.tests import factories
from market.tests.helpers import assert_all_invariants

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Book versions restart with every test database; cached books must not leak across.
    cache.clear()
    yield
    cache.clear()


def place(holder, side, order_type="LIMIT", market="CEA", **fields):
    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def levels(side):
    return [(lv.price, lv.quantity, lv.order_count) for lv in side]


# --- Order book -------------------------------------------------------------------------


def test_book_aggregates_remaining_quantity_per_price(cea):
    alice, bob, carol = (factories.trader(CEA=100) for _ in range(3))
    dave, erin = (factories.trader(EUR="10000") for _ in range(2))
    place(alice, "SELL", price="14.10", quantity=10)
    place(bob, "SELL", price="14.10", quantity=5)
    doomed = place(carol, "SELL", price="14.20", quantity=7).order
    place(carol, "SELL", price="14.30", quantity=8)
    place(dave, "BUY", price="13.90", quantity=10)
    place(erin, "BUY", price="13.90", quantity=4)
    place(dave, "BUY", price="13.80", quantity=3)
    # Fills alice's 10 at 14.10 and 2 of bob's 5: alice's order leaves the book, bob's
    # counts with what remains.
    taker = place(erin, "BUY", price="14.10", quantity=12).order
    assert taker.status == Order.Status.FILLED
    order_cancel(order_id=doomed.pk, user=carol.user)
    # Another market's orders stay out.
    place(factories.trader(EUA=5), "SELL", market="EUA", price="80.00", quantity=5)

    cea.refresh_from_db()
    book = selectors.order_book(market=cea)
    assert levels(book.asks) == [(D("14.10"), 3, 1), (D("14.30"), 8, 1)]
    assert levels(book.bids) == [(D("13.90"), 14, 2), (D("13.80"), 3, 1)]
    assert [lv.cumulative_quantity for lv in book.bids] == [14, 17]
    assert [lv.cumulative_value for lv in book.asks] == [D("42.30"), D("156.70")]
    assert (book.best_bid, book.best_ask, book.spread) == (D("13.90"), D("14.10"), D("0.20"))
    assert book.mid == D("14.00") and book.spread_pct == D("1.43")
    assert book.version == cea.book_version > 0
    assert book.market_code == "CEA"


def test_book_depth_limits_levels_per_side_best_first(cea):
    seller = factories.trader(CEA=1000)
    buyer = factories.trader(EUR="100000")
    for cents in range(10):
        place(seller, "SELL", price=str(D("15.00") + D(cents) / 100), quantity=1 + cents)
        place(buyer, "BUY", price=str(D("14.00") - D(cents) / 100), quantity=1 + cents)
    cea.refresh_from_db()
    book = selectors.order_book(market=cea, depth=3)
    assert [lv.price for lv in book.asks] == [D("15.00"), D("15.01"), D("15.02")]
    assert [lv.price for lv in book.bids] == [D("14.00"), D("13.99"), D("13.98")]
    assert book.asks[-1].depth_pct == 100 and book.max_cumulative == 6
    with pytest.raises(ValueError):
        selectors.order_book(market=cea, depth=0)


def test_empty_book(cea):
    book = selectors.order_book(market=cea)
    assert book.is_empty and book.best_bid is None and book.mid is None


def test_cached_book_serves_until_the_version_moves(cea, django_assert_num_queries):
    seller = factories.trader(CEA=100)
    place(seller, "SELL", price="14.50", quantity=10)

    with django_assert_num_queries(3):  # market row, then both sides
        first = selectors.cached_order_book(market_code="CEA", depth=20)
    with django_assert_num_queries(1):  # the version only
        again = selectors.cached_order_book(market_code="cea", depth=20)
    assert again == first and levels(again.asks) == [(D("14.50"), 10, 1)]
    assert selectors.market_book_version(market_code="CEA") == first.version

    place(seller, "SELL", price="14.40", quantity=5)
    with django_assert_num_queries(3):
        fresh = selectors.cached_order_book(market_code="CEA", depth=20)
    assert fresh.version == first.version + 1
    assert levels(fresh.asks) == [(D("14.40"), 5, 1), (D("14.50"), 10, 1)]
    # Each depth has its own entry.
    assert len(selectors.cached_order_book(market_code="CEA", depth=1).asks) == 1

    with pytest.raises(Market.DoesNotExist):
        selectors.cached_order_book(market_code="XXX", depth=20)
    assert selectors.market_book_version(market_code="XXX") is None


# --- Market data ------------------------------------------------------------------------


def trade(seller, buyer, price, quantity, *, aggressor="BUY", market="CEA") -> Trade:
    if aggressor == "BUY":
        place(seller, "SELL", market=market, price=price, quantity=quantity)
        placement = place(buyer, "BUY", market=market, price=price, quantity=quantity)
    else:
        place(buyer, "BUY", market=market, price=price, quantity=quantity)
        placement = place(seller, "SELL", market=market, price=price, quantity=quantity)
    (made,) = placement.trades
    return made


def backdate(made: Trade, age: timedelta) -> None:
    Trade.objects.filter(pk=made.pk).update(created_at=timezone.now() - age)


def test_stats_over_the_last_24_hours(cea):
    seller = factories.trader(CEA=1000)
    buyer = factories.trader(EUR="100000")
    older = trade(seller, buyer, "13.00", 50)
    day_old = trade(seller, buyer, "14.00", 5)
    high = trade(seller, buyer, "14.50", 2)
    last = trade(seller, buyer, "14.20", 3, aggressor="SELL")
    backdate(older, timedelta(days=3))
    backdate(day_old, timedelta(hours=24, minutes=1))
    backdate(high, timedelta(hours=2))
    # Another market's trades stay out.
    trade(factories.trader(EUA=10), factories.trader(EUR="10000"), "90.00", 1, market="EUA")

    stats = selectors.market_stats(market=cea)
    assert stats.market_code == "CEA"
    assert stats.last_price == D("14.20")
    assert stats.last_trade_at == Trade.objects.get(pk=last.pk).created_at
    # The open is the price 24 h ago: the last trade before the window.
    assert stats.open_24h == D("14.00")
    assert stats.change_24h == D("0.20")
    assert stats.change_24h_pct == D("1.43")  # 0.20 / 14.00 = 1.4286 %
    assert stats.direction == "up"
    assert (stats.high_24h, stats.low_24h) == (D("14.50"), D("14.20"))
    assert stats.volume_24h == 5 and isinstance(stats.volume_24h, int)
    assert stats.volume_eur_24h == D("71.60")  # 29.00 + 42.60
    assert str(stats.volume_eur_24h) == "71.60"
    assert stats.trades_24h == 2


def test_stats_open_falls_back_to_the_first_trade_in_the_window(cea):
    seller = factories.trader(CEA=1000)
    buyer = factories.trader(EUR="100000")
    first = trade(seller, buyer, "15.00", 1)
    trade(seller, buyer, "14.70", 1)
    backdate(first, timedelta(hours=5))
    stats = selectors.market_stats(market=cea)
    assert (stats.open_24h, stats.change_24h, stats.change_24h_pct) == (
        D("15.00"),
        D("-0.30"),
        D("-2.00"),
    )
    assert stats.direction == "down"


def test_stats_without_trades_in_the_window(cea):
    empty = selectors.market_stats(market=cea)
    assert empty.last_price is None and empty.change_24h is None and empty.high_24h is None
    assert (empty.volume_24h, empty.volume_eur_24h, empty.trades_24h) == (0, D("0"), 0)

    old = trade(factories.trader(CEA=10), factories.trader(EUR="1000"), "14.00", 1)
    backdate(old, timedelta(days=2))
    quiet = selectors.market_stats(market=cea)
    assert (quiet.last_price, quiet.open_24h, quiet.change_24h) == (
        D("14.00"),
        D("14.00"),
        D("0.00"),
    )
    assert quiet.direction == "flat"
    assert quiet.high_24h is None and quiet.volume_24h == 0 and quiet.trades_24h == 0


def test_recent_trades_newest_first_with_the_aggressor(cea):
    seller = factories.trader(CEA=1000)
    buyer = factories.trader(EUR="100000")
    trade(seller, buyer, "14.00", 1)
    trade(seller, buyer, "14.10", 2, aggressor="SELL")
    trade(seller, buyer, "14.20", 3)
    rows = selectors.recent_trades(market=cea, limit=2)
    assert [(t.price, t.quantity, t.aggressor_side) for t in rows] == [
        (D("14.20"), 3, "BUY"),
        (D("14.10"), 2, "SELL"),
    ]
    assert rows[0].value == D("42.60") and rows[0].created_at >= rows[1].created_at
    assert len(selectors.recent_trades(market=cea)) == 3
    assert selectors.recent_trades(market=factories.market("EUA")) == []


# --- A trader's own orders --------------------------------------------------------------


def test_open_orders_and_history_are_the_holders_own(cea, eua, django_assert_num_queries):
    mine = factories.trader(EUR="10000", CEA=100, EUA=10)
    theirs = factories.trader(EUR="10000", CEA=100)
    resting = place(mine, "BUY", price="13.00", quantity=1).order
    eua_order = place(mine, "SELL", market="EUA", price="90.00", quantity=1).order
    cancelled = place(mine, "BUY", price="12.00", quantity=1).order
    order_cancel(order_id=cancelled.pk, user=mine.user)
    their_sell = place(theirs, "SELL", price="14.00", quantity=5).order
    filled = place(mine, "BUY", price="14.00", quantity=2).order
    partly = place(theirs, "BUY", price="13.50", quantity=4).order
    place(mine, "SELL", price="13.50", quantity=1)  # fills 1 of theirs; mine is filled
    partly.refresh_from_db()
    assert partly.status == Order.Status.PARTIALLY_FILLED

    with django_assert_num_queries(1):
        open_orders = selectors.open_orders_for(holder=mine)
        # Related rows come with the orders: no query per row in a template.
        assert [o.market.code for o in open_orders] == ["EUA", "CEA"]
        assert {o.owner.pk for o in open_orders} == {mine.pk}
    assert [o.pk for o in open_orders] == [eua_order.pk, resting.pk]
    assert [o.pk for o in selectors.open_orders_for(holder=mine, market=cea)] == [resting.pk]
    assert [o.pk for o in selectors.open_orders_for(holder=theirs)] == [
        partly.pk,
        their_sell.pk,
    ]

    with django_assert_num_queries(1):
        history = selectors.order_history_for(holder=mine, market=cea)
        assert {o.market.code for o in history} == {"CEA"}
    assert filled.pk in [o.pk for o in history] and cancelled.pk in [o.pk for o in history]
    assert all(o.owner_id == mine.pk and not o.is_resting for o in history)
    assert [o.pk for o in history] == sorted((o.pk for o in history), reverse=True)
    assert len(selectors.order_history_for(holder=mine, limit=1)) == 1
    assert selectors.order_history_for(holder=mine, market=eua) == []


# --- Cost does not grow with the book ---------------------------------------------------


def bulk_resting_orders(market: Market, owner, count: int, *, seed: int = 1) -> list[Order]:
    """`count` resting orders straight into the table over 200 prices: bids 10.00–10.99,
    asks 12.00–12.99; some partly filled."""
    rng = random.Random(seed)
    orders = []
    for index in range(count):
        side = Order.Side.BUY if index % 2 else Order.Side.SELL
        base = D("10.00") if side == Order.Side.BUY else D("12.00")
        quantity = rng.randint(1, 500)
        filled = rng.randint(0, quantity - 1) if index % 5 == 0 else 0
        orders.append(
            Order(
                owner=owner,
                market=market,
                side=side,
                order_type=Order.Type.LIMIT,
                price=base + D(rng.randrange(100)) / 100,
                quantity=quantity,
                filled_quantity=filled,
                status=Order.Status.PARTIALLY_FILLED if filled else Order.Status.OPEN,
            )
        )
    return Order.objects.bulk_create(orders, batch_size=2000)


def query_counts(market: Market, django_assert_max_num_queries) -> dict[str, int]:
    counts = {}
    market.refresh_from_db()
    taker = factories.trader(EUR="1000")
    for name, read in {
        "order_book": lambda: selectors.order_book(market=market, depth=50),
        "market_stats": lambda: selectors.market_stats(market=market),
        "recent_trades": lambda: selectors.recent_trades(market=market),
        "best_prices": lambda: best_prices(market.pk),
        "order_estimate": lambda: selectors.order_estimate(
            holder=taker,
            request=order_request_parse(
                market_code=market.code, side="BUY", order_type="MARKET", quantity=3
            ),
        ),
        "cached_order_book": lambda: selectors.cached_order_book(market_code=market.code),
    }.items():
        with django_assert_max_num_queries(10) as captured:
            read()
        counts[name] = len(captured.captured_queries)
    return counts


def test_queries_do_not_grow_with_the_number_of_resting_orders(cea, django_assert_max_num_queries):
    owner = factories.trader()
    seller = factories.trader(CEA=100)
    buyer = factories.trader(EUR="10000")
    trade(seller, buyer, "11.50", 2)
    trade(seller, buyer, "11.40", 1, aggressor="SELL")

    bulk_resting_orders(cea, owner, 10, seed=1)
    Market.objects.filter(pk=cea.pk).update(book_version=100)
    small = query_counts(cea, django_assert_max_num_queries)
    assert small == {
        "order_book": 2,
        "market_stats": 2,
        "recent_trades": 1,
        "best_prices": 1,
        "order_estimate": 3,  # the market (parsing), the book as far as the walk reads, balances
        "cached_order_book": 3,  # a miss: the version, then both sides
    }

    bulk_resting_orders(cea, owner, 9_990, seed=2)
    Market.objects.filter(pk=cea.pk).update(book_version=101)
    assert Order.objects.filter(market=cea, status__in=Order.RESTING).count() == 10_000
    assert query_counts(cea, django_assert_max_num_queries) == small

    # And the aggregate is right at that size.
    cea.refresh_from_db()
    book = selectors.order_book(market=cea, depth=selectors.MAX_DEPTH)
    expected = {"BUY": {}, "SELL": {}}
    for side, price, quantity, filled in Order.objects.filter(
        market=cea, status__in=Order.RESTING
    ).values_list("side", "price", "quantity", "filled_quantity"):
        slot = expected[side].setdefault(price, [0, 0])
        slot[0] += quantity - filled
        slot[1] += 1
    assert {lv.price: [lv.quantity, lv.order_count] for lv in book.bids} == expected["BUY"]
    assert {lv.price: [lv.quantity, lv.order_count] for lv in book.asks} == expected["SELL"]
    assert len(book.bids) == len(book.asks) == 100
    top = selectors.order_book(market=cea, depth=50)
    assert levels(top.bids) == levels(book.bids[:50])
    assert levels(top.asks) == levels(book.asks[:50])
    assert (top.best_bid, top.best_ask) == (D("10.99"), D("12.00"))
    assert best_prices(cea.pk) == (D("10.99"), D("12.00"), D("11.40"))


@pytest.mark.postgres  # PostgreSQL query plans
def test_the_book_reads_its_levels_as_rows_not_the_orders_resting_at_them(cea):
    """Each side's best levels are `depth` rows of `BookLevel` by its key, however many
    orders rest at them (at 500,000 resting orders the best 50 levels of a side held
    20,000 orders, which the book used to sum: 5-7 ms a side from the index alone)."""
    owner = factories.trader()
    for seed in range(5):  # 10,000 orders over 100 prices a side: 100 at each level
        bulk_resting_orders(cea, owner, 2_000, seed=seed)
    # And a deep book: 900 more levels a side, one order each.
    Order.objects.bulk_create(
        Order(
            owner=owner,
            market=cea,
            side=side,
            order_type=Order.Type.LIMIT,
            price=price,
            quantity=1,
        )
        for step in range(1, 901)
        for side, price in (
            ("BUY", D("10.00") - step * cea.tick_size),
            ("SELL", D("12.99") + step * cea.tick_size),
        )
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE market_booklevel")
    for side in (Order.Side.BUY, Order.Side.SELL):
        plan = selectors.price_levels(market=cea, side=side, depth=50).explain(analyze=True)
        assert re.search(r"Index Scan (Backward )?using book_level_key", plan), plan
        assert re.search(r"book_level_key .*actual time=\S+ rows=50 loops=1", plan), plan
        assert "market_order" not in plan, plan


@pytest.mark.postgres  # PostgreSQL query plans
def test_own_levels_read_the_users_orders_not_the_whole_book(cea):
    """A user's own levels come from their own orders, not from a walk of the whole side
    filtered on the owner: the poll of a deep book must not grow with the book."""
    for seed in range(50):  # a book of many owners, as a market's is
        bulk_resting_orders(cea, factories.trader(), 200, seed=seed)
    me = factories.trader()
    bulk_resting_orders(cea, me, 6, seed=99)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE market_order")
    for side in (Order.Side.BUY, Order.Side.SELL):
        levels = selectors.own_price_levels(market=cea, side=side, owner_user_id=me.user_id)
        # With a LIMIT, PostgreSQL walks the side in price order filtering on the owner
        # once the book is deep (500,000 orders: 290 ms a side); a test book that deep is
        # too slow to build, so the query's shape is pinned, and the plan at this size.
        assert "LIMIT" not in str(levels.query)
        plan = levels.explain()
        assert "order_owner_idx" in plan and "order_book_idx" not in plan, plan
        mine = Order.objects.filter(owner=me, side=side)
        assert sum(count for _, _, count in levels) == mine.count() == 3
        prices = [price for price, _, _ in levels]
        assert prices == sorted(prices, reverse=side == Order.Side.BUY)


# --- The estimate is the placement -------------------------------------------------------
# The order-entry estimate and `order_place` call the same placement core; what this
# shows is that the estimate's unlocked reads give it the same book and balances as the
# placement's locked ones, for random books (the trader's own orders among them, partly
# filled orders, fee-free market makers) and requests of every order type.

ESTIMATE_EXAMPLES = 500
BOOK_PRICES = [D("13.90"), D("13.95"), D("13.98"), D("13.99")]  # bids; asks mirror them
ASK_PRICES = [D("28.00") - price for price in BOOK_PRICES]  # 14.10, 14.05, 14.02, 14.01
REQUEST_PRICES = [D("13.85"), D("13.95"), D("13.99"), D("14.00"), D("14.02"), D("14.10")]


@st.composite
def estimate_scenarios(draw):
    owners = st.sampled_from(["taker", "other", "maker"])
    resting = st.tuples(
        owners,
        st.sampled_from(["BUY", "SELL"]),
        st.integers(min_value=0, max_value=3),
        st.integers(min_value=1, max_value=8),
    )
    book = draw(st.lists(resting, max_size=10))
    # Trades that leave resting orders partly filled before the order arrives.
    sweeps = draw(
        st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 6)), max_size=2)
    )
    side = draw(st.sampled_from(["BUY", "SELL"]))
    order_type = draw(st.sampled_from(["LIMIT", "MARKET"]))
    fields = {"quantity": draw(st.integers(min_value=1, max_value=30))}
    if order_type == "LIMIT":
        fields["price"] = draw(st.sampled_from(REQUEST_PRICES))
        fields["time_in_force"] = draw(st.sampled_from(["GTC", "IOC", "FOK"]))
        fields["post_only"] = fields["time_in_force"] == "GTC" and draw(st.booleans())
    elif side == "BUY" and draw(st.booleans()):
        fields = {"eur_budget": draw(st.sampled_from(["5.00", "14.05", "100.00", "350.00"]))}
    funds = {
        "EUR": draw(st.sampled_from(["0", "30", "200", "100000"])),
        "CEA": draw(st.sampled_from(["0", "4", "100"])),
    }
    return book, sweeps, side, order_type, fields, funds


def _balances_of(holder) -> dict[str, D]:
    return dict(holder.balances.values_list("asset", "available"))


@settings(
    max_examples=ESTIMATE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=estimate_scenarios())
def test_the_estimate_is_what_placing_the_order_does(cea, scenario):
    book, sweeps, side, order_type, fields, funds = scenario
    with transaction.atomic():
        taker = factories.trader(**{a: v for a, v in funds.items() if v != "0"})
        holders = {
            "taker": taker,
            "other": factories.trader(EUR="100000", CEA=100),
            "maker": factories.market_maker("ASSET_HOLDER", CEA=100).holder,
        }
        provider = factories.market_maker("LIQUIDITY_PROVIDER", EUR="100000").holder
        for owner, resting_side, level, quantity in book:
            holder = holders[owner]
            if owner == "maker" and resting_side == "BUY":
                holder = provider  # a market maker bids from a provider's EUR
            prices = BOOK_PRICES if resting_side == "BUY" else ASK_PRICES
            with contextlib.suppress(ValidationError):  # the taker may lack the funds
                place(holder, resting_side, price=prices[level], quantity=quantity)
        sweeper = factories.trader(EUR="100000", CEA=100)
        for sweep_side, quantity in sweeps:
            with contextlib.suppress(ValidationError):  # an empty side
                place(sweeper, sweep_side, order_type="MARKET", quantity=quantity)

        request = order_request_parse(
            market_code="CEA", side=side, order_type=order_type, **fields
        )
        estimate = selectors.order_estimate(holder=taker, request=request)
        event(f"walk stopped: {estimate.walk.result.stop}")
        event(f"time in force: {request.time_in_force}, post-only: {request.post_only}")
        refusal = estimate.refusal
        event(
            "outcome: "
            + (" ".join(refusal.message.split()[:3]) if refusal else estimate.order.status)
        )
        counts = (Order.objects.count(), Trade.objects.count())
        try:
            placement = order_place(owner=taker, request=request)
        except ValidationError as refused:
            assert estimate.refusal is not None, (estimate.order, refused)
            key = "__all__" if estimate.refusal.field == "__all__" else estimate.refusal.field
            assert refused.message_dict == {key: [estimate.refusal.message]}
            assert (Order.objects.count(), Trade.objects.count()) == counts
        else:
            assert estimate.refusal is None, estimate.refusal
            placed = placement.order
            stored = Order.objects.get(pk=placed.pk)
            expected = estimate.order._replace(id=placed.pk)
            assert tuple(getattr(stored, name) for name in expected._fields) == expected
            made = [
                (trade.buy_order_id, trade.sell_order_id, trade.price, trade.quantity,
                 trade.buyer_fee, trade.seller_fee)
                for trade in Trade.objects.filter(pk__in=[t.pk for t in placement.trades])
                .order_by("pk")
            ]  # fmt: skip
            promised = [
                (t.buy_order_id or placed.pk, t.sell_order_id or placed.pk, t.price,
                 t.quantity, t.buyer_fee, t.seller_fee)
                for t in estimate.trades
            ]  # fmt: skip
            assert made == promised
            after = _balances_of(taker)
            assert (after["EUR"], after["CEA"]) == (
                estimate.eur_after,
                estimate.certificates_after,
            )
            assert placement.message == estimate.message(placed.pk)
            fill_average = None if not placed.filled_quantity else estimate.walk.result
            assert stored.average_price == (
                None
                if fill_average is None
                else (fill_average.filled_value / fill_average.filled_quantity).quantize(
                    D("0.0001"), rounding=ROUND_HALF_UP
                )
            )
            assert_all_invariants()
        transaction.set_rollback(True)


# --- Grouped book and the trader's own levels ---------------------------------------------------


def test_a_grouped_book_merges_levels_into_steps_of_the_tick(cea):
    maker = factories.trader(EUR="100000", CEA=1000)
    for price, quantity in (("13.99", 5), ("13.96", 2), ("13.94", 1), ("13.90", 4)):
        place(maker, "BUY", price=price, quantity=quantity)
    for price, quantity in (("14.01", 3), ("14.05", 4), ("14.06", 6)):
        place(maker, "SELL", price=price, quantity=quantity)
    book = selectors.cached_order_book(market_code="CEA", grouping=5)
    assert levels(book.bids) == [(D("13.95"), 7, 2), (D("13.90"), 5, 2)]
    assert levels(book.asks) == [(D("14.05"), 7, 2), (D("14.10"), 6, 1)]
    # Two grouped levels a side need up to 2 × 5 tick prices: all four bids are read.
    assert levels(selectors.order_book(market=cea, depth=1, grouping=5).bids) == [
        (D("13.95"), 7, 2)
    ]
    assert selectors.cached_order_book(market_code="CEA").grouping == 1
    with pytest.raises(ValueError):
        selectors.cached_order_book(market_code="CEA", grouping=3)


def test_own_levels_are_the_traders_own_resting_orders_grouped_like_the_book(
    cea, django_assert_num_queries
):
    alice, bob = factories.trader(EUR="10000", CEA=100), factories.trader(EUR="10000", CEA=100)
    place(alice, "BUY", price="13.97", quantity=3)
    place(alice, "BUY", price="13.96", quantity=2)
    place(alice, "SELL", price="14.20", quantity=4)
    place(bob, "BUY", price="13.99", quantity=9)
    cancelled = place(alice, "BUY", price="13.50", quantity=1).order
    order_cancel(order_id=cancelled.pk, user=alice.user)
    cea.refresh_from_db()

    def own(user, **options):
        return selectors.own_book_levels(
            user_id=user.user_id, market_code="CEA", version=cea.book_version, **options
        )

    with django_assert_num_queries(3):
        mine = own(alice)
    assert mine.bids == {D("13.97"): 3, D("13.96"): 2} and mine.asks == {D("14.20"): 4}
    with django_assert_num_queries(0):  # cached for this book version
        assert own(alice) == mine
    grouped = own(alice, grouping=10)
    assert grouped.bids == {D("13.90"): 5} and grouped.asks == {D("14.20"): 4}
    # The prices are those the book shows, so the marks land on its levels.
    book = selectors.cached_order_book(market_code="CEA", grouping=10)
    assert set(grouped.bids) <= {lv.price for lv in book.bids}
    assert {str(price) for price in mine.bids} == {"13.97", "13.96"}
    assert own(bob).bids == {D("13.99"): 9}
    assert not own(factories.trader())
    assert own(alice, depth=1).bids == {D("13.97"): 3}


# --- Candles -------------------------------------------------------------------------------------


def test_candles_from_trades_agree_with_the_core_aggregation(cea):
    from market.core.candles import TradePoint, aggregate_candles

    seller, buyer = factories.trader(CEA=1000), factories.trader(EUR="100000")
    ages = [timedelta(hours=7), timedelta(minutes=44), timedelta(minutes=43, seconds=10)]
    ages += [timedelta(minutes=12), timedelta(minutes=11), timedelta(seconds=20)]
    for index, age in enumerate(ages):
        made = trade(seller, buyer, D("13.50") + D(index % 4) / 10, 1 + index, aggressor="BUY")
        backdate(made, age)
    trade(factories.trader(EUA=10), factories.trader(EUR="10000"), "90.00", 1, market="EUA")
    now = timezone.now()
    raw = [
        TradePoint(*row)
        for row in Trade.objects.filter(market=cea)
        .order_by("id")
        .values_list("created_at", "price", "quantity")
    ]
    for interval in ("1m", "5m", "1h", "1d"):
        series = selectors.candles(market=cea, interval=interval, slots=60, now=now)
        expected = aggregate_candles(raw, interval=interval, now=now, slots=60)
        assert series.candles == expected.candles, interval
        assert (series.start, series.end, series.market_code) == (
            expected.start,
            expected.end,
            "CEA",
        )
        assert series.last_trade_id == Trade.objects.filter(market=cea).latest("id").pk
    five = selectors.candles(market=cea, interval="5m", slots=12, now=now)
    # The 7-hour-old trade is before the window: its price opens it, flat.
    assert five.candles[0].trade_count == 0 and five.candles[0].close == D("13.50")
    assert five.volume == sum(range(2, 7))
    assert selectors.market_last_trade_id(market_code="cea") == five.last_trade_id
    assert selectors.market_last_trade_id(market_code="XYZ") is None
    with pytest.raises(ValueError):
        selectors.candles(market=cea, interval="2m")


def test_candles_without_trades(cea):
    series = selectors.candles(market=cea, interval="1h")
    assert series.is_empty and series.last_trade_id is None
    assert selectors.market_last_trade_id(market_code="CEA") == 0
    assert series.slots == selectors.CANDLE_SLOTS


def bulk_trades(market: Market, count: int, *, seed: int) -> None:
    """`count` trades spread over the last three days, straight into the table."""
    rng = random.Random(seed)
    maker, taker = factories.trader(CEA=10), factories.trader(EUR="100")
    buy = Order.objects.create(
        owner=taker, market=market, side="BUY", order_type="LIMIT", price=D("14"), quantity=1
    )
    sell = Order.objects.create(
        owner=maker, market=market, side="SELL", order_type="LIMIT", price=D("14"), quantity=1
    )
    now = timezone.now()
    made = Trade.objects.bulk_create(
        Trade(
            market=market,
            buy_order=buy,
            sell_order=sell,
            buyer=taker,
            seller=maker,
            price=D("13.00") + D(rng.randrange(200)) / 100,
            quantity=rng.randint(1, 50),
            value=D("1"),
            aggressor_side="BUY",
        )
        for _ in range(count)
    )
    for trade_row in made:
        trade_row.created_at = now - timedelta(seconds=rng.randrange(3 * 86400))
    Trade.objects.bulk_update(made, ["created_at"], batch_size=2000)


@pytest.mark.parametrize("interval", ["1m", "5m", "1h", "1d"])
def test_candle_queries_and_rows_do_not_grow_with_the_trades(
    cea, interval, django_assert_num_queries
):
    bulk_trades(cea, 10, seed=1)
    with django_assert_num_queries(3):
        selectors.candles(market=cea, interval=interval)
    bulk_trades(cea, 3000, seed=2)
    with django_assert_num_queries(3) as captured:
        series = selectors.candles(market=cea, interval=interval)
    assert len(series.candles) <= selectors.CANDLE_SLOTS
    # The volumes are those of the window's trades, counted in the database.
    in_window = Trade.objects.filter(market=cea, created_at__gte=series.start)
    assert series.volume == sum(in_window.values_list("quantity", flat=True))
    assert sum(c.trade_count for c in series.candles) == in_window.count()
    assert "GROUP BY" in captured.captured_queries[1]["sql"]


# --- The amend estimate is the amendment ---------------------------------------------------

AMEND_EXAMPLES = 150


@st.composite
def amend_scenarios(draw):
    book, sweeps, *_ = draw(estimate_scenarios())
    side = draw(st.sampled_from(["BUY", "SELL"]))
    resting = (draw(st.sampled_from([0, 1, 2, 3])), draw(st.integers(2, 12)))
    post_only = draw(st.booleans())
    price = draw(st.one_of(st.none(), st.sampled_from(REQUEST_PRICES)))
    # The new open quantity, relative to what is open: shrinking is as likely as not.
    quantity = draw(st.one_of(st.none(), st.integers(-11, -1), st.integers(0, 8)))
    funds = {"EUR": draw(st.sampled_from(["200", "400", "100000"])), "CEA": "40"}
    return book, sweeps, side, resting, post_only, price, quantity, funds


@settings(
    max_examples=AMEND_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=amend_scenarios())
def test_the_amend_estimate_is_what_amending_does(cea, scenario):
    book, sweeps, side, (level, size), post_only, price, quantity, funds = scenario
    with transaction.atomic():
        taker = factories.trader(**funds)
        # The order to amend rests first: it is first in line at its price.
        prices = BOOK_PRICES if side == "BUY" else ASK_PRICES
        try:
            order = place(taker, side, price=prices[level], quantity=size, post_only=post_only)
        except ValidationError:  # not enough EUR for it
            transaction.set_rollback(True)
            return
        order = order.order
        others = {
            "taker": taker,
            "other": factories.trader(EUR="100000", CEA=100),
            "maker": factories.trader(EUR="100000", CEA=100),
        }
        for owner, resting_side, at, amount in book:
            resting_prices = BOOK_PRICES if resting_side == "BUY" else ASK_PRICES
            with contextlib.suppress(ValidationError):
                place(others[owner], resting_side, price=resting_prices[at], quantity=amount)
        sweeper = factories.trader(EUR="100000", CEA=100)
        for sweep_side, amount in sweeps:
            with contextlib.suppress(ValidationError):
                place(sweeper, sweep_side, order_type="MARKET", quantity=amount)
        order.refresh_from_db()
        if not order.is_resting:
            transaction.set_rollback(True)
            return
        if quantity is not None:
            quantity = max(1, order.remaining_quantity + quantity)
        estimate = selectors.amend_estimate(
            holder=taker, order=order, price=price, quantity=quantity
        )
        event("keeps priority" if estimate.keeps_priority else "replaced")
        event(f"refused: {estimate.refusal.message[:30]}" if estimate.refusal else "amended")
        counts = (Order.objects.count(), Trade.objects.count(), LedgerEntry.objects.count())
        try:
            amended = order_amend(
                order_id=order.pk, user=taker.user, price=price, quantity=quantity
            )
        except ValidationError as refused:
            assert estimate.refusal is not None, refused
            key = "__all__" if estimate.refusal.field == "__all__" else estimate.refusal.field
            assert refused.message_dict == {key: [estimate.refusal.message]}
            counts_after = (
                Order.objects.count(), Trade.objects.count(), LedgerEntry.objects.count()
            )  # fmt: skip
            assert counts_after == counts
            stored = Order.objects.get(pk=order.pk)
            assert (stored.status, stored.quantity, stored.reserved) == (
                order.status, order.quantity, order.reserved
            )  # fmt: skip
        else:
            assert estimate.refusal is None, estimate.refusal
            assert amended.keeps_priority == estimate.keeps_priority
            assert amended.message == estimate.message(amended.order.pk)
            after = _balances_of(taker)
            assert (after["EUR"], after["CEA"]) == (
                estimate.eur_after, estimate.certificates_after
            )  # fmt: skip
            stored = Order.objects.get(pk=amended.order.pk)
            if estimate.keeps_priority:
                assert stored.pk == order.pk
                assert (stored.quantity, stored.reserved) == estimate.shrunk[1:]
            else:
                expected = estimate.placement.order._replace(id=stored.pk)
                assert tuple(getattr(stored, name) for name in expected._fields) == expected
                old = Order.objects.get(pk=order.pk)
                assert (old.status, old.status_reason, old.reserved) == (
                    Order.Status.CANCELLED, f"replaced by #{stored.pk}", 0
                )  # fmt: skip
                assert stored.post_only == order.post_only
                made = [
                    (t.price, t.quantity, t.buyer_fee, t.seller_fee)
                    for t in Trade.objects.filter(pk__in=[t.pk for t in amended.trades])
                    .order_by("pk")
                ]  # fmt: skip
                promised = [
                    (t.price, t.quantity, t.buyer_fee, t.seller_fee)
                    for t in estimate.placement.trades
                ]
                assert made == promised
            assert_all_invariants()
        transaction.set_rollback(True)
