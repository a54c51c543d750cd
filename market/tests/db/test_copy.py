"""The large inserts by COPY (`market.db.copy`, chosen by `market.db.bulk.insert_rows`
for many rows outside a pipeline): the same rows as the unnest statement, every tricky
value intact, counted like a query, Django's exceptions."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from market.db import bulk
from market.db.copy import copy_text
from market.db.pipeline import pipelined_atomic
from market.models import LedgerEntry, Order, TicketLog
from market.services.audit import ticket_record
from market.tests import factories
from market.tests.db.test_bulk import ORDER_COLUMNS, TRICKY, order_constants, stored, with_ids

pytestmark = pytest.mark.postgres  # COPY is PostgreSQL's


def test_values_as_copy_text():
    assert copy_text(None) == "\\N"
    assert copy_text(12) == "12"
    assert copy_text(D("1.50")) == "1.50"
    assert copy_text(True) == "t" and copy_text(False) == "f"
    assert copy_text("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert copy_text(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05+00:00"


@pytest.fixture
def copy_always(monkeypatch):
    monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 1)


def test_copy_round_trips_tricky_values_like_unnest(cea, copy_always):
    owner = factories.trader()
    texts = [*TRICKY, "tab\there", "new\nline", "\\N", "cr\r"]
    rows = [
        (owner.pk, "BUY" if i % 2 else "SELL", D("10.00") + i, i + 1, D(i) / 100 + 1, text)
        for i, text in enumerate(texts)
    ]
    ids, with_pk = with_ids(rows)
    with CaptureQueriesContext(connection) as queries:
        bulk.insert_rows(Order, ("id", *ORDER_COLUMNS), with_pk, constants=order_constants(cea))
    assert [q["sql"].split()[0] for q in queries] == ["COPY"]
    assert stored(ids, ORDER_COLUMNS) == rows
    # Nones, and a constant column folded as the unnest path folds it.
    rows = [(owner.pk, "SELL", D("11.00"), q, D(q), "same", None) for q in (1, 2, 3)]
    ids, with_pk = with_ids(rows)
    columns = (*ORDER_COLUMNS, "client_order_id")
    bulk.insert_rows(Order, ("id", *columns), with_pk, constants=order_constants(cea))
    assert stored(ids, columns) == rows


def test_copy_writes_json_and_ip_columns(db, copy_always):
    ticket = ticket_record(action_type="X", entity_type="Y", payload={"a": 'q"\\\n'})
    rows = [
        (pk, f"TKT-T-{pk}", "COPY", "Test", "", None, None, "SUCCESS", {"k": [1, "\t"]}, {},
         {}, [], ["x"], "127.0.0.1", timezone.now(), None)
        for pk in (ticket.pk + 100, ticket.pk + 101)
    ]  # fmt: skip
    from market.services.audit import COLUMNS

    bulk.insert_rows(TicketLog, COLUMNS, rows)
    written = TicketLog.objects.filter(action_type="COPY").order_by("pk")
    assert [t.request_payload for t in written] == [{"k": [1, "\t"]}] * 2
    assert {t.ip_address for t in written} == {"127.0.0.1"}


def test_copy_is_used_only_for_many_rows_outside_a_pipeline(cea, monkeypatch):
    owner = factories.trader()
    monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 3)
    rows = [(owner.pk, "BUY", D("9.00"), q, D("9.00") * q, "") for q in (1, 2, 3)]
    for count, first_word in ((2, "INSERT"), (3, "COPY")):
        with CaptureQueriesContext(connection) as queries:
            bulk.insert_rows(Order, ORDER_COLUMNS, rows[:count], constants=order_constants(cea))
        assert [q["sql"].split()[0] for q in queries] == [first_word]
    with CaptureQueriesContext(connection) as queries, pipelined_atomic():
        bulk.insert_rows(Order, ORDER_COLUMNS, rows, constants=order_constants(cea))
    assert "COPY" not in [q["sql"].split()[0] for q in queries]
    assert Order.objects.filter(owner=owner).count() == 8


def test_copy_errors_are_djangos_and_roll_back(cea, copy_always):
    owner = factories.trader()
    row = (owner.pk, "BUY", D("9.00"), 5, D("45.00"), "")
    constants = order_constants(cea, client_order_id="dup")
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert_rows(Order, ORDER_COLUMNS, [row, row], constants=constants)
    assert not Order.objects.filter(owner=owner).exists()
    # A CHECK constraint (a ledger entry that moves nothing).
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert_rows(
            LedgerEntry,
            ("holder_id", "asset", "kind", "available_delta", "locked_delta", "ticket_id"),
            [(owner.pk, "EUR", "DEPOSIT", D("0"), D("0"), None)] * 2,
            constants={"created_at": timezone.now()},
        )
