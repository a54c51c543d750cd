"""The batch placement core: a batch decides its orders exactly as placing them one by
one would, however the orders arrive and whatever their funds."""

from dataclasses import replace
from decimal import Decimal as D
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from market.core import placement as core
from market.core.batch import BatchBook, Entry, balance_keys, settle_batch, walk_batch
from market.core.matching import BookOrder
from market.core.money import EUR
from market.core.placement import Account, MarketRules, OrderRequest, still_reserved

CEA = MarketRules(7, "CEA", D("0.01"), D("0.005"), D("0.004"), True, D("14.00"))
# The guardrails on: a band of ±0.2 % (13.98 to 14.02), market orders within 0.1 % of the
# best price they meet, at most €250 an order.
GUARDED = replace(CEA, price_band_pct=D("0.2"), slippage_pct=D("0.1"), max_order_value=D("250"))
HOUSE_ID = 99
HOLDERS = (1, 2, 3, 4)
ACCOUNTS = {1: core.TRADER, 2: core.TRADER, 3: core.MARKET_MAKER, 4: core.TRADER}
FIRST_NEW_ID = 1_000  # the batch's ids follow the resting orders', as a sequence's do


def resting(order_id, side, price, quantity, owner):
    fee_rate = core.fee_rate_for(CEA, ACCOUNTS[owner], side)
    reserved = still_reserved(side=side, price=price, remaining=quantity, fee_rate=fee_rate)
    return BookOrder(order_id, owner, price, quantity, 0, D("0"), fee_rate, D("0"), reserved)


def priority(side):
    return lambda order: (-order.price if side == "BUY" else order.price, order.order_id)


class Database:
    """The book and balances as committed: what a batch reads, and what it writes."""

    def __init__(self, orders, balances):
        self.sides = {"BUY": {}, "SELL": {}}
        for side, order in orders:
            self.sides[side][order.order_id] = order
        self.balances = dict(balances)

    def side(self, side):
        return sorted(self.sides[side].values(), key=priority(side))

    def batch_books(self):
        """Both sides as a batch reads them: lazily, from the start of the batch."""
        return {side: BatchBook(side, iter(self.side(side))) for side in ("BUY", "SELL")}

    def write(self, inserted, updated, moves):
        for row in inserted:
            if row.status in core.RESTING:
                book_order = BookOrder(
                    row.id, row.owner_id, row.price, row.quantity, row.filled_quantity,
                    row.filled_value, row.fee_rate, row.fee_paid, row.reserved,
                )  # fmt: skip
                self.sides[row.side][row.id] = book_order
        for update in updated:
            side = "BUY" if update.id in self.sides["BUY"] else "SELL"
            if update.status in core.RESTING:
                self.sides[side][update.id] = replace(
                    self.sides[side][update.id],
                    filled_quantity=update.filled_quantity,
                    filled_value=update.filled_value,
                    fee_paid=update.fee_paid,
                    reserved=update.reserved,
                )
            else:
                del self.sides[side][update.id]
        for move in moves:
            key = (move.holder_id, move.asset)
            self.balances[key] = self.balances.get(key, D("0")) + move.available


def one_by_one(database, entries, trade_ids, market=CEA):
    """The reference: each order placed alone, as `order_place` does, and written."""
    outcomes = []
    for entry in entries:
        other = "SELL" if entry.request.side == "BUY" else "BUY"
        walk = core.match_order(
            market=market, account=entry.account, request=entry.request, book=database.side(other)
        )
        mine = {a: v for (h, a), v in database.balances.items() if h == entry.account.holder_id}
        ids = [next(trade_ids) for _ in walk.result.fills] if walk.refusal is None else None
        outcome = core.settle(
            walk, available=mine, house_id=HOUSE_ID, order_id=entry.order_id, trade_ids=ids
        )
        outcomes.append(outcome)
        if outcome.refusal is None:
            database.write([outcome.order], list(outcome.maker_updates), outcome.moves)
    return outcomes


