"""Set-based writes for the hot paths (liquidity execution, settlement, the ledger).

Django's `bulk_create` builds a model instance and a parameter per cell, and `bulk_update`
a CASE branch per row; for thousands of rows that Python work costs more than the
database's. On PostgreSQL these helpers send one statement with one typed array per
column (`unnest`), whatever the number of rows. Elsewhere (SQLite, for local use) they
fall back to Django's bulk methods. Both paths write the same rows.

On PostgreSQL the statement is bound server-side with binary parameters: Django's psycopg
backend binds client-side, which quotes every array element into SQL text in Python (for
3,000 rows that cost more than the INSERT itself) and makes the server parse it back. The
cursor is still wrapped by Django, so the statement runs inside the current transaction,
is counted and logged like any other query, passes through `execute_wrapper`s, and its
errors arrive as Django's (`IntegrityError` …).
"""

from collections.abc import Sequence
from decimal import Decimal

from django.db import connection, models


def _column(model: type[models.Model], attname: str) -> tuple[str, str]:
    field = next(f for f in model._meta.concrete_fields if f.attname == attname)
    return field.column, field.db_type(connection)


def _binary_cursor():
    """A Django cursor wrapper around a server-side-binding psycopg cursor of the current
    connection (its placeholders are `%b`: binary parameters)."""
    import psycopg  # only on PostgreSQL, which is where this is called

    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_param(values: Sequence):
    """One column's values as a parameter for `%b::type[]`.

    Integers, Decimals, strings and None (the types of the hot paths' columns) are
    written as a PostgreSQL array literal (`{1,2.50,NULL,"BUY"}`) in one C-speed `join`:
    the server's array input parses it faster than psycopg's per-element binary array
    dumper (Python code) builds one. Strings are always double-quoted, backslashes and
    quotes escaped, so no content can break out of its element. Any other type (bool,
    dates, …) goes to psycopg as a list, adapted as usual.
    """
    kinds = set(map(type, values))
    if kinds <= {int, Decimal, type(None)}:
        if type(None) in kinds:
            return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"
        return "{" + ",".join(map(str, values)) + "}"
    if kinds <= {str, type(None)}:
        return "{" + ",".join("NULL" if v is None else _quoted(v) for v in values) + "}"
    return list(values)


def insert_rows(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence],
    *,
    returning_ids: bool,
    constants: dict | None = None,
) -> list[int]:
    """Insert `rows` (tuples ordered as `columns`, which are field attnames) in one
    statement, every row also taking the `constants` ({attname: value}), which travel
    once rather than once per row. Returns the new primary keys in row order when
    `returning_ids`.

    On PostgreSQL a column whose value is the same in every row (all None, one kind …)
    is sent once, like a constant: the rows written are the same."""
    if not rows:
        return []
    constants = dict(constants or {})
    if connection.vendor != "postgresql":
        created = model.objects.bulk_create(
            [model(**dict(zip(columns, row, strict=True)), **constants) for row in rows]
        )
        return [obj.pk for obj in created] if returning_ids else []
    table = connection.ops.quote_name(model._meta.db_table)
    array_columns, arrays_in = [], []
    for attname, values in zip(columns, zip(*rows, strict=True), strict=True):
        # Values of one column share its database type, so equal ones store the same.
        if values.count(values[0]) == len(values):
            constants[attname] = values[0]
        else:
            array_columns.append(attname)
            arrays_in.append(_array_param(values))
    names, arrays, scalars = [], [], []
    for attname in array_columns:
        column, db_type = _column(model, attname)
        names.append(connection.ops.quote_name(column))
        arrays.append(f"%b::{db_type}[]")
    for attname in constants:
        column, db_type = _column(model, attname)
        names.append(connection.ops.quote_name(column))
        scalars.append(f"%b::{db_type}")
    if arrays:
        source = f"FROM unnest({', '.join(arrays)}) AS v"
        selected = ", ".join(["v.*", *scalars])
    else:  # every column constant: one row per input row all the same
        source = "FROM generate_series(1, %b::integer)"
        selected = ", ".join(scalars)
    sql = f"INSERT INTO {table} ({', '.join(names)}) SELECT {selected} {source}"
    if returning_ids:
        # unnest yields rows in array order and INSERT … SELECT keeps it, so RETURNING
        # id ORDER BY is not needed; ids come from one sequence, increasing.
        sql += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    # The constants' placeholders come first in the statement (SELECT), then the arrays
    # (or the row count).
    params = [*constants.values(), *(arrays_in if arrays else [len(rows)])]
    with _binary_cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()] if returning_ids else []


def update_rows(
    model: type[models.Model], objects: Sequence[models.Model], fields: Sequence[str]
) -> None:
    """Write `fields` of `objects` (already saved) in one statement."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, list(fields))
        return
    table = connection.ops.quote_name(model._meta.db_table)
    pk_column, pk_type = _column(model, model._meta.pk.attname)
    columns = [_column(model, attname) for attname in fields]
    arrays = [f"%b::{pk_type}[]"] + [f"%b::{db_type}[]" for _, db_type in columns]
    aliases = ["pk", *(f"c{i}" for i in range(len(fields)))]
    assignments = ", ".join(
        f"{connection.ops.quote_name(column)} = v.c{i}" for i, (column, _) in enumerate(columns)
    )
    sql = (
        f"UPDATE {table} AS t SET {assignments} "
        f"FROM unnest({', '.join(arrays)}) AS v({', '.join(aliases)}) "
        f"WHERE t.{connection.ops.quote_name(pk_column)} = v.pk"
    )
    params = [_array_param([obj.pk for obj in objects])] + [
        _array_param([getattr(obj, attname) for obj in objects]) for attname in fields
    ]
    with _binary_cursor() as cursor:
        cursor.execute(sql, params)
