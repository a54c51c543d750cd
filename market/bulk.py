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
errors arrive as Django's (`IntegrityError` …). A write that returns nothing is only queued
inside a pipelined transaction (`market.sql`), and sent with the next sync point.
"""

import json
from collections.abc import Sequence
from decimal import Decimal
from functools import cache

from django.db import connection, models
from django.utils import timezone

from market import sql as statements


@cache
def _columns(model: type[models.Model], attnames: tuple[str, ...], vendor: str):
    """(quoted column, database type, JSONField or None) for each attname; the hot
    paths write the same columns again and again, and `db_type()` is not free."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    return [
        (
            connection.ops.quote_name(fields[attname].column),
            fields[attname].db_type(connection),
            fields[attname] if isinstance(fields[attname], models.JSONField) else None,
        )
        for attname in attnames
    ]


def _json_text(field: models.JSONField, value):
    """JSON values travel as JSON text, which the statement casts to `jsonb` (psycopg
    adapts no bare dict or list to JSON)."""
    return None if value is None else json.dumps(value, cls=field.encoder)


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
    vendor = connection.vendor
    table = connection.ops.quote_name(model._meta.db_table)
    names, arrays, scalars, arrays_in = [], [], [], []
    for (column, db_type, json_field), values in zip(
        _columns(model, tuple(columns), vendor), zip(*rows, strict=True), strict=True
    ):
        if json_field is not None:
            values = [_json_text(json_field, value) for value in values]
        # Values of one column share its database type, so equal ones store the same.
        if values.count(values[0]) == len(values):
            constants[(column, db_type)] = values[0]
        else:
            names.append(column)
            arrays.append(f"%b::{db_type}[]")
            arrays_in.append(_array_param(values))
    constant_values = []
    for key, value in constants.items():
        if isinstance(key, str):  # an attname from the caller
            column, db_type, json_field = _columns(model, (key,), vendor)[0]
            if json_field is not None:
                value = _json_text(json_field, value)
        else:  # a column folded above
            column, db_type = key
        names.append(column)
        scalars.append(f"%b::{db_type}")
        constant_values.append(value)
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
    params = [*constant_values, *(arrays_in if arrays else [len(rows)])]
    if not returning_ids:
        statements.write(sql, params)
        return []
    return [pk for (pk,) in statements.send(sql, params).rows()]


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
    (pk_column, pk_type, _), *columns = _columns(
        model, (model._meta.pk.attname, *fields), connection.vendor
    )
    arrays = [f"%b::{pk_type}[]"] + [f"%b::{db_type}[]" for _, db_type, _ in columns]
    aliases = ["pk", *(f"c{i}" for i in range(len(fields)))]
    assignments = ", ".join(f"{column} = v.c{i}" for i, (column, _, _) in enumerate(columns))
    sql = (
        f"UPDATE {table} AS t SET {assignments} "
        f"FROM unnest({', '.join(arrays)}) AS v({', '.join(aliases)}) "
        f"WHERE t.{pk_column} = v.pk"
    )
    params = [_array_param([obj.pk for obj in objects])] + [
        _array_param([getattr(obj, attname) for obj in objects]) for attname in fields
    ]
    statements.write(sql, params)


def insert_objects(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """Insert unsaved instances that already carry their primary key (`sql.allocate_ids`)
    in one statement without RETURNING, so in a pipeline it is queued like any write.

    `auto_now` fields take the current time and `auto_now_add` fields keep a value already
    set (else the current time), so a caller can derive other values from it (a ticket's
    year). The instances count as saved afterwards."""
    if not objects:
        return
    if any(obj.pk is None for obj in objects):
        raise ValueError("insert_objects needs instances with their primary key set")
    fields = model._meta.concrete_fields
    now = timezone.now()
    for field in fields:
        if getattr(field, "auto_now", False):
            for obj in objects:
                setattr(obj, field.attname, now)
        elif getattr(field, "auto_now_add", False):
            for obj in objects:
                if getattr(obj, field.attname) is None:
                    setattr(obj, field.attname, now)
    rows = [tuple(getattr(obj, field.attname) for field in fields) for obj in objects]
    if connection.vendor == "postgresql":
        insert_rows(model, [field.attname for field in fields], rows, returning_ids=False)
    else:
        quote = connection.ops.quote_name
        row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
        batch = connection.ops.bulk_batch_size(fields, objects)  # SQLite's parameter limit
        with connection.cursor() as cursor:
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                cursor.execute(
                    f"INSERT INTO {quote(model._meta.db_table)} "
                    f"({', '.join(quote(field.column) for field in fields)}) "
                    f"VALUES {', '.join([row_sql] * len(chunk))}",
                    [
                        field.get_db_prep_save(value, connection)
                        for row in chunk
                        for field, value in zip(fields, row, strict=True)
                    ],
                )
    for obj in objects:
        obj._state.adding = False
        obj._state.db = connection.alias
