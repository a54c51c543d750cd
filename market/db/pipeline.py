"""Fewer round trips on the hot path: pipelined transactions, typed reads, ids ahead.

Placing an order holds its market's row lock from the first statement to COMMIT, so each
round trip inside that transaction is time in which no other order on the market can
match. On PostgreSQL, `pipelined_atomic()` runs the transaction in psycopg's pipeline
mode: statements are queued and sent together; `flush()` sends them and waits for their
results (a sync point); writes are never waited for one by one; and when the block owns
the transaction, its COMMIT travels with the last writes. With ids allocated ahead
(`allocate_ids`), writes need no RETURNING, so a placement costs three round trips:
[BEGIN, lock the market, read the book], [lock the balances, allocate ids] and
[every write, COMMIT].

Elsewhere (SQLite, for local use) the same calls run each statement at once, so one code
path serves both databases.

ORM reads work inside a pipelined block (fetching rows syncs), but no code there may need
an UPDATE's row count, which psycopg knows only at the next sync point: Django's `save()`
of an existing instance reads it to decide between UPDATE and INSERT, and would insert a
duplicate. Such writes stay outside the block (`liquidity.programs._carry_out`).

Failures are never lost: a queued write that fails makes the next sync point raise
(`flush()`, or COMMIT), as Django's exception, and the atomic block rolls back as usual.
A block nested in a caller's transaction syncs before its savepoint is released, so a
failure there rolls back to the savepoint, not the caller's whole transaction.

On PostgreSQL the project's connections bind parameters server-side (Django's
`server_side_binding` option, `config/settings.py`), so these statements go through
Django's own cursors, and psycopg prepares each one on a connection after
`DB_PREPARE_THRESHOLD` runs. A statement must therefore not parametrise what a partial
index's predicate needs as a literal (the generic plan must still match the index).
"""

import gc
import json
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.backends.utils import CursorWrapper

_local = threading.local()


def _pipeline():
    return getattr(_local, "pipeline", None)


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector paused for the block (re-entrant).

    For a transaction that holds locks while it builds many short-lived objects (a
    placement's rows; a liquidity operation's thousands of orders): none of them can be
    freed before COMMIT, they form no reference cycles, and reference counting frees
    them after it; each collection the allocations trigger meanwhile would only scan
    them again, with the locks held (about 5 % of a 3,000-order execute). Collection
    resumes, and catches up, when the block ends. The collector is the process's: in a
    threaded worker it pauses for every thread while any block that paused it runs."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def pipelined_atomic():
    """`transaction.atomic()` whose statements go to PostgreSQL in as few round trips as
    the code's reads allow (see the module docstring), with the garbage collector paused
    (`collector_paused`). Re-entrant; a plain atomic block on other databases."""
    with collector_paused(), _pipelined_atomic():
        yield


@contextmanager
def _pipelined_atomic():
    if connection.vendor != "postgresql" or _pipeline() is not None:
        with transaction.atomic():
            yield
            flush()
        return
    connection.ensure_connection()
    owns_transaction = not connection.in_atomic_block
    with connection.wrap_database_errors, connection.connection.pipeline() as pipeline:
        _local.pipeline, _local.writer = pipeline, _cursor()
        try:
            with transaction.atomic():
                yield
                if not owns_transaction:
                    flush()
        finally:
            _release(_local.writer)
            _local.pipeline = _local.writer = None


def flush() -> None:
    """Send every queued statement and wait for all of them (a sync point): the results
    of reads become available, and a failed write raises here. Nothing to do outside a
    pipeline, or when nothing is queued."""
    pipeline = _pipeline()
    if pipeline is None or not (pipeline.command_queue or pipeline.result_queue):
        return
    with connection.wrap_database_errors:
        pipeline.sync()


@cache
def _converters(model: type[models.Model], attnames: tuple[str, ...], vendor: str):
    """For each column, the backend's and the field's converters, as the ORM applies them
    to `values_list()` (SQLite stores decimals as REAL, booleans as 0/1); None when no
    column needs one (PostgreSQL, for the hot paths' columns)."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    columns = []
    for attname in attnames:
        col = fields[attname].get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        columns.append((found, col))
    return columns if any(found for found, _ in columns) else None


def _counted(db) -> bool:
    """Whether Django must see each statement: it logs queries (DEBUG, or a test counting
    them) or a caller wrapped the connection's execution (`connection.execute_wrapper`)."""
    return db.queries_logged or bool(db.execute_wrappers)


