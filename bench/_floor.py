"""The database floor of a liquidity execute: the very rows one execute wrote, written
again by PostgreSQL's fastest bulk methods, with no application code.

`capture(url, ticket_id)` reads, right after an execute and before anything else moves,
every row that execute wrote (see `docs/benchmarks.md` § 3 for how that list was
checked against a query log):

- its audit ticket (`market_ticketlog`, 1 row) and its `LiquidityOperation` (1 row);
- its resting orders (`market_order`, one per planned order);
- their ledger reservations (`market_ledgerentry`, one per order);
- the makers' balance rows it changed (`market_balance`, their new available and locked);
- the market's book version bump (`market_market`, 1 row).

`Floor.run(method)` then writes them all again in one transaction on a plain psycopg
connection, into the production tables (same indexes, CHECKs and deferred foreign keys,
checked at COMMIT), with fresh ids reserved and every statement's data prepared before the
timer starts: "unnest" sends one set-based statement per table with one text array per
column; "copy" sends the orders and the ledger entries by `COPY … FROM STDIN` (text
format, the payload built beforehand) and the rest as "unnest" does (COPY cannot update
rows; one-row tables gain nothing from it). `Floor.undo()` removes what a run wrote and
puts the balances back, outside the timing, so the next execute meets the same market.
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg


def _pg(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _columns(cur, table: str) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    )
    return cur.fetchall()


def _text(value) -> str:
    """A value as PostgreSQL's text input (unquoted)."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _copy_field(value) -> str:
    if value is None:
        return "\\N"
    text = _text(value)
    return (
        text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy_payload(rows) -> bytes:
    return "".join("\t".join(map(_copy_field, row)) + "\n" for row in rows).encode()


def _array_element(value) -> str:
    if value is None:
        return "NULL"
    text = _text(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_literal(values) -> str:
    return "{" + ",".join(map(_array_element, values)) + "}"


@dataclass
class Table:
    name: str
    columns: list[tuple[str, str]]  # (name, type) as written
    rows: list[tuple]  # ordered as `columns`

    def unnest(self) -> tuple[str, list]:
        """One INSERT … SELECT: a column holding one value in every row is sent once (as
        the execute's own statements do), every other one as one text array."""
        scalars, arrays, scalar_params, array_params = [], [], [], []
        for (name, kind), values in zip(self.columns, zip(*self.rows, strict=True), strict=True):
            if values.count(values[0]) == len(values):
                scalars.append((name, kind))
                value = values[0]
                scalar_params.append(None if value is None else _text(value))
            else:
                arrays.append((name, kind))
                array_params.append(_array_literal(values))
        names = ", ".join(f'"{name}"' for name, _ in [*arrays, *scalars])
        selected = ", ".join(
            [*(["v.*"] if arrays else []), *(f"%s::text::{kind}" for _, kind in scalars)]
        )
        if arrays:
            source = "FROM unnest(" + ", ".join(f"%s::text::{k}[]" for _, k in arrays) + ") v"
        else:
            source = f"FROM generate_series(1, {len(self.rows)})"
        sql = f"INSERT INTO {self.name} ({names}) SELECT {selected} {source}"
        return sql, [*scalar_params, *array_params]

    def copy(self) -> tuple[str, bytes]:
        names = ", ".join(f'"{name}"' for name, _ in self.columns)
        return f"COPY {self.name} ({names}) FROM STDIN", _copy_payload(self.rows)


class Floor:
    """The rows of one execute (`capture`), written again on demand."""

    def __init__(self, url: str, ticket_pk: int):
        self.conn = psycopg.connect(_pg(url))
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._capture(cur, ticket_pk)

    def _select(self, cur, table: str, where: str, params, *, skip=()):
        columns = [c for c in _columns(cur, table) if c[0] not in skip]
        names = ", ".join(f'"{name}"' for name, _ in columns)
        cur.execute(f"SELECT {names} FROM {table} WHERE {where} ORDER BY id", params)
        return columns, cur.fetchall()

    def _capture(self, cur, ticket_pk: int) -> None:
        self.ticket_cols, tickets = self._select(cur, "market_ticketlog", "id = %s", [ticket_pk])
        self.ticket = tickets[0]
        self.op_cols, ops = self._select(
            cur, "liquidity_liquidityoperation", "ticket_id = %s", [ticket_pk]
        )
        self.operation = ops[0]
        self.order_cols, self.orders = self._select(
            cur, "market_order", "ticket_id = %s", [ticket_pk]
        )
        order_ids = [row[0] for row in self.orders]
        # The ledger's ids come from its identity column, as the execute's do.
        self.ledger_cols, self.ledger = self._select(
            cur,
            "market_ledgerentry",
            "order_id = ANY(%s) AND kind = 'RESERVE'",
            [order_ids],
            skip=("id",),
        )
        cur.execute(
            "SELECT b.id, b.available, b.locked FROM market_balance b "
            "WHERE (b.holder_id, b.asset) IN (SELECT holder_id, asset FROM market_ledgerentry "
            "WHERE order_id = ANY(%s)) ORDER BY b.id",
            [order_ids],
        )
        self.balances = cur.fetchall()  # as the execute left them
        market_at = [name for name, _ in self.order_cols].index("market_id")
        (self.market_id,) = {row[market_at] for row in self.orders}
        self.counts = {
            "market_ticketlog": 1,
            "liquidity_liquidityoperation": 1,
            "market_order": len(self.orders),
            "market_ledgerentry": len(self.ledger),
            "market_balance (updated)": len(self.balances),
            "market_market (updated)": 1,
        }

    def _reserve(self, cur, sequence_of: str, count: int) -> int:
        """The first of `count` consecutive fresh ids of `sequence_of`'s table."""
        cur.execute(
            "SELECT setval(s, nextval(s) + %s - 1) - %s + 1 "
            "FROM pg_get_serial_sequence(%s, 'id') s",
            [count, count, sequence_of],
        )
        return cur.fetchone()[0]

    def prepare(self, before: list[tuple]) -> None:
        """Fresh ids for one run and every statement's data; `before` is the balance rows
        (id, available, locked) as they are now, which `undo` puts back."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            ticket_id = self._reserve(cur, "market_ticketlog", 1)
            op_id = self._reserve(cur, "liquidity_liquidityoperation", 1)
            first_order = self._reserve(cur, "market_order", len(self.orders))
        order_map = {row[0]: first_order + i for i, row in enumerate(self.orders)}
        tnames = [n for n, _ in self.ticket_cols]
        ticket = list(self.ticket)
        ticket[tnames.index("id")] = ticket_id
        created = ticket[tnames.index("created_at")]
        ticket[tnames.index("ticket_id")] = f"TKT-{created.year}-{ticket_id:06d}"
        onames = [n for n, _ in self.op_cols]
        operation = list(self.operation)
        operation[onames.index("id")] = op_id
        operation[onames.index("ticket_id")] = ticket_id
        rnames = [n for n, _ in self.order_cols]
        rid, rticket = rnames.index("id"), rnames.index("ticket_id")
        orders = []
        for row in self.orders:
            row = list(row)
            row[rid] = order_map[row[rid]]
            row[rticket] = ticket_id
            orders.append(tuple(row))
        lnames = [n for n, _ in self.ledger_cols]
        lorder = lnames.index("order_id")
        ledger = []
        for row in self.ledger:
            row = list(row)
            row[lorder] = order_map[row[lorder]]
            ledger.append(tuple(row))
        self.tables = {
            "ticket": Table("market_ticketlog", self.ticket_cols, [tuple(ticket)]),
            "operation": Table("liquidity_liquidityoperation", self.op_cols, [tuple(operation)]),
            "orders": Table("market_order", self.order_cols, orders),
            "ledger": Table("market_ledgerentry", self.ledger_cols, ledger),
        }
        self.unnest_sql = {key: table.unnest() for key, table in self.tables.items()}
        self.copy_sql = {key: self.tables[key].copy() for key in ("orders", "ledger")}
        ids, available, locked = zip(*self.balances, strict=True)
        self.balance_sql = (
            "UPDATE market_balance AS t SET available = v.a, locked = v.l "
            "FROM unnest(%s::text::bigint[], %s::text::numeric[], %s::text::numeric[]) "
            "AS v(id, a, l) WHERE t.id = v.id",
            [_array_literal(ids), _array_literal(available), _array_literal(locked)],
        )
        ids, available, locked = zip(*before, strict=True)
        self.restore_sql = (
            self.balance_sql[0],
            [_array_literal(ids), _array_literal(available), _array_literal(locked)],
        )
        self.written = (ticket_id, op_id, list(order_map.values()))

    def run(self, method: str) -> float:
        """Write the prepared rows in one transaction by `method` ("unnest" or "copy");
        seconds from BEGIN to the end of COMMIT."""
        conn = self.conn
        unnest, copy = self.unnest_sql, self.copy_sql
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(*unnest["ticket"])
            cur.execute(*unnest["operation"])
            for key in ("orders", "ledger"):
                if method == "copy":
                    sql, payload = copy[key]
                    with cur.copy(sql) as pipe:
                        pipe.write(payload)
                else:
                    cur.execute(*unnest[key])
            cur.execute(
                "UPDATE market_market SET book_version = book_version + 1 WHERE id = %s",
                [self.market_id],
            )
            cur.execute(*self.balance_sql)
        return time.perf_counter() - start

    def undo(self) -> None:
        """Remove what the last run wrote and put the balances back (not timed)."""
        ticket_id, op_id, order_ids = self.written
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("DELETE FROM market_ledgerentry WHERE order_id = ANY(%s)", [order_ids])
            cur.execute("DELETE FROM market_order WHERE id = ANY(%s)", [order_ids])
            cur.execute("DELETE FROM liquidity_liquidityoperation WHERE id = %s", [op_id])
            cur.execute("DELETE FROM market_ticketlog WHERE id = %s", [ticket_id])
            cur.execute(*self.restore_sql)

    def balances_now(self) -> list[tuple]:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "SELECT id, available, locked FROM market_balance WHERE id = ANY(%s) ORDER BY id",
                [[row[0] for row in self.balances]],
            )
            return cur.fetchall()

    def close(self) -> None:
        self.conn.close()
