"""Set-based writes for the hot paths (placement, liquidity execution, the ledger, tickets).

Django's `bulk_create` builds a model instance and a parameter per cell, and `bulk_update`
a CASE branch per row; for thousands of rows that Python work costs more than the
database's. On PostgreSQL these helpers send one statement whatever the number of rows,
through `market.db.pipeline` (server-side binding, counted and logged like any query,
Django's exceptions; a write that returns nothing is only queued inside a pipelined
transaction): one row as a VALUES list of typed parameters, a few rows (a placement's) as
one JSON parameter, whose statement text never changes with the values, many rows as one
typed array per column (`unnest`). Elsewhere
(SQLite, for local use) they fall back to Django's bulk methods. Every path writes the same
rows.

Callers pass plain rows (tuples ordered as the attnames they name) and give every value,
timestamps included: nothing is filled in behind their back.
"""

import json
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import cache

from django.db import connection, models

from market.db import pipeline

_TYPE_MODIFIER = re.compile(r"\(.*?\)")


@cache
def _columns(model: type[models.Model], attnames: tuple[str, ...], vendor: str):
    """(quoted column, the type its parameters are cast to, JSONField or None) for each
    attname; the hot paths write the same columns again and again, and `db_type()` is
    not free. The type is the column's without its length or precision (`varchar`, not
    `varchar(64)`): an explicit cast to `varchar(64)` would cut a longer text silently,
    where storing into the column refuses it, as the ORM's writes do."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    return [
        (
            connection.ops.quote_name(fields[attname].column),
            _TYPE_MODIFIER.sub("", fields[attname].db_type(connection)),
            fields[attname] if isinstance(fields[attname], models.JSONField) else None,
        )
        for attname in attnames
    ]


def _json_text(field: models.JSONField, value):
    """JSON values travel as JSON text, which the statement casts to `jsonb` (psycopg
    adapts no bare dict or list to JSON)."""
    return None if value is None else json.dumps(value, cls=field.encoder)


_NUMBERS = frozenset({int, Decimal})
_NUMBERS_OR_NONE = frozenset({int, Decimal, type(None)})
_NONE = frozenset({type(None)})
# Fewer rows than this (a placement's order, its few trades and ledger entries) travel as
# one JSON parameter (`json_populate_recordset`): a statement whose text depends only on
# its columns, which PostgreSQL plans once per connection, and one parameter for psycopg
# to adapt instead of an array per column. More rows travel as one array per column
# (`unnest`), a column whose value is the same in every row only once.
FEW_ROWS = pipeline.SHORT_LIST


def _array_param(values: Sequence):
    """One column's values as a parameter for `%b::type[]`.

    A column of integers and Decimals (the bulk of the hot paths' columns) is sent as the
    text of a PostgreSQL array (`{1,2.50,NULL}`), built by one C-speed `join` of their
    `str()`, which is already valid numeric input and needs no quoting: the server parses
    it faster than psycopg's per-element array dumper builds a binary one. Every other
    column (text, dates, …) is adapted by psycopg as a list."""
    kinds = set(map(type, values))
    if kinds == _NONE:  # an array of no type psycopg could infer; NULL is valid for any
        return "{" + ",".join(["NULL"] * len(values)) + "}"
    if kinds <= _NUMBERS:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds <= _NUMBERS_OR_NONE:
        return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"
    return list(values)


def insert_rows(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence],
    *,
    constants: dict | None = None,
) -> None:
    """Insert `rows` (tuples ordered as `columns`, which are field attnames) in one
    statement, every row also taking the `constants` ({attname: value}), which travel
    once rather than once per row. Nothing is returned: rows that others must name get
    their ids ahead (`pipeline.allocate_ids`), because neither database promises the
    order in which an INSERT returns the ids it took.

    On PostgreSQL one row travels as a VALUES list, fewer than `FEW_ROWS` as one JSON
    parameter, more as an array per column; from `FEW_ROWS` rows, a column whose value is
    the same in every row (all None, one kind …) is sent once, like a constant: the rows
    written are the same."""
    if not rows:
        return
    constants = dict(constants or {})
    if connection.vendor != "postgresql":
        _insert_values(model, columns, rows, constants)
        return
    if len(rows) == 1:
        sql, json_fields = _one_row_insert_sql(model, tuple(columns), tuple(constants))
        values = [*rows[0], *constants.values()]
        for i, field in json_fields:
            values[i] = _json_text(field, values[i])
        pipeline.write(sql, values)
        return
    if len(rows) < FEW_ROWS:
        sql, keys, json_fields, constant_values = _few_rows_insert(
            model, tuple(columns), constants
        )
        pipeline.write(sql, [*constant_values, _json_rows(keys, rows, json_fields)])
        return
    vendor = connection.vendor
    table = connection.ops.quote_name(model._meta.db_table)
    names, arrays, scalars, arrays_in = [], [], [], []
    for (column, db_type, json_field), values in zip(
        _columns(model, tuple(columns), vendor), zip(*rows, strict=True), strict=True
    ):
        if json_field is not None:
            values = [_json_text(json_field, value) for value in values]
        # Values of one column share its database type, so equal ones store the same.
        if len(values) >= FEW_ROWS and values.count(values[0]) == len(values):
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
    # The constants' placeholders come first in the statement (SELECT), then the arrays
    # (or the row count).
    params = [*constant_values, *(arrays_in if arrays else [len(rows)])]
    pipeline.write(sql, params)


def insert_instances(instances: Sequence[models.Model]) -> None:
    """Insert unsaved instances of one model, each with its primary key allocated ahead
    (`pipeline.allocate_ids`), in one statement without RETURNING (queued, in a pipelined
    transaction, with the writes after it), and mark them saved. Every concrete field is
    written as the instance holds it, after its `pre_save` (an `auto_now_add` time): the
    values must already be of their fields' Python types (Decimals, ints, aware times),
    as the ORM's own conversions (`get_db_prep_save`) are not applied."""
    if not instances:
        return
    model = type(instances[0])
    if any(type(instance) is not model or instance.pk is None for instance in instances):
        raise ValueError("insert_instances needs instances of one model, with their ids")
    fields = model._meta.concrete_fields
    rows = [tuple(field.pre_save(instance, True) for field in fields) for instance in instances]
    insert_rows(model, [field.attname for field in fields], rows)
    for instance in instances:
        instance._state.adding, instance._state.db = False, connection.alias


def _plain(value):
    """A column's value as JSON can carry it: Decimals and dates as their exact text, which
    the column's own input function parses; everything else as it is."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # dates and datetimes, as their ISO text
        return value.isoformat()
    return value


def _as_stored(field: models.JSONField, value):
    """A JSON field's value as its column stores it: as given when the field has no
    encoder of its own, else through that encoder. None is SQL NULL, as the ORM stores
    it. What JSON cannot hold raises TypeError, as on the other paths."""
    if field.encoder is None:
        return value
    text = _json_text(field, value)
    return None if text is None else json.loads(text)


def _json_rows(keys: Sequence[str], rows: Sequence[Sequence], json_fields) -> str:
    """`rows` as the JSON text of an array of objects keyed by column name, for
    `json_populate_recordset`: one C-speed `json.dumps` however many columns. Each cell
    is a plain value (`_plain`), or a JSON field's value as its column stores it."""
    plain = [
        [
            _as_stored(json_fields[i], value) if i in json_fields else _plain(value)
            for i, value in enumerate(row)
        ]
        for row in rows
    ]
    return json.dumps([dict(zip(keys, row, strict=True)) for row in plain])


def _few_rows_insert(model, columns: tuple[str, ...], constants: dict):
    """The statement for a few rows, which arrive as one JSON parameter: its text depends
    only on the columns, never on the values, so PostgreSQL plans it once per connection.
    Returns the SQL, the rows' JSON keys, the JSON fields by column position and the
    constants' values."""
    sql, keys, json_fields = _few_rows_insert_sql(model, columns, tuple(constants))
    values = []
    for attname, value in constants.items():
        field = model._meta.get_field(attname)
        values.append(_json_text(field, value) if isinstance(field, models.JSONField) else value)
    return sql, keys, json_fields, values


@cache
def _one_row_insert_sql(model, columns: tuple[str, ...], constant_names: tuple[str, ...]):
    """The statement for one row (a placement's order, a trade's ticket, an operation):
    a plain VALUES list, one typed parameter per column, which PostgreSQL binds without
    parsing any JSON; and the positions of the JSON fields, sent as JSON text."""
    table = connection.ops.quote_name(model._meta.db_table)
    described = _columns(model, (*columns, *constant_names), connection.vendor)
    names = ", ".join(column for column, _, _ in described)
    values = ", ".join(f"%b::{db_type}" for _, db_type, _ in described)
    json_fields = tuple((i, field) for i, (_, _, field) in enumerate(described) if field)
    return f"INSERT INTO {table} ({names}) VALUES ({values})", json_fields


@cache
def _few_rows_insert_sql(model, columns: tuple[str, ...], constant_names: tuple[str, ...]):
    table = connection.ops.quote_name(model._meta.db_table)
    described = _columns(model, columns, connection.vendor)
    constant_columns = _columns(model, constant_names, connection.vendor)
    names = [column for column, _, _ in (*described, *constant_columns)]
    selected = [f"v.{column}" for column, _, _ in described]
    selected += [f"%b::{db_type}" for _, db_type, _ in constant_columns]
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(selected)} "
        f"FROM json_populate_recordset(NULL::{table}, %b::json) AS v"
    )
    json_fields = {i: field for i, (_, _, field) in enumerate(described) if field is not None}
    fields = {field.attname: field for field in model._meta.concrete_fields}
    return sql, [fields[attname].column for attname in columns], json_fields