def _cursor():
    """A cursor for the hot path's statements. On PostgreSQL, unless Django must see each
    statement (`_counted`), psycopg's own cursor on Django's connection (the same
    connection, transaction, adapters and server-side binding) without Django's cursor
    wrapper, which costs more than the statement's own Python on this path, and taken
    from the few this thread keeps for the connection (`_release`). Errors are still
    Django's: `_execute` wraps them."""
    db = connections[DEFAULT_DB_ALIAS]  # one lookup: `connection` looks it up per use
    if db.vendor != "postgresql" or _counted(db):
        return db.cursor()
    # What Django's own `cursor()` does first.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    raw = db.connection
    kept = getattr(_local, "cursors", None)
    if kept is None or kept[0] is not raw:
        kept = _local.cursors = (raw, [])
    return kept[1].pop() if kept[1] else raw.cursor()


_KEEP_CURSORS = 8


def _release(cursor) -> None:
    """Done with a cursor from `_cursor()`: psycopg's own are kept for reuse."""
    kept = getattr(_local, "cursors", None)
    if isinstance(cursor, CursorWrapper) or kept is None or cursor.connection is not kept[0]:
        cursor.close()
    elif len(kept[1]) < _KEEP_CURSORS:
        kept[1].append(cursor)


def _execute(cursor, sql: str, params) -> None:
    if isinstance(cursor, CursorWrapper):
        cursor.execute(sql, params)
        return
    db = connections[DEFAULT_DB_ALIAS]
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        cursor.execute(sql, params)


class Statement:
    """A statement sent to the database; its rows are read after the next `flush()` (at
    once outside a pipeline), converted as the ORM would convert `columns` of `model`."""

    def __init__(self, sql: str, params: Sequence, *, model=None, columns: Sequence[str] = ()):
        self._cursor = _cursor()
        _execute(self._cursor, sql, params)
        self._converters = _converters(model, tuple(columns), connection.vendor) if model else None

    _rows = None

    def rows(self) -> list[tuple]:
        if self._rows is None:
            self._rows = self._read()
        return self._rows

    def _read(self) -> list[tuple]:
        flush()
        with connection.wrap_database_errors:
            rows = self._cursor.fetchall()
        _release(self._cursor)
        self._cursor = None  # back with the others: another statement may take it
        if self._converters is None:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for i, (found, col) in enumerate(self._converters):
                for convert in found:
                    values[i] = convert(values[i], col, connection)
            converted.append(tuple(values))
        return converted

    def one(self) -> tuple | None:
        rows = self.rows()
        return rows[0] if rows else None


def send(sql: str, params: Sequence = (), *, model=None, columns: Sequence[str] = ()):
    """Send one statement now; read its rows later with `.rows()` / `.one()`."""
    return Statement(sql, params, model=model, columns=columns)


def write(sql: str, params: Sequence = ()) -> None:
    """Run one statement whose result is not needed: in a pipeline it is only queued
    (its failure raises at the next sync point), through one cursor per transaction;
    inside `one_statement()` it is held to travel as part of one statement."""
    held = getattr(_local, "held", None)
    if held is not None:
        held.append((sql, params))
        return
    _write_now(sql, params)


@contextmanager
def one_statement():
    """The writes inside the block (`write`) go to PostgreSQL as one statement, each a
    data-modifying `WITH` part of it, sent when the block ends: one statement to send,
    bind and plan instead of one per write, under the lock the caller holds.

    Only for writes that touch disjoint rows and do not read each other's effects: the
    parts of one statement run on one snapshot, in an order PostgreSQL chooses, and of
    two updates of one row only one would take place (so two UPDATEs of one table are
    refused with RuntimeError, before anything is sent); foreign keys are checked when the
    whole statement ends, so a row may name one inserted by another part. Outside a
    pipeline (SQLite, or no pipelined transaction) each write runs at once, as without
    the block."""
    if _pipeline() is None or getattr(_local, "held", None) is not None:
        yield
        return
    _local.held = held = []
    try:
        yield
    finally:
        _local.held = None
    if not held:
        return
    updated = [sql.split(None, 2)[1] for sql, _ in held if sql.lstrip()[:6].upper() == "UPDATE"]
    if len(updated) != len(set(updated)):
        # Two parts of one statement updating one row: PostgreSQL applies only one.
        raise RuntimeError(f"one_statement: two UPDATEs of one table ({sorted(updated)})")
    params = []
    for _, part_params in held:
        params += part_params
    _write_now(joined_writes([sql for sql, _ in held]), params)


