"""The set-based writes (`market.db.bulk`) and what they rely on.

On PostgreSQL a few rows travel as one JSON parameter and many as arrays, bound
server-side; these tests pin, for both, that every value comes back exactly as written
(quotes, backslashes, braces, "NULL", None, Decimals, JSON, times), that repeated columns
folded into constants write the same rows, that the
statement behaves like any other Django query (counted, inside the transaction, Django's
exceptions), and that the lean indexes still serve the lookups. On SQLite the same tests
run against the fallback.
"""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from market.db.bulk import FEW_ROWS, _array_param, insert_instances, insert_rows, update_rows
from market.db.pipeline import allocate_ids, flush
from market.models import Balance, LedgerEntry, Order, TicketLog
from market.services.audit import COLUMNS
from market.tests import factories

TRICKY = [
    "plain",
    "",
    'with "quotes"',
    "back\\slash",
    "trailing\\",
    '\\"',
    "comma, {braces}",
    "NULL",
    "null",
    " spaced ",
    "ünïcødé €",
    "it's",
]

ORDER_COLUMNS = ("owner_id", "side", "price", "quantity", "reserved", "status_reason")


def order_constants(market, **extra) -> dict:
    now = timezone.now()
    return {
        "market_id": market.pk,
        "order_type": Order.Type.LIMIT,
        "status": Order.Status.OPEN,
        "created_at": now,
        "updated_at": now,
        "filled_quantity": 0,
        "filled_value": D("0"),
        "fee_rate": D("0"),
        "fee_paid": D("0"),
        **extra,
    }


def with_ids(rows, model=Order):
    """The rows with ids allocated ahead, as the services write them."""
    ids = allocate_ids({model: len(rows)}).take(model)
    return ids, [(pk, *row) for pk, row in zip(ids, rows, strict=True)]


def stored(ids, columns):
    by_id = {
        row[0]: row[1:] for row in Order.objects.filter(pk__in=ids).values_list("pk", *columns)
    }
    return [by_id[pk] for pk in ids]


def test_numbers_travel_as_array_text_and_everything_else_through_psycopg():
    assert _array_param([1, 22, None]) == "{1,22,NULL}"
    assert _array_param([D("1.50"), D("-0.01"), D("1E+3")]) == "{1.50,-0.01,1E+3}"
    # Text, booleans, dates…: psycopg's own adaptation, no quoting of ours.
    assert _array_param(["a", None, 'q"b\\']) == ["a", None, 'q"b\\']
    assert _array_param([True, False]) == [True, False]
    now = timezone.now()
    assert _array_param([now, None]) == [now, None]


