"""A liquidity execute that fails halfway leaves no order, reservation, operation or ticket."""

import pytest
from django.db import DatabaseError, connection, connections

from liquidity.models import LiquidityOperation
from liquidity.services import liquidity_execute, liquidity_request_parse
from market.db import bulk
from market.models import Balance, LedgerEntry, MarketMakerClient, Order, TicketLog
from market.tests import factories
from market.tests.helpers import assert_all_invariants

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER

pytestmark = [
    pytest.mark.postgres,  # faults are injected into a PostgreSQL session
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("migrated_rows"),
]


class Injected(RuntimeError):
    pass


def snapshot():
    return (
        Order.objects.count(),
        LiquidityOperation.objects.count(),
        TicketLog.objects.count(),
        LedgerEntry.objects.count(),
        sorted(Balance.objects.values_list("pk", "available", "locked")),
    )


@pytest.fixture
def funded_makers():
    staff = factories.StaffFactory()
    for _ in range(10):
        factories.market_maker(LP, EUR="20000")
        factories.market_maker(AH, CEA=1000)
    return staff


def execute(staff):
    request = liquidity_request_parse(
        market_code="CEA", bid_amount_eur="100000", ask_amount_eur="50000"
    )
    return liquidity_execute(request=request, user=staff)


def insert_half_then(fail):
    """An `insert_rows` that writes half of the orders for real, then calls `fail`."""
    real_insert = bulk.insert_rows

    def insert_rows(model, columns, rows, **kwargs):
        if model is not Order:
            return real_insert(model, columns, rows, **kwargs)
        half = len(rows) // 2
        real_insert(model, columns, rows[:half], **kwargs)
        assert Order.objects.count() == half  # they really are in the transaction
        fail()

    return insert_rows


def test_an_exception_after_half_the_orders_leaves_nothing(funded_makers, monkeypatch):
    before = snapshot()

    def fail():
        raise Injected("fault injected after half the orders")

    monkeypatch.setattr("market.db.orders.insert_rows", insert_half_then(fail))
    with pytest.raises(Injected):
        execute(funded_makers)
    assert snapshot() == before
    assert_all_invariants()

    # The same request then goes through whole.
    monkeypatch.undo()
    operation = execute(funded_makers)
    assert operation.orders.count() == operation.orders_created == 60
    assert_all_invariants()


def test_a_dropped_connection_halfway_leaves_nothing(funded_makers, monkeypatch):
    before = snapshot()
    backend_pid = connection.cursor().connection.info.backend_pid

    def drop_connection():
        # Another session kills ours, as a network cut or a server restart would.
        killer = connections.create_connection("default")
        try:
            with killer.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
        finally:
            killer.close()
        Order.objects.count()  # the next statement on the dead session fails

    monkeypatch.setattr("market.db.orders.insert_rows", insert_half_then(drop_connection))
    with pytest.raises(DatabaseError):
        execute(funded_makers)
    connection.close()  # Django reconnects on the next query
    assert snapshot() == before
    assert_all_invariants()
