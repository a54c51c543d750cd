"""The only code that changes a balance.

Locking rules, the same for every writer so two transactions never wait on each other in
a cycle:

1. Market rows first, in primary-key order, when the transaction changes a market's book
   (withdrawing a liquidity operation locks the operation's row before them, bulk funding
   the market makers' rows, by primary key).
2. Then balance rows, all in one `SELECT … FOR UPDATE` ordered by primary key
   (`BalanceSheet.lock`, `market.db.balances.BalanceLock`).

Creating a holder or a market takes a no-key lock of the house holder's row instead
(`market.services.holders`); it locks no balance.

Every change is a `Move` (`market.core.placement`): `BalanceSheet.apply` checks a batch of
moves on the locked rows (nothing below zero) and applies all or none of them;
`BalanceSheet.flush` writes one UPDATE for the balances and one INSERT for the ledger
entries, however many moves the transaction made. Each move is one immutable
`LedgerEntry`, so a balance always equals the sum of its entries.

On SQLite, row locks do not exist; the IMMEDIATE transaction mode serialises writers.
"""

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone

from market.core.money import ZERO, describe, parse_asset_amount
from market.core.placement import DEPOSIT, WITHDRAWAL, Move
from market.db.balances import BalanceLock, BalanceRow, insert_ledger, write_balances
from market.models import Holder, TicketLog
from market.selectors import asset_codes
from market.services.audit import ticket_record


class InsufficientFunds(ValidationError):
    def __init__(self, *, asset: str, needed: Decimal, available: Decimal, field=None):
        self.asset, self.needed, self.available = asset, needed, available
        text = (
            f"Insufficient {asset}: {describe(asset, needed)} needed, "
            f"{describe(asset, available)} available."
        )
        super().__init__({field or NON_FIELD_ERRORS: text})


class BalanceSheet:
    """Balance rows locked for one transaction, and the moves made on them."""

    def __init__(self, rows: Iterable[BalanceRow], *, house_id: int | None = None):
        self._rows = {(row.holder_id, row.asset): row for row in rows}
        self._dirty: dict[int, BalanceRow] = {}
        self._moves: list[Move] = []
        self.house_id = house_id

    @classmethod
    def lock(cls, keys: Iterable[tuple[int, str]], *, house: bool = False) -> "BalanceSheet":
        """Lock, in primary-key order, the balance rows of every holder and asset the
        (holder id, asset) pairs name (their cross product: naming A's EUR and B's CEA
        locks A's CEA and B's EUR too); with `house`, the house fee account's EUR row
        too (`sheet.house_id`)."""
        lock = BalanceLock(keys, house=house)
        rows = lock.rows()
        return cls(rows, house_id=lock.house_id)

    def balance(self, holder_id: int, asset: str) -> BalanceRow:
        return self._rows[(holder_id, asset)]

    def covers(self, keys: Iterable[tuple[int, str]]) -> bool:
        """Whether every (holder id, asset) pair is one of the locked rows."""
        return all(key in self._rows for key in keys)

    def available(self, holder_id: int, asset: str) -> Decimal:
        return self._rows[(holder_id, asset)].available

    def available_of(self, holder_id: int) -> dict[str, Decimal]:
        """One holder's locked available balances by asset."""
        return {
            asset: row.available
            for (holder, asset), row in self._rows.items()
            if holder == holder_id
        }

    def apply(self, moves: Iterable[Move], *, field: str | None = None) -> None:
        """Apply a batch of moves, or none of them: each balance must end with nothing
        below zero. A short available balance raises InsufficientFunds (keyed by `field`);
        a locked one going negative is a bug, not a user error."""
        moves = list(moves)
        change: dict[tuple[int, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        for move in moves:
            delta = change[(move.holder_id, move.asset)]
            delta[0] += move.available
            delta[1] += move.locked
        rows = []
        for key, (available, locked) in change.items():
            row = self._rows[key]
            if row.available + available < 0:
                raise InsufficientFunds(
                    asset=row.asset, needed=-available, available=row.available, field=field
                )
            if row.locked + locked < 0:
                raise AssertionError(
                    f"Locked {row.asset} of holder {row.holder_id} would go negative"
                )
            rows.append((row, available, locked))
        for row, available, locked in rows:
            row.available += available
            row.locked += locked
            self._dirty[row.id] = row
        self._moves += moves

    def flush(self) -> None:
        """Write the changed balances and the ledger entries: two statements."""
        write_balances(list(self._dirty.values()))
        insert_ledger(self._moves, now=timezone.now())
        self._dirty.clear()
        self._moves = []


def parse_transfer(asset: str, amount) -> Decimal:
    """Validate a deposit or withdrawal: a known asset; EUR to the cent, certificates whole."""
    codes = asset_codes()
    if asset not in codes:
        raise ValidationError({"asset": f"Unknown asset {asset!r}: choose {', '.join(codes)}."})
    return parse_asset_amount(asset, amount)


def _transfer(
    *, kind: str, holder: Holder, asset: str, amount, actor, ip, note, market_maker=None
) -> TicketLog:
    amount = parse_transfer(asset, amount)
    action = "DEPOSIT" if kind == DEPOSIT else "WITHDRAWAL"
    with transaction.atomic():
        sheet = BalanceSheet.lock([(holder.pk, asset)])
        row = sheet.balance(holder.pk, asset)
        before = {"asset": asset, "available": str(row.available), "locked": str(row.locked)}
        if kind == WITHDRAWAL and row.available < amount:
            raise InsufficientFunds(
                asset=asset, needed=amount, available=row.available, field="amount"
            )
        change = amount if kind == DEPOSIT else -amount
        ticket = ticket_record(
            action_type=action,
            entity_type="Holder",
            entity_id=holder.pk,
            user=actor,
            market_maker=market_maker,
            payload={"asset": asset, "amount": str(amount), "note": note},
            before=before,
            after={
                "asset": asset,
                "available": str(row.available + change),
                "locked": str(row.locked),
            },
            tags=["funding", asset],
            ip=ip,
        )
        sheet.apply(
            [Move(holder.pk, asset, kind, change, ZERO, ticket_id=ticket.pk)], field="amount"
        )
        sheet.flush()
    return ticket


def deposit(
    *,
    holder: Holder,
    asset: str,
    amount,
    actor=None,
    ip: str | None = None,
    note: str = "",
    market_maker=None,
) -> TicketLog:
    """Credit `amount` of `asset` to the holder's available balance; audited.

    Locks the one balance row. Raises ValidationError (field "amount" or "asset") on bad
    input, changing nothing.
    """
    return _transfer(
        kind=DEPOSIT,
        holder=holder,
        asset=asset,
        amount=amount,
        actor=actor,
        ip=ip,
        note=note,
        market_maker=market_maker,
    )


def withdraw(
    *,
    holder: Holder,
    asset: str,
    amount,
    actor=None,
    ip: str | None = None,
    note: str = "",
    market_maker=None,
) -> TicketLog:
    """Debit `amount` of `asset` from the holder's available balance (locked funds stay
    behind their orders); audited. Raises InsufficientFunds when available is short."""
    return _transfer(
        kind=WITHDRAWAL,
        holder=holder,
        asset=asset,
        amount=amount,
        actor=actor,
        ip=ip,
        note=note,
        market_maker=market_maker,
    )
