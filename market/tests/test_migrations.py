"""The migrations that do more than Django generates, on PostgreSQL: market.0009 rebuilds
the book index with the columns the levels sum, concurrently, and back again; market.0010
leaves room on the balance table's pages for HOT updates, and takes it back."""

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


def balance_options() -> list[str] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'market_balance'")
        return cursor.fetchone()[0]


def test_0010_sets_the_balance_tables_fillfactor_and_resets_it():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("market")
    try:
        assert balance_options() == ["fillfactor=70"]
        migrate(("market", "0009_order_book_idx_covers_levels"))
        assert balance_options() is None
        migrate(*latest)
        assert balance_options() == ["fillfactor=70"]
    finally:
        migrate(*latest)
