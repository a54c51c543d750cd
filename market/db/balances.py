"""Statements of balances and the ledger: the one balance lock, balance reads, and the
writes of changed balances and ledger entries.

Every writer locks the balance rows it touches in one `SELECT … ORDER BY id FOR UPDATE`,
after any market lock, so two transactions never wait on each other in a cycle: named rows
by `BalanceLock`; a liquidity execute, which picks its rows by a condition (the funded
makers of a market), by the same kind of statement in `liquidity.services`. On SQLite the
IMMEDIATE transaction serialises writers.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

from market.core.money import EUR
from market.core.placement import Move
from market.db import pipeline
from market.db.bulk import insert_rows, update_rows
from market.models import Balance, Holder, LedgerEntry, MarketMakerClient

_BALANCE_COLUMNS = ("id", "holder_id", "asset", "available", "locked")


@dataclass(slots=True)
class BalanceRow:
    """One balance row as read under its lock; changed in memory, then written."""

    id: int
    holder_id: int
    asset: str
    available: Decimal
    locked: Decimal


class BalanceLock:
    """The statement that locks balance rows, sent at once; `rows()` reads what it locked.
    Splitting the two lets a pipelined transaction send the lock together with other
    statements in one round trip.

    The rows locked: the (holder, asset) pairs of the cross product of the holders and
    assets named, plus, with `house`, the house fee account's EUR row (`house_id` tells
    which holder that is)."""

    def __init__(self, keys: Iterable[tuple[int, str]], *, house: bool = False):
        self.keys = frozenset(keys)
        holder_ids = sorted({holder_id for holder_id, _ in self.keys})
        assets = sorted({asset for _, asset in self.keys})
        quote = connection.ops.quote_name
        balances, holders = quote(Balance._meta.db_table), quote(Holder._meta.db_table)

        holders_in, holder_params = pipeline.any_of("holder_id", holder_ids, db_type="bigint")
        assets_in, asset_params = pipeline.any_of("asset", assets, db_type="varchar")
        where = f"({holders_in} AND {assets_in})"
        # The house row: its kind is a literal, which the partial unique index on it needs.
        house_id = f"(SELECT id FROM {holders} WHERE kind = '{Holder.Kind.HOUSE.value}')"
        house_flag = "FALSE"
        if house:
            where += f" OR (holder_id = {house_id} AND asset = '{EUR}')"
            house_flag = f"holder_id = {house_id}"
        self.house = house
        self.house_id: int | None = None
        self._statement = pipeline.send(
            f"SELECT {', '.join(_BALANCE_COLUMNS)}, {house_flag} FROM {balances} "
            f"WHERE {where} ORDER BY id{pipeline.for_update()}",
            [*holder_params, *asset_params],
            model=Balance,
            columns=_BALANCE_COLUMNS,
        )

    def rows(self) -> list[BalanceRow]:
        """The locked rows; LookupError if a pair named has no row."""
        rows = []
        for *values, is_house in self._statement.rows():
            row = BalanceRow(*values)
            rows.append(row)
            if is_house:
                self.house_id = row.holder_id
        if self.house and self.house_id is None:
            raise LookupError("No balance row for the house fee account")
        missing = self.keys - {(row.holder_id, row.asset) for row in rows}
        if missing:
            raise LookupError(f"No balance rows for {sorted(missing)}")
        return rows


def active_maker_balances(funded: Sequence[tuple[str, str]], *, lock: bool) -> pipeline.Statement:
    """The balance rows of active market makers in each (maker type, asset) of `funded`
    (one pair at least), in primary-key order, as (balance id, holder id, asset,
    available, locked, maker id, maker code, maker name, maker type); with `lock`, the
    balance rows are locked (only them, not the makers'). One statement, plain rows: a
    liquidity operation reads a thousand of them under its locks. Sent at once, read by
    its `.rows()`: in a pipelined transaction it travels with the statements around it."""
    quote = connection.ops.quote_name
    balances = quote(Balance._meta.db_table)
    makers = quote(MarketMakerClient._meta.db_table)
    pairs = " OR ".join(["(m.mm_type = %s AND b.asset = %s)"] * len(funded))
    lock_sql = pipeline.for_update(of=("b",)) if lock else ""
    return pipeline.send(
        f"SELECT b.id, b.holder_id, b.asset, b.available, b.locked, m.id, m.code, m.name, "
        f"m.mm_type FROM {balances} b JOIN {makers} m ON m.holder_id = b.holder_id "
        f"WHERE m.is_active AND ({pairs}) ORDER BY b.id{lock_sql}",
        [value for pair in funded for value in pair],
        model=Balance,
        columns=_BALANCE_COLUMNS,
    )


def available_of(holder_id: int) -> dict[str, Decimal]:
    """A holder's available balance by asset, unlocked. One statement."""
    return {
        asset: available
        for asset, available in Balance.objects.filter(holder_id=holder_id).values_list(
            "asset", "available"
        )
    }


def write_balances(rows: Sequence[BalanceRow]) -> None:
    update_rows(
        Balance, ("available", "locked"), [(row.id, row.available, row.locked) for row in rows]
    )


def insert_ledger(moves: Sequence[Move], *, now: datetime) -> None:
    """One immutable ledger entry per move, in one statement."""
    insert_rows(
        LedgerEntry,
        LEDGER_COLUMNS,
        moves,
        constants={"created_at": now},
    )


LEDGER_COLUMNS = (
    "holder_id",
    "asset",
    "kind",
    "available_delta",
    "locked_delta",
    "order_id",
    "trade_id",
    "ticket_id",
)