def in_batches(database, entries, trade_ids, market=CEA):
    """The batches a market lock would see: all the waiting orders, then those left."""
    outcomes, batches = [], 0
    while entries:
        batches += 1
        walks = walk_batch(market=market, entries=entries, books=database.batch_books())
        keys = balance_keys(walks)
        locked = {key: database.balances.get(key, D("0")) for key in keys}
        batch = settle_batch(
            entries=entries,
            walks=walks,
            available=locked,
            house_id=HOUSE_ID,
            trade_ids=lambda n: [next(trade_ids) for _ in range(n)],
        )
        assert {(m.holder_id, m.asset) for m in batch.moves} <= keys | {(HOUSE_ID, EUR)}
        assert len(batch.outcomes) + len(batch.left) == len(entries)
        inserted, updated = batch.rows()
        database.write(inserted, updated, batch.moves)
        outcomes += batch.outcomes
        entries = batch.left
    return outcomes, batches


# Few prices, so that orders meet at the same price often (time priority decides).
prices = st.integers(1397, 1403).map(lambda cents: D(cents) / 100)


@st.composite
def orders(draw, market):
    side = draw(st.sampled_from(["BUY", "SELL"]))
    order_type = draw(st.sampled_from(["LIMIT", "LIMIT", "MARKET"]))
    time_in_force = draw(st.sampled_from(["GTC", "GTC", "IOC", "FOK"]))
    post_only = order_type == "LIMIT" and time_in_force == "GTC" and draw(st.booleans())
    if order_type == "MARKET":
        time_in_force = draw(st.sampled_from(["IOC"]))
    budget = None
    if order_type == "MARKET" and side == "BUY" and draw(st.booleans()):
        budget = D(draw(st.integers(10, 600)))
    quantity = None if budget is not None else draw(st.integers(1, 25))
    price = draw(prices) if order_type == "LIMIT" else None
    owner = draw(st.sampled_from(HOLDERS))
    request = OrderRequest(
        market, side, order_type, quantity, price, budget, None, time_in_force, post_only
    )
    assert core.time_in_force_refusal(order_type, time_in_force, post_only) is None
    return Account(owner, ACCOUNTS[owner]), request


@st.composite
def markets(draw):
    """A book that does not cross, the holders' balances (some short), the orders."""
    book = []
    for number in range(draw(st.integers(0, 12))):
        side = draw(st.sampled_from(["BUY", "SELL"]))
        cents = draw(st.integers(1397, 1399) if side == "BUY" else st.integers(1401, 1403))
        quantity, owner = draw(st.integers(1, 15)), draw(st.sampled_from(HOLDERS))
        book.append((side, resting(number + 1, side, D(cents) / 100, quantity, owner)))
    # Mostly enough: a refusal for funds ends a batch, and the rest is the next batch's.
    rules = draw(st.sampled_from([CEA, GUARDED]))
    funds = st.sampled_from([D("0"), D("40"), D("300")] + [D("100000")] * 5)
    balances = {}
    for holder in HOLDERS:
        balances[(holder, EUR)] = draw(funds)
        balances[(holder, "CEA")] = draw(st.sampled_from([D("0"), D("8")] + [D("10000")] * 4))
    placed = draw(st.lists(orders(rules), min_size=1, max_size=10))
    entries = [
        Entry(account, request, FIRST_NEW_ID + index)
        for index, (account, request) in enumerate(placed)
    ]
    return rules, book, balances, entries


def decided(outcome):
    return (outcome.order, outcome.trades, outcome.maker_updates, outcome.moves,
            outcome.refusal, outcome.notes, outcome.message(outcome.order.id))  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(market=markets())
