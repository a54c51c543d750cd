"""CSV downloads of the back office: one streamed response, written by the csv module.

`csv_response(name, header, rows)` streams `header` then `rows` (any iterable, consumed
lazily while the response is sent, so a large export never sits in memory: pass rows from
`.values_list(...)` or `.iterator(chunk_size=...)`, never one query per row). The file is
`<name>-<YYYY-MM-DD>.csv`, sent as an attachment, UTF-8 with a byte-order mark (so
spreadsheet programs read accents right).

Cells are written as text, the same way in every export: nothing → empty, `True`/`False`
→ yes/no, a `Decimal` in plain digits (no exponent, no separators), a datetime in ISO 8601
in UTC, a list or dict as JSON. Text that a spreadsheet would run as a formula (starting
with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading apostrophe. Numbers
and dates are written by this module and stay as they are (a negative amount is a number,
not a formula).
"""

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def neutralise(text: str) -> str:
    """`text`, with a leading apostrophe if a spreadsheet would read it as a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def cell(value) -> str:
    """One value as the text of its cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return neutralise(json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False))
    return neutralise(str(value))


class _Line:
    """A file-like object whose `write` returns what it was given: csv.writer then
    hands back each line it formats, for the response to stream."""

    def write(self, text: str) -> str:
        return text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield BOM + writer.writerow([cell(name) for name in header])
    for row in rows:
        yield writer.writerow([cell(value) for value in row])


def csv_filename(name: str) -> str:
    return f"{name}-{timezone.now().astimezone(UTC).date().isoformat()}.csv"


def csv_response(name: str, header: Sequence[str], rows: Iterable[Sequence]):
    """A streamed CSV attachment `<name>-<today>.csv` of `header` and `rows`."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{csv_filename(name)}"'
    return response


def csv_refused(*reasons: str) -> HttpResponseBadRequest:
    """400 for an export asked with wrong filters: why, one reason a line, as plain text."""
    return HttpResponseBadRequest(
        "\n".join(["Cannot export with these filters.", *reasons]) + "\n",
        content_type="text/plain; charset=utf-8",
    )
