"""The only code that changes a balance.

Locking rules, the same for every writer so two transactions never wait on each other in
a cycle:

1. Market rows first, in primary-key order (`Market.objects.select_for_update()`), when the
   transaction changes a market's book.
2. Then balance rows, all in one `SELECT … FOR UPDATE` ordered by primary key
   (`BalanceSheet.lock`).

Every change is applied to the locked rows in memory, checked (nothing below zero), and
written by `BalanceSheet.flush()`: one UPDATE for the balances and one INSERT for the
ledger entries, however many moves the transaction made. Each move writes one immutable
`LedgerEntry`, so a balance always equals the sum of its entries.

On SQLite, `select_for_update` is a no-op; the IMMEDIATE transaction mode serialises
writers instead.
"""

from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from market import sql
from market.bulk import insert_rows, update_rows
from market.models import CERTIFICATES, Asset, Balance, Holder, LedgerEntry, TicketLog
from market.money import format_eur, format_quantity, parse_amount, parse_quantity
from market.services.audit import ticket_record

ZERO = Decimal("0")
Kind = LedgerEntry.Kind


class InsufficientFunds(ValidationError):
    def __init__(self, *, asset: str, needed: Decimal, available: Decimal, field=None):
        self.asset, self.needed, self.available = asset, needed, available
        text = (
            f"Insufficient {asset}: {describe(asset, needed)} needed, "
            f"{describe(asset, available)} available."
        )
        super().__init__({field or NON_FIELD_ERRORS: text})


def describe(asset: str, amount: Decimal) -> str:
    return format_eur(amount) if asset == Asset.EUR else f"{format_quantity(amount)} {asset}"


_BALANCE_COLUMNS = ("id", "holder_id", "asset", "available", "locked")


class BalanceLock:
    """The statement that locks balance rows, sent at once; `sheet()` reads what it
    locked. Splitting the two lets a pipelined transaction (`market.sql`) send the lock
    together with other statements in one round trip.

    Every row is locked by one `SELECT … ORDER BY id FOR UPDATE`: (holder, asset) pairs
    of the cross product of the holders and assets named, plus, with `house`, the house
    fee account's EUR row."""

    def __init__(self, keys: Iterable[tuple[int, str]], *, house: bool = False):
        self.keys = set(keys)
        holder_ids = sorted({holder_id for holder_id, _ in self.keys})
        assets = sorted({asset for _, asset in self.keys})
        quote = connection.ops.quote_name
        balances, holders = quote(Balance._meta.db_table), quote(Holder._meta.db_table)

        def placeholders(values):
            return ", ".join(["%s"] * len(values))

        where = (
            f"(holder_id IN ({placeholders(holder_ids)}) AND asset IN ({placeholders(assets)}))"
            if self.keys
            else "FALSE"  # nothing named (an empty IN list is not SQL)
        )
        # The house row: its kind is a literal, which the partial unique index on it needs.
        house_id = f"(SELECT id FROM {holders} WHERE kind = '{Holder.Kind.HOUSE.value}')"
        house_flag = "FALSE"
        if house:
            where += f" OR (holder_id = {house_id} AND asset = '{Asset.EUR.value}')"
            house_flag = f"holder_id = {house_id}"
        self.house = house
        self._rows = sql.send(
            f"SELECT {', '.join(_BALANCE_COLUMNS)}, {house_flag} FROM {balances} "
            f"WHERE {where} ORDER BY id{sql.for_update()}",
            [*holder_ids, *assets],
            model=Balance,
            columns=_BALANCE_COLUMNS,
        )

    def sheet(self) -> "BalanceSheet":
        """The locked rows as a `BalanceSheet`; LookupError if a pair has no row."""
        rows, house_ids = [], []
        for *values, is_house in self._rows.rows():
            rows.append(Balance.from_db(connection.alias, _BALANCE_COLUMNS, values))
            if is_house:
                house_ids.append(values[1])
        sheet = BalanceSheet(rows)
        if self.house:
            if not house_ids:
                raise LookupError("No balance row for the house fee account")
            sheet.house_id = house_ids[0]
        missing = self.keys - sheet._rows.keys()
        if missing:
            raise LookupError(f"No balance rows for {sorted(missing)}")
        return sheet


