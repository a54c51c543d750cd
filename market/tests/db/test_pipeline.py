"""The hot path's round-trip helpers (`market.db.pipeline`).

What matters to a user: a write that fails inside a pipelined transaction is never lost
(the block raises and nothing it wrote stays), a caller's own transaction survives a
failed nested block, ids allocated ahead never collide with other inserts, and values read
by hand-written SQL come back as the ORM would give them (Decimals, not floats, on
SQLite).
"""

import contextlib
import gc
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from market.db import orders as orders_db
from market.db import pipeline as sql
from market.models import Balance, Market, Order, TicketLog
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants, place

ON_POSTGRESQL = connection.vendor == "postgresql"


def _break_tick_size(market_id: int) -> None:
    # The CHECK constraint market_tick_positive refuses it: a write that fails on the
    # server, after the Python code has moved on.
    sql.write(f"UPDATE {Market._meta.db_table} SET tick_size = -1 WHERE id = %s", [market_id])


def test_a_failed_write_in_a_nested_block_rolls_back_to_its_savepoint(cea):
    before = cea.book_version
    with transaction.atomic():
        with pytest.raises(IntegrityError), sql.pipelined_atomic():
            sql.write(
                f"UPDATE {Market._meta.db_table} SET book_version = book_version + 1 "
                "WHERE id = %s",
                [cea.pk],
            )
            _break_tick_size(cea.pk)
        # The caller's transaction is still usable, and the block left nothing behind.
        cea.refresh_from_db()
        assert (cea.book_version, cea.tick_size) == (before, D("0.01"))


def test_reads_see_the_writes_queued_before_them(cea):
    with sql.pipelined_atomic():
        sql.write(f"UPDATE {Market._meta.db_table} SET book_version = 41 WHERE id = %s", [cea.pk])
        row = sql.send(
            f"SELECT book_version FROM {Market._meta.db_table} WHERE id = %s", [cea.pk]
        ).one()
    assert row == (41,)


def test_values_come_back_typed_as_the_orm_gives_them(db):
    holder = factories.trader(EUR="1234.56")
    statement = sql.send(
        f"SELECT available, locked FROM {Balance._meta.db_table} "
        "WHERE holder_id = %s AND asset = 'EUR'",
        [holder.pk],
        model=Balance,
        columns=("available", "locked"),
    )
    available, locked = statement.one()
    assert (available, locked) == (D("1234.56"), D("0"))
    assert type(available) is D and type(locked) is D


def test_allocated_ids_are_fresh_and_never_taken_by_a_later_insert(cea):
    owner = factories.trader()
    with transaction.atomic():
        ids = sql.allocate_ids({Order: 3, TicketLog: 2})
        orders, tickets = ids.take(Order), ids.take(TicketLog)
        assert len(set(orders)) == 3 and orders == sorted(orders)
        assert len(set(tickets)) == 2
        # An ordinary insert in the same transaction takes an id after the block...
        later = Order.objects.create(
            owner=owner, market=cea, side="BUY", order_type="LIMIT", price=1, quantity=1
        )
        assert later.pk > max(orders)
        # ...and the allocated ids can still be written.
        rows = [
            row._replace(id=pk)
            for pk, row in zip(
                orders, _resting_rows(owner, cea, side="SELL", count=3), strict=True
            )
        ]
        orders_db.insert_orders(rows, now=timezone.now())
    assert Order.objects.filter(pk__in=orders, side="SELL").count() == 3
    assert sql.allocate_ids({}).take(Order) == []


def test_orders_written_with_allocated_ids_keep_them_and_the_time_given(cea):
    owner = factories.trader()
    stamp = timezone.now() - timedelta(days=1)
    with transaction.atomic():
        (pk,) = sql.allocate_ids({Order: 1}).take(Order)
        (row,) = _resting_rows(owner, cea, side="BUY", count=1)
        orders_db.insert_orders([row._replace(id=pk)], now=stamp)
    stored = Order.objects.get(pk=pk)
    assert stored.created_at == stored.updated_at == stamp
    # An order without its id is refused before anything is written.
    with pytest.raises(ValueError, match="allocated ahead"):
        orders_db.insert_orders(_resting_rows(owner, cea, side="BUY", count=2), now=stamp)
    assert Order.objects.filter(owner=owner).count() == 1


def _resting_rows(owner, market, *, side, count):
    from market.core.placement import RestingOrder, rest

    resting = rest(
        market=market.rules,
        orders=[RestingOrder(owner.pk, side, D("2.00"), 1) for _ in range(count)],
        best_bid=None,
        best_ask=None,
    )
    return list(resting.orders)


@pytest.mark.postgres  # pipelines exist on PostgreSQL
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_failed_write_sent_with_the_commit_raises_and_nothing_is_committed(migrated_rows):
    """When the block owns the transaction its writes travel with COMMIT: a failure
    there still reaches the caller, and the transaction is rolled back whole."""
    market = Market.objects.get(code="CEA")
    assert not connection.in_atomic_block
    with pytest.raises(IntegrityError), sql.pipelined_atomic():
        sql.write(
            f"UPDATE {Market._meta.db_table} SET book_version = book_version + 7 WHERE id = %s",
            [market.pk],
        )
        _break_tick_size(market.pk)
    fresh = Market.objects.get(pk=market.pk)
    assert (fresh.book_version, fresh.tick_size) == (market.book_version, market.tick_size)
    # The connection is usable again, and an order placed now commits as usual.
    seller, buyer = factories.trader(CEA=5), factories.trader(EUR="1000")
    order_place(
        owner=seller,
        request=order_request_parse(
            market_code="CEA", side="SELL", order_type="LIMIT", price="14.00", quantity=5
        ),
    )
    placement = order_place(
        owner=buyer,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="MARKET", quantity=5
        ),
    )
    assert placement.order.filled_quantity == 5
    assert_all_invariants()