def _insert_values(model, columns, rows, constants) -> None:
    """SQLite's way: multi-row VALUES in batches of its parameter limit, every value as
    given (Django's `bulk_create` would overwrite `auto_now` fields)."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    names = [*columns, *constants]
    quote = connection.ops.quote_name
    targets = [fields[name] for name in names]
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in targets)}) VALUES "
    )
    row_sql = "(" + ", ".join(["%s"] * len(targets)) + ")"
    batch = connection.ops.bulk_batch_size(targets, rows)
    tail = tuple(constants.values())
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            params = [
                field.get_db_prep_save(value, connection)
                for row in chunk
                for field, value in zip(targets, (*row, *tail), strict=True)
            ]
            cursor.execute(sql + ", ".join([row_sql] * len(chunk)), params)


def update_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence],
    *,
    constants: dict | None = None,
) -> None:
    """Write `fields` of saved rows in one statement: each row is (primary key, *values
    in the order of `fields`); `constants` ({attname: value}) go to every row.

    On PostgreSQL a few rows (a placement's fills and balances) are also named by
    `pk = ANY(keys)`, so that they are found through the primary key's index: joined only
    to the JSON recordset, which the planner guesses at 100 rows, a table of up to tens of
    thousands of rows (the orders of a young market) was hash-joined by a sequential scan
    of all of it for each fill. Many rows travel as arrays, whose length a custom plan
    knows, and join by the key alone: the same `ANY` there is a filter evaluated per row,
    quadratic in the rows (a 3,000-order withdrawal took seconds)."""
    if not rows:
        return
    constants = constants or {}
    if connection.vendor != "postgresql":
        names = [*fields, *constants]
        objects = [
            model(pk=pk, **dict(zip(fields, values, strict=True)), **constants)
            for pk, *values in rows
        ]
        model.objects.bulk_update(objects, names)
        return
    if len(rows) < FEW_ROWS:
        sql, keys = _few_rows_update_sql(model, tuple(fields), tuple(constants))
        primary_keys = _array_param([row[0] for row in rows])
        pipeline.write(sql, [*constants.values(), _json_rows(keys, rows, {}), primary_keys])
        return
    table = connection.ops.quote_name(model._meta.db_table)
    (pk_column, pk_type, _), *columns = _columns(
        model, (model._meta.pk.attname, *fields), connection.vendor
    )
    arrays = [f"%b::{pk_type}[]"] + [f"%b::{db_type}[]" for _, db_type, _ in columns]
    aliases = ["pk", *(f"c{i}" for i in range(len(fields)))]
    assignments = [f"{column} = v.c{i}" for i, (column, _, _) in enumerate(columns)]
    constant_values = []
    for attname, value in constants.items():
        column, db_type, _ = _columns(model, (attname,), connection.vendor)[0]
        assignments.append(f"{column} = %b::{db_type}")
        constant_values.append(value)
    sql = (
        f"UPDATE {table} AS t SET {', '.join(assignments)} "
        f"FROM unnest({', '.join(arrays)}) AS v({', '.join(aliases)}) "
        f"WHERE t.{pk_column} = v.pk"
    )
    columns_in = list(zip(*rows, strict=True))
    params = [*constant_values, *(_array_param(list(values)) for values in columns_in)]
    pipeline.write(sql, params)


@cache
def _few_rows_update_sql(model, fields: tuple[str, ...], constant_names: tuple[str, ...]):
    """`update_rows`' statement for a few rows, which arrive as one JSON parameter (see
    `FEW_ROWS`), and the rows' JSON keys."""
    table = connection.ops.quote_name(model._meta.db_table)
    pk = model._meta.pk
    described = _columns(model, fields, connection.vendor)
    assignments = [f"{column} = v.{column}" for column, _, _ in described]
    assignments += [
        f"{column} = %b::{db_type}"
        for column, db_type, _ in _columns(model, constant_names, connection.vendor)
    ]
    quoted_pk = connection.ops.quote_name(pk.column)
    pk_type = _columns(model, (pk.attname,), connection.vendor)[0][1]
    sql = (
        f"UPDATE {table} AS t SET {', '.join(assignments)} "
        f"FROM json_populate_recordset(NULL::{table}, %b::json) AS v "
        f"WHERE t.{quoted_pk} = v.{quoted_pk} AND t.{quoted_pk} = ANY(%b::{pk_type}[])"
    )
    by_attname = {field.attname: field for field in model._meta.concrete_fields}
    return sql, [pk.column, *(by_attname[attname].column for attname in fields)]