class BalanceSheet:
    """Balance rows locked for one transaction, and the moves made on them."""

    def __init__(self, rows: Iterable[Balance]):
        self._rows = {(row.holder_id, row.asset): row for row in rows}
        self._dirty: dict[int, Balance] = {}
        # (holder_id, asset, kind, available, locked, order, trade, ticket); the causes may
        # be saved objects or objects saved later in the transaction, resolved at flush.
        self._moves: list[tuple] = []
        self.house_id: int | None = None  # set by `lock(..., house=True)`

    @classmethod
    def lock(cls, keys: Iterable[tuple[int, str]], *, house: bool = False) -> "BalanceSheet":
        """Lock the balance rows of these (holder id, asset) pairs, in primary-key order.

        With `house`, the house fee account's EUR row is locked too, by the same statement
        and in the same order (it is one more row of the one primary-key-ordered lock),
        and its holder id is `sheet.house_id`: no separate query for the house."""
        return BalanceLock(keys, house=house).sheet()

    def balance(self, holder_id: int, asset: str) -> Balance:
        return self._rows[(holder_id, asset)]

    def available(self, holder_id: int, asset: str) -> Decimal:
        return self._rows[(holder_id, asset)].available

    def _move(
        self,
        holder_id: int,
        asset: str,
        kind: str,
        *,
        available: Decimal = ZERO,
        locked: Decimal = ZERO,
        order=None,
        trade=None,
        ticket=None,
        field=None,
    ) -> None:
        if not available and not locked:
            return
        row = self._rows[(holder_id, asset)]
        if row.available + available < 0:
            raise InsufficientFunds(
                asset=asset, needed=-available, available=row.available, field=field
            )
        if row.locked + locked < 0:
            # Locked funds back open orders; going below zero is a bug, not a user error.
            raise AssertionError(f"Locked {asset} of holder {holder_id} would go negative")
        row.available += available
        row.locked += locked
        self._dirty[row.pk] = row
        self._moves.append((holder_id, asset, kind, available, locked, order, trade, ticket))

    def deposit(self, holder_id: int, asset: str, amount: Decimal, *, ticket) -> None:
        self._move(holder_id, asset, Kind.DEPOSIT, available=amount, ticket=ticket)

    def withdraw(self, holder_id: int, asset: str, amount: Decimal, *, ticket) -> None:
        self._move(
            holder_id, asset, Kind.WITHDRAWAL, available=-amount, ticket=ticket, field="amount"
        )

    def reserve(self, holder_id: int, asset: str, amount: Decimal, *, order, field=None) -> None:
        """Move available funds behind an order."""
        self._move(
            holder_id,
            asset,
            Kind.RESERVE,
            available=-amount,
            locked=amount,
            order=order,
            field=field,
        )

    def reserve_many(self, reservations: Iterable[tuple[int, str, Decimal, object]]) -> None:
        """`reserve` for many orders at once: (holder id, asset, amount, order) each.

        Writes one ledger entry per order, as `reserve` would, but checks and applies each
        balance once with the sum of its orders, so the result is the same as reserving
        them one by one; if a balance cannot cover its orders' sum, InsufficientFunds
        (needed: that sum) is raised and nothing is applied."""
        totals: dict[tuple[int, str], Decimal] = {}
        moves = []
        for holder_id, asset, amount, order in reservations:
            if not amount:
                continue
            key = (holder_id, asset)
            totals[key] = totals.get(key, ZERO) + amount
            moves.append((holder_id, asset, Kind.RESERVE, -amount, amount, order, None, None))
        rows = [(self._rows[key], total) for key, total in totals.items()]
        for (holder_id, asset), (row, total) in zip(totals, rows, strict=True):
            if row.available - total < 0:
                raise InsufficientFunds(asset=asset, needed=total, available=row.available)
            if row.locked + total < 0:
                raise AssertionError(f"Locked {asset} of holder {holder_id} would go negative")
        for row, total in rows:
            row.available -= total
            row.locked += total
            self._dirty[row.pk] = row
        self._moves.extend(moves)

    def release(self, holder_id: int, asset: str, amount: Decimal, *, order) -> None:
        """Give back what an order no longer needs."""
        self._move(holder_id, asset, Kind.RELEASE, available=amount, locked=-amount, order=order)

    def settle_fill(self, *, trade, house_id: int) -> None:
        """Settle one trade from the buyer's and seller's reservations.

        EUR buyer → seller, certificates seller → buyer, both fees to the house.
        """
        certificate, value, quantity = trade.market.code, trade.value, Decimal(trade.quantity)
        buyer, seller = trade.buyer_id, trade.seller_id
        self._move(buyer, Asset.EUR, Kind.TRADE_DEBIT, locked=-value, trade=trade)
        self._move(buyer, Asset.EUR, Kind.FEE, locked=-trade.buyer_fee, trade=trade)
        self._move(buyer, certificate, Kind.TRADE_CREDIT, available=quantity, trade=trade)
        self._move(seller, certificate, Kind.TRADE_DEBIT, locked=-quantity, trade=trade)
        self._move(seller, Asset.EUR, Kind.TRADE_CREDIT, available=value, trade=trade)
        self._move(seller, Asset.EUR, Kind.FEE, available=-trade.seller_fee, trade=trade)
        self._move(
            house_id,
            Asset.EUR,
            Kind.FEE,
            available=trade.buyer_fee + trade.seller_fee,
            trade=trade,
        )

    def flush(self) -> None:
        """Write the changed balances and the ledger entries: two statements."""
        update_rows(Balance, list(self._dirty.values()), ["available", "locked"])
        insert_rows(
            LedgerEntry,
            LEDGER_COLUMNS,
            [
                (holder, asset, kind, available, locked, _pk(order), _pk(trade), _pk(ticket))
                for holder, asset, kind, available, locked, order, trade, ticket in self._moves
            ],
            returning_ids=False,
            constants={"created_at": timezone.now()},
        )
        self._dirty.clear()
        self._moves = []


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


