"""Set-based writes for the hot paths (liquidity execution, settlement, the ledger).

Django's `bulk_create` builds a model instance and a parameter per cell, and `bulk_update`
a CASE branch per row; for thousands of rows that Python work costs more than the
database's. On PostgreSQL these helpers send one statement with one typed array per
column (`unnest`), whatever the number of rows. Elsewhere (SQLite, for local use) they
fall back to Django's bulk methods. Both paths write the same rows.
"""

from collections.abc import Sequence

from django.db import connection, models


def _column(model: type[models.Model], attname: str) -> tuple[str, str]:
    field = next(f for f in model._meta.concrete_fields if f.attname == attname)
    return field.column, field.db_type(connection)


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
    `returning_ids`."""
    if not rows:
        return []
    constants = constants or {}
    if connection.vendor != "postgresql":
        created = model.objects.bulk_create(
            [model(**dict(zip(columns, row, strict=True)), **constants) for row in rows]
        )
        return [obj.pk for obj in created] if returning_ids else []
    table = connection.ops.quote_name(model._meta.db_table)
    names, arrays, scalars = [], [], []
    for attname in columns:
        column, db_type = _column(model, attname)
        names.append(connection.ops.quote_name(column))
        arrays.append(f"%s::{db_type}[]")
    for attname in constants:
        column, db_type = _column(model, attname)
        names.append(connection.ops.quote_name(column))
        scalars.append(f"%s::{db_type}")
    selected = ", ".join(["v.*", *scalars])
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) "
        f"SELECT {selected} FROM unnest({', '.join(arrays)}) AS v"
    )
    if returning_ids:
        # unnest yields rows in array order and INSERT … SELECT keeps it, so RETURNING
        # id ORDER BY is not needed; ids come from one sequence, increasing.
        sql += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    # The constants' placeholders come first in the statement (SELECT), then the arrays.
    params = [*constants.values(), *(list(values) for values in zip(*rows, strict=True))]
    with connection.cursor() as cursor:
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
    arrays = [f"%s::{pk_type}[]"] + [f"%s::{db_type}[]" for _, db_type in columns]
    aliases = ["pk", *(f"c{i}" for i in range(len(fields)))]
    assignments = ", ".join(
        f"{connection.ops.quote_name(column)} = v.c{i}" for i, (column, _) in enumerate(columns)
    )
    sql = (
        f"UPDATE {table} AS t SET {assignments} "
        f"FROM unnest({', '.join(arrays)}) AS v({', '.join(aliases)}) "
        f"WHERE t.{connection.ops.quote_name(pk_column)} = v.pk"
    )
    params = [[obj.pk for obj in objects]] + [
        [getattr(obj, attname) for obj in objects] for attname in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
