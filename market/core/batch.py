"""Several orders placed under one market lock, one after another. Pure: no ORM, no I/O.

One order a market lock caps matching on one market at what one placement's round trips,
Python and statements cost (docs/benchmarks.md, § 2). Placing the orders that wait on
the lock together, as one batch, pays those once for the batch. This module decides such
a batch exactly as placing its orders one by one would: each order walks the book as
the batch's earlier orders left it, and is settled against the balances they left.

The steps, each made of the placement core's own (`market.core.placement`):

1. `walk_batch`: every order's walk, in arrival order, over `BatchBook`s (the book read
   at the start of the batch, with what the batch's earlier orders did to it), each
   earlier order assumed placed. The walks name every balance the batch touches, to be
   locked at once.
2. `settle_batch`: the walks settled in order against the locked balances, each order
   seeing what the earlier ones moved. An order refused for its funds changes nothing,
   while the orders after it walked over a book it was assumed to change: the batch ends
   with it, and they are `left` for a later batch.
3. The `BatchOutcome`'s rows: the orders to insert, each in its state at the end of the
   batch (an order resting from earlier in the batch and filled by a later one is
   inserted filled), the last state of each order that rested before the batch and
   traded in it, the trades and the ledger moves, in order.

Order ids are drawn ahead, with the batch: an order resting from earlier in the batch is
a maker by its id like any other.

Not used by `order_place` yet: it places one order a lock (`market.services.orders`).
"""

from bisect import insort
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from market.core.matching import BUY, BookOrder, opposite
from market.core.money import ZERO
from market.core.placement import (
    RESTING,
    Account,
    MarketRules,
    Move,
    OrderRequest,
    OrderRow,
    OrderUpdate,
    Outcome,
    TradeRow,
    Walk,
    match_order,
    settle,
)

_INFINITY = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class Entry:
    """One order of a batch: who places it, what, and the id drawn for it under the market
    lock, with the batch. The batch's ids must be above every id resting in the book it
    reads (the batch's orders rest behind the older ones at their price, as the book's
    order by price and id will have them): an entry `left` for a later batch keeps its
    id only if nothing rested on that market in between."""

    account: Account
    request: OrderRequest
    order_id: int


class BatchBook:
    """One side of a market's book as a batch's earlier orders left it, in priority order
    (best price first; at a price, the orders resting before the batch by id, then the
    batch's own in arrival order).

    `read` is that side as it stood when the batch began, in priority order, and is read
    lazily: only as far as the walks go, once."""

    def __init__(self, side: str, read: Iterable[BookOrder]):
        self._bids = side == BUY
        self._source: Iterator[BookOrder] | None = iter(read)
        self._read: list[BookOrder] = []
        self._state: dict[int, BookOrder | None] = {}  # after the batch's orders; None: gone
        self._added: list[tuple[tuple[Decimal, int], BookOrder]] = []
        self._arrivals = 0

    def _key(self, price: Decimal) -> Decimal:
        return -price if self._bids else price

    def _before_batch(self) -> Iterator[BookOrder]:
        index = 0
        while True:
            if index == len(self._read):
                if self._source is None:
                    return
                order = next(self._source, None)
                if order is None:
                    self._source = None
                    return
                self._read.append(order)
            yield self._read[index]
            index += 1

    def __iter__(self) -> Iterator[BookOrder]:
        added = iter(list(self._added))
        pending = next(added, None)
        for order in self._before_batch():
            order = self._state.get(order.order_id, order)
            if order is None:
                continue
            # The batch's orders rest after every older order at their price.
            while pending is not None and pending[0][0] < self._key(order.price):
                yield pending[1]
                pending = next(added, None)
            yield order
        while pending is not None:
            yield pending[1]
            pending = next(added, None)

    def fill(self, maker: BookOrder, update: OrderUpdate) -> None:
        """`maker` (as a walk met it) after `update`: still resting, or gone."""
        after = (
            replace(
                maker,
                filled_quantity=update.filled_quantity,
                filled_value=update.filled_value,
                fee_paid=update.fee_paid,
                reserved=update.reserved,
            )
            if update.status in RESTING
            else None
        )
        for index, (key, order) in enumerate(self._added):
            if order.order_id == maker.order_id:
                if after is None:
                    del self._added[index]
                else:
                    self._added[index] = (key, after)
                return
        self._state[maker.order_id] = after

    def rest(self, order: OrderRow) -> None:
        """A batch order that rests, behind every order at its price."""
        self._arrivals += 1
        resting = BookOrder(
            order.id, order.owner_id, order.price, order.quantity, order.filled_quantity,
            order.filled_value, order.fee_rate, order.fee_paid, order.reserved,
        )  # fmt: skip
        insort(self._added, ((self._key(order.price), self._arrivals), resting))