def _pk(cause) -> int | None:
    if cause is None or type(cause) is int:
        return cause
    if cause.pk is None:
        raise ValueError(f"{cause!r} must be saved before the ledger is flushed")
    return cause.pk


def parse_transfer(asset: str, amount) -> Decimal:
    """Validate a deposit or withdrawal amount: cents for EUR, whole certificates otherwise."""
    if asset not in Asset.values:
        raise ValidationError({"asset": f"Unknown asset {asset!r}: choose EUR, CEA or EUA."})
    if asset in CERTIFICATES:
        return Decimal(parse_quantity(amount, field="amount"))
    return parse_amount(amount, field="amount")


def _transfer(
    *, kind: str, holder: Holder, asset: str, amount, actor, ip, note, market_maker=None
) -> TicketLog:
    amount = parse_transfer(asset, amount)
    action = "DEPOSIT" if kind == Kind.DEPOSIT else "WITHDRAWAL"
    with transaction.atomic():
        sheet = BalanceSheet.lock([(holder.pk, asset)])
        row = sheet.balance(holder.pk, asset)
        before = {"asset": asset, "available": str(row.available), "locked": str(row.locked)}
        if kind == Kind.WITHDRAWAL and row.available < amount:
            raise InsufficientFunds(
                asset=asset, needed=amount, available=row.available, field="amount"
            )
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
                "available": str(row.available + (amount if action == "DEPOSIT" else -amount)),
                "locked": str(row.locked),
            },
            tags=["funding", asset],
            ip=ip,
        )
        if kind == Kind.DEPOSIT:
            sheet.deposit(holder.pk, asset, amount, ticket=ticket)
        else:
            sheet.withdraw(holder.pk, asset, amount, ticket=ticket)
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
        kind=Kind.DEPOSIT,
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
        kind=Kind.WITHDRAWAL,
        holder=holder,
        asset=asset,
        amount=amount,
        actor=actor,
        ip=ip,
        note=note,
        market_maker=market_maker,
    )