# A few rows travel as one JSON parameter, many as an array per column: both must write
# the same values.
SIZES = pytest.mark.parametrize("copies", [1, FEW_ROWS // len(TRICKY) + 1], ids=["few", "many"])
# Each row by a call of its own: the one-row statement (a VALUES list), or all in one call.
ONE_BY_ONE = pytest.mark.parametrize("one_by_one", [False, True], ids=["together", "one-by-one"])


def insert(model, columns, rows, *, one_by_one: bool, constants=None) -> None:
    for part in ([row] for row in rows) if one_by_one else [rows]:
        insert_rows(model, columns, part, constants=constants)


@SIZES
@ONE_BY_ONE
def test_insert_rows_round_trips_tricky_values_in_row_order(cea, copies, one_by_one):
    owner = factories.trader()
    rows = [
        (owner.pk, "BUY" if i % 2 else "SELL", D("10.00") + i, i + 1, D(i) / 100 + 1, text)
        for i, text in enumerate(TRICKY * copies)
    ]
    ids, with_pk = with_ids(rows)
    columns = ("id", *ORDER_COLUMNS)
    insert(Order, columns, with_pk, constants=order_constants(cea), one_by_one=one_by_one)
    assert stored(ids, ORDER_COLUMNS) == rows


@SIZES
def test_columns_equal_in_every_row_are_written_like_the_others(cea, copies):
    owner = factories.trader()
    # side, price and status_reason are the same in every row, client_order_id all None.
    rows = [
        (owner.pk, "SELL", D("11.00"), q, D(q), "same", None) for q in range(1, 3 * copies + 2)
    ]
    columns = (*ORDER_COLUMNS, "client_order_id")
    ids, with_pk = with_ids(rows)
    insert_rows(Order, ("id", *columns), with_pk, constants=order_constants(cea))
    assert stored(ids, columns) == rows

    # Every column the same: still one row per input row.
    same = [(owner.pk, "BUY", D("9.00"), 5, D("45.00"), "all the same")] * (3 * copies)
    insert_rows(Order, ORDER_COLUMNS, same, constants=order_constants(cea))
    written = Order.objects.filter(status_reason="all the same")
    assert list(written.values_list(*ORDER_COLUMNS)) == same


@SIZES
@ONE_BY_ONE
def test_tickets_keep_their_json_times_and_addresses_exactly(db, copies, one_by_one):
    """The audit's rows: JSON of every shape (nested, strings that look like JSON),
    times to the microsecond in the rows themselves, IP addresses and NULLs."""
    count = 5 * copies
    ids = allocate_ids({TicketLog: count}).take(TicketLog)
    stamp = timezone.now().replace(microsecond=123456)
    payloads = [
        {"nested": {"list": [1, "two", None]}, "quote": 'say "hi"\\'},
        {"price": "14.05", "quantity": 5, "flag": True, "none": None},
        {},
        {"text": '{"not": "an object"}'},
        {"unicode": "ünïcødé €"},
    ]
    rows = [
        (
            pk,
            f"T-{pk}",
            "TRADE",
            "Trade",
            str(pk),
            None,
            None,
            TicketLog.Status.SUCCESS,
            payloads[i % len(payloads)],
            {},
            {"i": i},
            [i, i + 1],
            ["trade", "CEA"],
            "2001:db8::1" if i % 2 else None,
            stamp + timedelta(microseconds=i),
            None,
        )
        for i, pk in enumerate(ids)
    ]
    insert(TicketLog, COLUMNS, rows, one_by_one=one_by_one)
    by_id = {t.pk: t for t in TicketLog.objects.filter(pk__in=ids)}
    for i, pk in enumerate(ids):
        ticket = by_id[pk]
        expected = rows[i]
        assert ticket.request_payload == expected[8]
        assert (ticket.after_state, ticket.related_ticket_ids, ticket.tags) == (
            {"i": i},
            [i, i + 1],
            ["trade", "CEA"],
        )
        assert (ticket.ip_address, ticket.created_at) == (expected[13], expected[14])


def test_insert_rows_without_ids_and_with_nothing_to_insert(cea):
    owner = factories.trader()
    before = Order.objects.count()
    with CaptureQueriesContext(connection) as queries:
        insert_rows(Order, ORDER_COLUMNS, [])
    assert not queries
    row = (owner.pk, "BUY", D("9.00"), 5, D("45.00"), "x")
    insert_rows(Order, ORDER_COLUMNS, [row], constants=order_constants(cea))
    assert Order.objects.count() == before + 1


def test_instances_are_inserted_whole_with_the_ids_given_and_marked_saved(cea):
    owner = factories.trader()
    ids = allocate_ids({TicketLog: 1, Order: 2})
    (ticket_id,) = ids.take(TicketLog)
    ticket = TicketLog(
        pk=ticket_id,
        ticket_id=f"TKT-TEST-{ticket_id}",
        action_type="TEST",
        entity_type="Order",
        request_payload={"quote": 'a "b" \\ c', "n": [1, 2.5, None]},
        ip_address="192.0.2.7",
    )
    orders = [
        Order(
            pk=pk, owner=owner, market=cea, side="SELL", order_type="LIMIT",
            price=D("14.05"), quantity=3, reserved=D("3"), ticket_id=ticket_id, post_only=True,
        )
        for pk in ids.take(Order)
    ]  # fmt: skip
    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        insert_instances(orders)  # naming the ticket written after them (deferred keys)
        insert_instances([ticket])
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 2 and not any("RETURNING" in sql for sql in inserts)
    assert all(not o._state.adding for o in [*orders, ticket])
    stored = TicketLog.objects.get(pk=ticket_id)
    assert stored.request_payload == ticket.request_payload
    assert (stored.ip_address, stored.created_at) == ("192.0.2.7", ticket.created_at)
    assert stored.created_at >= before  # auto_now_add filled in, as a save would
    for order in orders:
        order.refresh_from_db()
        assert (order.ticket_id, order.price, order.post_only) == (ticket_id, D("14.05"), True)
        assert order.created_at >= before and order.updated_at >= before
    with pytest.raises(ValueError, match="with their ids"):
        insert_instances([TicketLog(ticket_id="TKT-NO-ID", action_type="TEST")])
    with pytest.raises(ValueError, match="one model"):
        insert_instances([*orders, ticket])


@pytest.mark.postgres  # SQLite keeps any length of text, whoever writes it (the ORM too)
@pytest.mark.parametrize("count", [1, 3, FEW_ROWS + 1], ids=["one", "few", "many"])
def test_a_text_longer_than_its_column_is_refused_never_cut(cea, count):
    owner = factories.trader()
    too_long = "x" * (Order._meta.get_field("status_reason").max_length + 1)
    rows = [(owner.pk, "BUY", D("9.00"), 5, D("45.00"), "fits")] * count
    insert_rows(Order, ORDER_COLUMNS, rows, constants=order_constants(cea))
    ids = list(Order.objects.filter(owner=owner).values_list("pk", flat=True))
    attempts = [
        lambda: insert_rows(
            Order, ORDER_COLUMNS, [(*row[:-1], too_long) for row in rows],
            constants=order_constants(cea),
        ),
        lambda: insert_rows(
            Order, ORDER_COLUMNS[:-1], [row[:-1] for row in rows],
            constants=order_constants(cea, status_reason=too_long),
        ),
        lambda: update_rows(Order, ("status_reason",), [(pk, too_long) for pk in ids]),
    ]  # fmt: skip
    for attempt in attempts:
        with pytest.raises(DataError), transaction.atomic():
            attempt()
            flush()  # in a pipelined transaction the write fails at the next sync point
    assert (
        sorted(Order.objects.filter(owner=owner).values_list("status_reason", flat=True))
        == ["fits"] * count
    )


def test_bulk_statements_are_django_queries_inside_the_transaction(cea):
    owner = factories.trader()
    row = (owner.pk, "BUY", D("9.00"), 5, D("45.00"), "")
    constants = order_constants(cea, client_order_id="key-1")
    with CaptureQueriesContext(connection) as queries:
        insert_rows(Order, ORDER_COLUMNS, [row], constants=constants)
    # One statement, seen by Django (SQLite's fallback adds its own BEGIN/savepoints).
    assert [q["sql"].split()[0] for q in queries if "market_order" in q["sql"]] == ["INSERT"]
    # A unique-key violation arrives as Django's IntegrityError and leaves the
    # transaction to roll back as usual.
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(Order, ORDER_COLUMNS, [row], constants=constants)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        insert_rows(Order, ORDER_COLUMNS, [row], constants=order_constants(cea))
        1 / 0  # noqa: B018 - roll the block back
    assert Order.objects.filter(owner=owner).count() == 1


@pytest.mark.parametrize("count", [3, FEW_ROWS + 1], ids=["few", "many"])
def test_update_rows_writes_each_row_its_own_values_and_the_constants(cea, count):
    holders = [factories.trader(EUR="100") for _ in range(count)]
    balances = list(Balance.objects.filter(holder__in=holders, asset="EUR").order_by("pk"))
    update_rows(
        Balance,
        ("available", "locked"),
        [(b.pk, D("100") - i, D(i) + D("0.25")) for i, b in enumerate(balances)],
    )
    fresh = Balance.objects.filter(pk__in=[b.pk for b in balances]).order_by("pk")
    assert [(b.available, b.locked) for b in fresh] == [
        (D("100") - i, D(i) + D("0.25")) for i in range(count)
    ]
    order = Order.objects.create(
        owner=holders[0], market=cea, side="BUY", order_type="LIMIT", price=1, quantity=3
    )
    stamp = timezone.now()
    update_rows(
        Order, ("status_reason",), [(order.pk, 'said "so"')], constants={"updated_at": stamp}
    )
    order.refresh_from_db()
    assert (order.status_reason, order.updated_at) == ('said "so"', stamp)


def _scans(table: str) -> tuple[int, int]:
    """(sequential scans, index scans) of `table` so far in this transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables "
            "WHERE relname = %s",
            [table],
        )
        return cursor.fetchone()


@pytest.mark.postgres  # PostgreSQL query plans
@pytest.mark.parametrize("count", [1, FEW_ROWS - 1])
def test_a_few_rows_update_finds_its_rows_by_primary_key(cea, count):
    """A placement's update of the orders it filled reads those rows by the primary key,
    not every resting order of the market."""
    owner = factories.trader()
    rows = [(owner.pk, "BUY", D("1.00"), 1, D("1.00"), "") for _ in range(3000)]
    ids, with_pk = with_ids(rows)
    insert_rows(Order, ("id", *ORDER_COLUMNS), with_pk, constants=order_constants(cea))
    flush()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE market_order")
    before = _scans("market_order")
    update_rows(Order, ("status_reason",), [(pk, "filled") for pk in ids[-count:]])
    flush()
    (seq_after, index_after), (seq_before, index_before) = _scans("market_order"), before
    assert seq_after == seq_before
    assert index_after > index_before
    assert Order.objects.filter(status_reason="filled").count() == count


# --------------------------------------------------------------------------- indexes


def _indexes(table: str) -> dict[str, dict]:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


@pytest.mark.parametrize(
    ("table", "single_columns_gone", "foreign_keys"),
    [
        (
            "market_order",
            ["owner_id", "market_id"],
            ["owner_id", "market_id", "ticket_id"],
        ),
        ("market_ledgerentry", ["holder_id"], ["holder_id", "order_id", "trade_id", "ticket_id"]),
    ],
)
def test_redundant_indexes_are_gone_and_every_foreign_key_stays(
    db, table, single_columns_gone, foreign_keys
):
    constraints = _indexes(table).values()
    single = {tuple(c["columns"]) for c in constraints if c["index"] and not c["unique"]}
    for column in single_columns_gone:
        assert (column,) not in single
    referenced = {c["columns"][0] for c in constraints if c["foreign_key"]}
    assert set(foreign_keys) <= referenced


@pytest.mark.postgres  # PostgreSQL query plans
def test_lookups_still_walk_an_index(cea):
    """With the single-column indexes dropped and the causes' indexes partial, the
    lookups the services and the protected-delete checks make still use an index."""
    owners = [factories.trader() for _ in range(40)]
    trade_free = [
        (owners[i % 40].pk, "BUY", D("1.00") + i % 90, 1, D("1.00"), "") for i in range(8000)
    ]
    ids, with_pk = with_ids(trade_free)
    insert_rows(Order, ("id", *ORDER_COLUMNS), with_pk, constants=order_constants(cea))
    insert_rows(
        LedgerEntry,
        ("holder_id", "order_id", "available_delta", "locked_delta"),
        [(owners[i % 40].pk, pk, D("-1.00"), D("1.00")) for i, pk in enumerate(ids)],
        constants={
            "asset": "EUR",
            "kind": LedgerEntry.Kind.RESERVE,
            "created_at": timezone.now(),
        },
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE market_order")
        cursor.execute("ANALYZE market_ledgerentry")
    owner = owners[0]
    plans = {
        "order_owner_idx": Order.objects.filter(owner=owner, status=Order.Status.OPEN),
        "order_ticket_idx": Order.objects.filter(ticket_id=1),
        "ledger_holder_asset_idx": LedgerEntry.objects.filter(holder=owner),
        "ledger_order_idx": LedgerEntry.objects.filter(order_id__in=ids[:3]),
        "ledger_trade_idx": LedgerEntry.objects.filter(trade_id=1),
        "ledger_ticket_idx": LedgerEntry.objects.filter(ticket_id=1),
    }
    for index, queryset in plans.items():
        plan = queryset.explain()
        assert index in plan, (index, plan)


@pytest.mark.parametrize("count", [1, FEW_ROWS], ids=["few", "many"])
def test_a_json_field_refuses_what_json_cannot_hold_on_every_path(db, count):
    """A Decimal inside a JSON field is the caller's mistake on the ORM's path too: it is
    refused, never stored as something else, however many rows travel."""
    ids = allocate_ids({TicketLog: count}).take(TicketLog)
    rows = [
        (pk, f"T-{pk}", "TRADE", "Trade", "", None, None, "SUCCESS", {"price": D("1.5")}, {})
        for pk in ids
    ]
    columns = COLUMNS[:10]
    with pytest.raises(TypeError), transaction.atomic():
        insert_rows(TicketLog, columns, rows, constants={"created_at": timezone.now()})
    assert not TicketLog.objects.filter(pk__in=ids).exists()