def joined_writes(statements: Sequence[str]) -> str:
    """Writes as one statement (`one_statement`): every one but the last a data-modifying
    `WITH` part, the last its main statement; their parameters keep their order."""
    *parts, last = statements
    ctes = ", ".join(f"w{index} AS ({sql})" for index, sql in enumerate(parts))
    return f"WITH {ctes} {last}" if parts else last


def _write_now(sql: str, params: Sequence) -> None:
    writer = getattr(_local, "writer", None)
    if writer is None:
        cursor = _cursor()
        try:
            _execute(cursor, sql, params)
        finally:
            _release(cursor)
        return
    if isinstance(writer, CursorWrapper) != _counted(connections[DEFAULT_DB_ALIAS]):
        _release(writer)  # a test began counting queries, or stopped
        writer = _local.writer = _cursor()
    _execute(writer, sql, params)


# Up to this many values bind one parameter each (the hot path's few holders and
# markets: cheapest to bind); more bind as one array, as a statement may have at most
# 65,535 parameters (PostgreSQL) or 32,766 (SQLite).
SHORT_LIST = 32


def any_of(column: str, values: Sequence, *, db_type: str) -> tuple[str, list]:
    """`column` is one of `values`, as SQL and its parameters: a list of
    placeholders when short, else a single array (PostgreSQL) or JSON list (SQLite)."""
    values = list(values)
    if not values:
        return "FALSE", []
    if len(values) <= SHORT_LIST:
        return f"{column} IN ({', '.join(['%s'] * len(values))})", values
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::{db_type}[])", [values]
    return f"{column} IN (SELECT value FROM json_each(%s))", [json.dumps(values)]


def for_update(*, of: Sequence[str] = ()) -> str:
    """` FOR UPDATE [OF …]` where the database locks rows (SQLite's IMMEDIATE
    transactions serialise writers instead)."""
    if not connection.features.has_select_for_update:
        return ""
    return " " + connection.ops.for_update_sql(of=tuple(of))


@cache
def _sequence(table: str) -> str:
    """The id sequence of `table`, looked up once per process (a constant `regclass` keeps
    `nextval` cheap: about 1 µs an id)."""
    (name,) = send("SELECT pg_get_serial_sequence(%s, 'id')", [table]).one()
    return name


class AllocatedIds:
    """Primary keys reserved ahead for several models; `take(model)` after `flush()`."""

    def __init__(self, counts: dict[type[models.Model], int], statement=None, ids=None):
        self._models = [model for model, count in counts.items() if count > 0]
        self._statement = statement
        self._ids = ids

    def take(self, model: type[models.Model]) -> list[int]:
        if self._ids is None:
            self._ids = {m: [] for m in self._models}
            for index, pk in self._statement.rows():
                self._ids[self._models[index]].append(pk)
            for ids in self._ids.values():
                ids.sort()
        return self._ids.get(model, [])


def allocate_ids(counts: dict[type[models.Model], int]) -> AllocatedIds:
    """Reserve primary keys for rows this transaction will insert with explicit ids
    ({model: how many}), so its writes need no RETURNING.

    PostgreSQL: one statement of `nextval`s over the tables' sequences, sent now and read
    after `flush()` (a rolled-back transaction leaves a gap, as any insert would). SQLite:
    each table's `sqlite_sequence` counter is moved past its block under the IMMEDIATE
    transaction's write lock, so no other insert can take these ids."""
    wanted = {model: count for model, count in counts.items() if count > 0}
    if not wanted:
        return AllocatedIds({}, ids={})
    if connection.vendor == "postgresql":
        parts = [
            f"SELECT {index}, nextval(%s::regclass) FROM generate_series(1, %s)"
            for index in range(len(wanted))
        ]
        params = []
        for model, count in wanted.items():
            params += [_sequence(model._meta.db_table), count]
        return AllocatedIds(wanted, statement=send(" UNION ALL ".join(parts), params))
    if not connection.in_atomic_block:
        raise RuntimeError("allocate_ids needs a transaction")
    ids = {}
    with connection.cursor() as c:
        for model, count in wanted.items():
            table = model._meta.db_table
            c.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "
                f"coalesce((SELECT max(id) FROM {connection.ops.quote_name(table)}), 0))",
                [table],
            )
            last = c.fetchone()[0]
            c.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
            c.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, last + count]
            )
            ids[model] = list(range(last + 1, last + count + 1))
    return AllocatedIds(wanted, ids=ids)