@pytest.mark.parametrize("extra", [0, sql.SHORT_LIST, 70_000])
def test_any_of_finds_the_rows_named_however_many_are_named(cea, extra):
    """Beyond the parameters a statement may have (65,535 on PostgreSQL): withdrawing an
    operation with that many orders must still find each one."""
    eua = Market.objects.get(code="EUA")
    named = [cea.pk, eua.pk, *range(10**9, 10**9 + extra)]  # ids of no row pad the list
    among, params = sql.any_of("id", named, db_type="bigint")
    found = sql.send(f"SELECT code FROM {Market._meta.db_table} WHERE {among}", params).rows()
    assert sorted(code for (code,) in found) == ["CEA", "EUA"]
    among, params = sql.any_of("id", [], db_type="bigint")
    assert sql.send(f"SELECT id FROM {Market._meta.db_table} WHERE {among}", params).rows() == []


@pytest.mark.parametrize("counted", [False, True], ids=["psycopg-cursors", "django-cursors"])
def test_writes_held_by_one_statement_all_land_or_none_do(cea, counted):
    """A placement's writes travel as one statement: every row it names is written, and
    when one part fails (a CHECK) nothing of the others stays. The same holds whether or
    not Django is counting the statements (a test or DEBUG sees them all)."""
    eua = Market.objects.get(code="EUA")
    holder = factories.trader(EUR="10")
    balance = Balance.objects.get(holder=holder, asset="EUR")
    queries = CaptureQueriesContext(connection)
    with queries if counted else contextlib.nullcontext(), sql.pipelined_atomic():
        orders_db.MarketRead(market_id=cea.pk, lock=True).wait()
        with sql.one_statement():
            orders_db.bump_book_version(cea.pk)
            sql.write(
                f"UPDATE {Market._meta.db_table} SET slippage_pct = 7 WHERE id = %s", [eua.pk]
            )
            sql.write(
                f"UPDATE {Balance._meta.db_table} SET available = 3, locked = 7 WHERE id = %s",
                [balance.pk],
            )
    if counted:
        writes = [q["sql"].split()[0] for q in queries]
        writes = [verb for verb in writes if verb in ("WITH", "UPDATE")]
        assert writes == (["WITH"] if ON_POSTGRESQL else ["UPDATE"] * 3)
    assert Market.objects.get(pk=cea.pk).book_version == cea.book_version + 1
    assert Market.objects.get(pk=eua.pk).slippage_pct == 7
    balance.refresh_from_db()
    assert (balance.available, balance.locked) == (3, 7)

    # (Inside the test's transaction: the failed block rolls back to its savepoint.)
    with pytest.raises(IntegrityError), sql.pipelined_atomic(), sql.one_statement():
        orders_db.bump_book_version(cea.pk)
        _break_tick_size(eua.pk)
    assert Market.objects.get(pk=cea.pk).book_version == cea.book_version + 1
    assert Market.objects.get(pk=eua.pk).tick_size == eua.tick_size


def test_statements_keep_working_on_reused_cursors_after_a_failure(cea):
    """The hot path reuses its cursors: after a refused order and a failed write, reads
    and placements on the same connection still see and write the right rows."""
    seller, buyer = factories.trader(CEA=5), factories.trader(EUR="10")
    for _ in range(2):
        with pytest.raises(ValidationError):
            place(buyer, "BUY", price="14.00", quantity=5)
        with pytest.raises(IntegrityError), sql.pipelined_atomic():
            _break_tick_size(cea.pk)
    place(seller, "SELL", price="2.00", quantity=5)
    placement = place(buyer, "BUY", order_type="MARKET", quantity=4)
    assert placement.order.filled_quantity == 4
    assert_all_invariants()


@pytest.mark.postgres  # one statement exists on PostgreSQL; elsewhere writes run at once
def test_two_updates_of_one_table_in_one_statement_are_refused_before_anything_is_sent(cea):
    """Of two updates of one row in one statement PostgreSQL applies one: refused."""
    before = cea.book_version
    with pytest.raises(RuntimeError), sql.pipelined_atomic(), sql.one_statement():
        orders_db.bump_book_version(cea.pk)
        orders_db.bump_book_version(cea.pk)
    assert Market.objects.get(pk=cea.pk).book_version == before


def test_a_statement_read_twice_gives_its_own_rows_both_times(cea):
    statement = sql.send(f"SELECT code FROM {Market._meta.db_table} WHERE id = %s", [cea.pk])
    assert statement.rows() == [("CEA",)]
    other = sql.send(f"SELECT 42 FROM {Market._meta.db_table} WHERE id = %s", [cea.pk])
    assert statement.rows() == [("CEA",)] and other.one() == (42,)


def test_the_garbage_collector_is_paused_inside_a_pipelined_transaction_and_resumes(cea):
    assert gc.isenabled()
    with sql.pipelined_atomic():
        assert not gc.isenabled()
        with sql.pipelined_atomic():  # nested: still paused, and not resumed by the inner
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(IntegrityError), sql.pipelined_atomic():
        _break_tick_size(cea.pk)
        sql.flush()
    assert gc.isenabled()  # resumed after a failure too


def test_a_collector_paused_by_someone_else_stays_paused(cea):
    gc.disable()
    try:
        with sql.pipelined_atomic():
            assert not gc.isenabled()
        assert not gc.isenabled()  # not ours to resume
    finally:
        gc.enable()
