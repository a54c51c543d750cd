"""The migrations that do more than Django generates. market.0009 on PostgreSQL: the book
index is rebuilt with the columns the levels sum, concurrently, and back again."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [
    pytest.mark.postgres,  # CREATE INDEX CONCURRENTLY, pg_indexes
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

BEFORE = ("market", "0008_order_time_in_force_post_only")


def book_indexes() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes "
            "WHERE tablename = 'market_order' AND indexname LIKE 'order_book_idx%%'"
        )
        return [definition for (definition,) in cursor.fetchall()]


def migrate(*targets) -> None:
    executor = MigrationExecutor(connection)  # a fresh one reads the applied state
    executor.migrate(list(targets))


def test_0009_swaps_the_book_index_back_and_forth():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("market")
    try:
        migrate(BEFORE)
        (before,) = book_indexes()
        assert "INCLUDE" not in before and "WHERE" in before, before

        migrate(*latest)
        (after,) = book_indexes()  # the temporary name is gone
        assert " order_book_idx ON " in after, after
        assert "(market_id, side, price, id) INCLUDE (quantity, filled_quantity)" in after
        assert "WHERE" in after, after
    finally:
        migrate(*latest)
