"""The CSV writer every export shares: a streamed attachment named with the date, UTF-8,
cells written the same way everywhere, and text a spreadsheet would run as a formula
made inert."""

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse

from config.csv_export import cell, csv_refused, csv_response, neutralise


def read(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")  # the byte-order mark spreadsheets look for
    return list(csv.reader(io.StringIO(body[1:])))


@pytest.mark.parametrize(
    "text", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x","y")']
)
def test_text_a_spreadsheet_would_run_gets_a_leading_apostrophe(text):
    assert neutralise(text) == f"'{text}"
    assert cell(text) == f"'{text}"


@pytest.mark.parametrize("text", ["", "MM-001", "a=b", "Ünïcode €", "'quoted", " =1"])
def test_other_text_is_kept(text):
    assert cell(text) == text


def test_values_are_written_the_same_way_in_every_export():
    assert cell(None) == ""
    assert (cell(True), cell(False)) == ("yes", "no")
    assert cell(Decimal("1234.50")) == "1234.50"
    assert cell(Decimal("1E+3")) == "1000"  # plain digits, never an exponent
    assert cell(Decimal("-5.00")) == "-5.00"  # a number, not a formula
    assert cell(42) == "42"
    paris = timezone(timedelta(hours=1))
    assert cell(datetime(2026, 3, 1, 10, 30, tzinfo=paris)) == "2026-03-01T09:30:00+00:00"
    assert cell(date(2026, 3, 1)) == "2026-03-01"
    assert cell(["TKT-2026-000001"]) == '["TKT-2026-000001"]'
    assert cell({"note": "€"}) == '{"note": "€"}'
    assert cell(["=1"]) == '["=1"]'  # JSON starts with a bracket: never a formula


def test_response_is_a_streamed_utf8_attachment_named_with_the_date():
    rows = iter([("=cmd|' /C calc'!A0", Decimal("1.50"), None), ("Zoë", 2, True)])
    response = csv_response("things", ["Name", "Amount", "Flag"], rows)
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = datetime.now(UTC).date().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="things-{today}.csv"'
    assert read(response) == [
        ["Name", "Amount", "Flag"],
        ["'=cmd|' /C calc'!A0", "1.50", ""],
        ["Zoë", "2", "yes"],
    ]


def test_rows_are_read_while_streaming_not_before():
    read_rows = []

    def rows():
        for number in range(3):
            read_rows.append(number)
            yield (number,)

    response = csv_response("lazy", ["n"], rows())
    assert read_rows == []
    assert read(response) == [["n"], ["0"], ["1"], ["2"]]
    assert read_rows == [0, 1, 2]


def test_refused_is_plain_text_400_with_every_reason():
    response = csv_refused("since: Enter a valid date.", "outcome: Not a choice.")
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().splitlines() == [
        "Cannot export with these filters.",
        "since: Enter a valid date.",
        "outcome: Not a choice.",
    ]
