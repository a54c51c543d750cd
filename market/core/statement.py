"""A trader's fills and account statement: who made a trade, and the running balances of a
period. Pure: plain values in, plain values out.

A trade has a maker (the order that was resting in the book) and a taker (the incoming
order, whose side is the trade's `aggressor_side`). One holder's fill is therefore a taker
fill when the holder's side is the aggressor side, else a maker (passive) fill.

A statement lists, for each asset, the opening balance at the start of the period, each
ledger entry of the period with the balance after it, and the closing balance. The ledger
is the truth: the closing balance is the opening balance plus every change of the period,
for available and locked alike (`statement_lines` computes it so; the tests check it
against the balances).
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from market.core.matching import BUY, SELL, opposite

MAKER, TAKER = "MAKER", "TAKER"
SIDES = (BUY, SELL)
ROLES = (MAKER, TAKER)
ZERO = Decimal("0")


def role_of(side: str, aggressor_side: str) -> str:
    """MAKER or TAKER, for the holder on `side` of a trade whose incoming order was on
    `aggressor_side`."""
    return TAKER if side == aggressor_side else MAKER


def fill_kinds(*, side: str | None = None, role: str | None = None) -> list[tuple[str, str]]:
    """The (holder's side, trade's aggressor side) pairs a filter on side and role (None:
    either) lets through: what a query matches on, since the role is not a column."""
    sides = [side] if side else list(SIDES)
    kinds = []
    for own in sides:
        other = opposite(own)
        for aggressor in (own, other):
            if role is None or role_of(own, aggressor) == role:
                kinds.append((own, aggressor))
    return kinds


@dataclass(frozen=True)
class Position:
    """What a holder has of one asset at one moment."""

    available: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.available + self.locked

    def moved(self, available: Decimal, locked: Decimal) -> "Position":
        return Position(self.available + available, self.locked + locked)


@dataclass(frozen=True)
class LedgerLine:
    """One ledger entry as a statement lists it."""

    entry_id: int
    asset: str
    created_at: datetime
    kind: str
    available_delta: Decimal
    locked_delta: Decimal
    order_id: int | None = None
    trade_id: int | None = None
    ticket: str | None = None


OPENING, ENTRY, CLOSING = "OPENING", "ENTRY", "CLOSING"


@dataclass(frozen=True)
class StatementLine:
    """An opening balance, an entry (with the balance after it) or a closing balance."""

    asset: str
    line: str  # OPENING, ENTRY or CLOSING
    at: datetime
    balance: Position
    entry: LedgerLine | None = None


def statement_lines(
    *,
    assets: Sequence[str],
    opening: Mapping[str, Position],
    entries: Iterable[LedgerLine],
    start: datetime,
    end: datetime,
) -> Iterator[StatementLine]:
    """The statement of a period [start, end): for every asset of `assets`, in that order,
    its opening balance (`opening`, zero if absent), its entries with the running balance,
    then its closing balance.

    `entries` are read once, lazily (a large period streams): they must come grouped by
    asset in `assets` order, oldest first within an asset. An entry of another asset, or
    out of that order, raises ValueError.
    """
    rank = {asset: index for index, asset in enumerate(assets)}
    next_asset = 0  # the first asset of `assets` not opened yet
    current: str | None = None
    position = Position()

    def empty(upto: int) -> Iterator[StatementLine]:
        for asset in assets[next_asset:upto]:
            balance = opening.get(asset, Position())
            yield StatementLine(asset, OPENING, start, balance)
            yield StatementLine(asset, CLOSING, end, balance)

    for entry in entries:
        if entry.asset != current:
            index = rank.get(entry.asset)
            if index is None or index < next_asset:
                raise ValueError(f"entry {entry.entry_id} of {entry.asset} is out of order")
            if current is not None:
                yield StatementLine(current, CLOSING, end, position)
            yield from empty(index)
            current, next_asset = entry.asset, index + 1
            position = opening.get(current, Position())
            yield StatementLine(current, OPENING, start, position)
        position = position.moved(entry.available_delta, entry.locked_delta)
        yield StatementLine(current, ENTRY, entry.created_at, position, entry)
    if current is not None:
        yield StatementLine(current, CLOSING, end, position)
    yield from empty(len(assets))
