"""`COPY … FROM STDIN` for the large inserts (a liquidity operation's thousands of orders
and ledger entries).

For thousands of rows PostgreSQL takes COPY's text stream about a third faster than an
`INSERT … SELECT FROM unnest(arrays)` of the same rows (`bench/liquidity_execute.py`
measures both), and building the stream costs no more Python than the arrays. COPY
cannot run inside psycopg's pipeline mode, costs one round trip more than a statement, and
returns nothing, so `market.db.bulk.insert_rows` uses it only for many rows outside a
pipeline; the rows written are the same either way.

The statement is recorded like any Django query (`connection.queries`, so query counts
see it) and its errors arrive as Django's exceptions.
"""

import time
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from django.db import connection

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_PLAIN = frozenset({int, Decimal})


def copy_text(value) -> str:
    """One value as a field of COPY's text format (already JSON text for JSON columns)."""
    if value is None:
        return "\\N"
    kind = type(value)
    if kind in _PLAIN:
        return str(value)
    if kind is bool:
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).translate(_ESCAPES)


_TEXT = frozenset({str, type(None)})


def _column_text(values: Sequence) -> list[str]:
    kinds = set(map(type, values))
    if kinds <= _PLAIN:  # the bulk of the columns: C-speed
        return list(map(str, values))
    if kinds <= _TEXT:  # few distinct values (sides, assets): each escaped once
        escaped = {value: copy_text(value) for value in set(values)}
        return list(map(escaped.__getitem__, values))
    return list(map(copy_text, values))


def copy_rows(
    table: str, names: Sequence[str], columns: Sequence[Sequence], constants: Sequence
) -> None:
    """Insert the rows whose `columns` (one sequence of values per quoted column name in
    `names`, all of one length) are followed by the `constants` (one value each, for the
    remaining names), by one `COPY table (names) FROM STDIN`."""
    tail = "".join("\t" + copy_text(value) for value in constants) + "\n"
    if not columns:
        raise ValueError("copy_rows needs at least one column of values")
    texts = [_column_text(values) for values in columns]
    payload = tail.join(map("\t".join, zip(*texts, strict=True))) + tail
    sql = f"COPY {table} ({', '.join(names)}) FROM STDIN"
    start = time.monotonic()
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(sql) as copy,
    ):
        copy.write(payload)
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{sql} -- {len(texts[0])} rows", "time": f"{time.monotonic() - start:.3f}"}
        )