def test_a_batch_places_its_orders_as_placing_them_one_by_one_would(market):
    rules, book, balances, entries = market
    alone, batched = Database(book, balances), Database(book, balances)
    expected = one_by_one(alone, entries, count(5_000), market=rules)
    outcomes, _ = in_batches(batched, entries, count(5_000), market=rules)
    assert [decided(o) for o in outcomes] == [decided(o) for o in expected]
    # The book and every balance end as one by one: the rows written are the same.
    assert batched.side("BUY") == alone.side("BUY")
    assert batched.side("SELL") == alone.side("SELL")
    assert batched.balances == alone.balances


def limit(side, price, quantity, owner):
    request = OrderRequest(CEA, side, "LIMIT", quantity, D(price), None)
    return Account(owner, ACCOUNTS[owner]), request


def test_an_order_resting_from_earlier_in_the_batch_is_met_after_older_orders_at_its_price():
    book = [("SELL", resting(1, "SELL", D("14.01"), 5, owner=3))]
    rich = {(h, a): D("100000") for h in HOLDERS for a in (EUR, "CEA")}
    placed = [
        limit("SELL", "14.01", 5, owner=4),  # rests behind order 1
        limit("SELL", "14.00", 5, owner=2),  # rests ahead of both: a better price
        limit("BUY", "14.01", 12, owner=1),  # takes 1000 @14.00, then 1 and 1001 @14.01
    ]
    entries = [Entry(a, r, FIRST_NEW_ID + i) for i, (a, r) in enumerate(placed)]
    books = Database(book, rich).batch_books()
    walks = walk_batch(market=CEA, entries=entries, books=books)
    batch = settle_batch(entries=entries, walks=walks, available=rich, house_id=HOUSE_ID)
    trades = [(t.sell_order_id, t.price, t.quantity) for t in batch.trades]
    assert trades == [(1001, D("14.00"), 5), (1, D("14.01"), 5), (1000, D("14.01"), 2)]
    inserted, updated = batch.rows()
    # Inserted in their state at the end of the batch: 1001 filled, 1000 partly.
    states = {row.id: (row.status, row.filled_quantity) for row in inserted}
    assert states == {1000: ("PARTIALLY_FILLED", 2), 1001: ("FILLED", 5), 1002: ("FILLED", 12)}
    assert [(u.id, u.status) for u in updated] == [(1, "FILLED")]


def test_an_order_short_of_funds_ends_the_batch_and_leaves_the_rest_for_the_next():
    book = [("SELL", resting(1, "SELL", D("14.01"), 5, owner=3))]
    balances = {(h, a): D("100000") for h in HOLDERS for a in (EUR, "CEA")}
    balances[(1, EUR)] = D("10")
    placed = [
        limit("BUY", "14.01", 5, owner=1),  # cannot pay: refused
        limit("BUY", "14.01", 5, owner=2),  # walked as if order 1000 had taken the ask
    ]
    entries = [Entry(a, r, FIRST_NEW_ID + i) for i, (a, r) in enumerate(placed)]
    database = Database(book, balances)
    walks = walk_batch(market=CEA, entries=entries, books=database.batch_books())
    assert walks[1].result.fills == []  # the ask was assumed taken by order 1000
    batch = settle_batch(entries=entries, walks=walks, available=balances, house_id=HOUSE_ID)
    assert [o.refusal.field for o in batch.outcomes] == ["quantity"]
    assert "Insufficient EUR" in batch.outcomes[0].refusal.message
    assert batch.left == entries[1:] and batch.rows() == ([], [])
    # The next batch, of what was left, takes the ask.
    outcomes, batches = in_batches(database, batch.left, count(1))
    assert batches == 1 and outcomes[0].order.status == "FILLED"


def test_the_book_is_read_only_as_far_as_the_walks_go():
    read = []

    def side():
        for number in range(1, 1_000):
            read.append(number)
            yield resting(number, "SELL", D("14.01"), 5, owner=3)

    entries = [Entry(*limit("BUY", "14.01", 7, owner=1), FIRST_NEW_ID)]
    books = {"BUY": BatchBook("BUY", iter(())), "SELL": BatchBook("SELL", side())}
    walk_batch(market=CEA, entries=entries, books=books)
    assert read == [1, 2]