class _Unbounded(Mapping):
    """Available funds no order exceeds: a walk assumed placed."""

    def __getitem__(self, asset):
        return _INFINITY

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def get(self, asset, default=None):
        return _INFINITY


def _apply(books: Mapping[str, BatchBook], outcome: Outcome) -> None:
    """What a placed order did to the book: its fills, and its rest."""
    side = outcome.request.side
    for fill, update in zip(outcome.walk.result.fills, outcome.maker_updates, strict=True):
        books[opposite(side)].fill(fill.maker, update)
    if outcome.rests:
        books[side].rest(outcome.order)


def walk_batch(
    *, market: MarketRules, entries: Sequence[Entry], books: Mapping[str, BatchBook]
) -> list[Walk]:
    """Step one: each entry's walk, in order, over the book as the earlier entries left it
    (each assumed placed, unless its own walk refused it). `market` is the market as read
    under its lock; `books` its two sides ("BUY", "SELL"), as `BatchBook`s of the book read
    at the start of the batch. Leaves `books` as the whole batch would leave them."""
    walks = []
    unbounded = _Unbounded()
    for entry in entries:
        walk = match_order(
            market=market,
            account=entry.account,
            request=entry.request,
            book=books[opposite(entry.request.side)],
        )
        walks.append(walk)
        if walk.refusal is None:
            _apply(books, settle(walk, available=unbounded, order_id=entry.order_id))
    return walks


def balance_keys(walks: Iterable[Walk]) -> frozenset[tuple[int, str]]:
    """(holder id, asset) of every balance the batch's walks change, but the house's."""
    return frozenset().union(*(walk.balance_keys for walk in walks))


@dataclass
class BatchOutcome:
    """What a batch does: each decided entry's `Outcome` (refused or not), in order, the
    `left` entries (after an order refused for its funds: for a later batch), and the rows
    to write."""

    outcomes: list[Outcome] = field(default_factory=list)
    left: list[Entry] = field(default_factory=list)

    @property
    def placed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.refusal is None]

    @property
    def trades(self) -> list[TradeRow]:
        return [trade for outcome in self.placed for trade in outcome.trades]

    @property
    def moves(self) -> list[Move]:
        return [move for outcome in self.placed for move in outcome.moves]

    def rows(self) -> tuple[list[OrderRow], list[OrderUpdate]]:
        """(the orders to insert, in their state at the end of the batch; the updates of
        the orders that rested before it, the last one of each)."""
        inserted = {outcome.order.id: outcome.order for outcome in self.placed}
        updated: dict[int, OrderUpdate] = {}
        for outcome in self.placed:
            for update in outcome.maker_updates:
                if update.id in inserted:
                    inserted[update.id] = inserted[update.id]._replace(
                        filled_quantity=update.filled_quantity,
                        filled_value=update.filled_value,
                        fee_paid=update.fee_paid,
                        reserved=update.reserved,
                        status=update.status,
                        status_reason=update.status_reason,
                    )
                else:
                    updated[update.id] = update
        return list(inserted.values()), list(updated.values())


def settle_batch(
    *,
    entries: Sequence[Entry],
    walks: Sequence[Walk],
    available: Mapping[tuple[int, str], Decimal],
    house_id: int | None = None,
    trade_ids: Callable[[int], Iterable[int]] | None = None,
) -> BatchOutcome:
    """Step two: the walks of `walk_batch`, settled in order. `available` is every
    balance the walks touch, (holder id, asset) → available amount, as read under the
    balance locks; each entry sees it as the earlier entries' moves left it.
    `trade_ids(n)` gives the ids of an entry's n trades, in order.

    Ends with the first entry refused for its funds; the entries after it are `left`.
    An entry its walk refused is decided (refused) and the batch goes on: its walk
    changed nothing."""
    result = BatchOutcome()
    balances = dict(available)
    for index, (entry, walk) in enumerate(zip(entries, walks, strict=True)):
        taker = entry.account.holder_id
        mine = {asset: amount for (holder, asset), amount in balances.items() if holder == taker}
        ids = trade_ids(len(walk.result.fills)) if trade_ids and walk.refusal is None else None
        outcome = settle(
            walk, available=mine, house_id=house_id, order_id=entry.order_id, trade_ids=ids
        )
        result.outcomes.append(outcome)
        if outcome.refusal is not None:
            if walk.refusal is None:  # its funds: the later walks assumed it placed
                result.left = list(entries[index + 1 :])
                return result
            continue
        for move in outcome.moves:
            key = (move.holder_id, move.asset)
            balances[key] = balances.get(key, ZERO) + move.available
    return result
