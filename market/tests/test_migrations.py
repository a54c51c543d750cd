"""The migrations that do more than Django generates: market.0009 rebuilds the book index
with the columns the levels sum, concurrently, and back again; market.0010 leaves room on
the balance table's pages for HOT updates, and takes it back (both PostgreSQL only);
market.0011's triggers keep the book's levels as the orders' sums, whatever writes them;
market.0012 takes the quantities out of the book index again."""

from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Case, F, Value, When
from django.db.models.functions import Least, Mod
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.models import BookLevel, Order
from market.tests import factories
from market.tests.helpers import assert_book_levels_match_orders

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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_0009_and_0012_swap_the_book_index_back_and_forth():
    """0009 builds the index with the levels' quantities included, 0012 (once the levels
    are rows) without them again; each swap leaves one valid index of the same name."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("market")
    keys = "(market_id, side, price, id)"
    try:
        for target, included in (
            (BEFORE, False),
            (("market", "0009_order_book_idx_covers_levels"), True),
            (("market", "0011_book_levels"), True),
            *((node, False) for node in latest),
        ):
            migrate(target)
            (index,) = book_indexes()  # the temporary name is gone
            assert " order_book_idx ON " in index and "WHERE" in index, (target, index)
            columns = f"{keys} INCLUDE (quantity, filled_quantity)" if included else keys
            assert f"{columns} WHERE" in index, (target, index)
    finally:
        migrate(*latest)


def balance_options() -> list[str] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'market_balance'")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
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


# --- market.0011: the book's levels ---------------------------------------------------------

PRICES = [D("10.00"), D("10.01"), D("10.02"), D("12.00"), D("12.01")]
RESTING_OR_NOT = st.sampled_from(["OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELLED"])


@st.composite
def new_orders(draw):
    """A batch of orders as one INSERT: resting or not, partly filled or not, at a few
    prices of both markets' both sides."""
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        quantity = draw(st.integers(1, 50))
        status = draw(RESTING_OR_NOT)
        filled = {
            "OPEN": 0,
            "PARTIALLY_FILLED": draw(st.integers(1, quantity)) if quantity > 1 else 0,
            "FILLED": quantity,
            "CANCELLED": draw(st.integers(0, quantity - 1)),
        }[status]
        if status == "PARTIALLY_FILLED" and filled in (0, quantity):
            status = "OPEN" if filled == 0 else "FILLED"
        rows.append(
            (
                draw(st.sampled_from([0, 1])),
                draw(st.sampled_from(["BUY", "SELL"])),
                draw(st.sampled_from(PRICES)),
                quantity,
                filled,
                status,
            )
        )
    return ("insert", rows)


# Each changes the orders whose id falls in a residue class, in one UPDATE or DELETE: fills
# (partial or whole), cancels, a repricing (an amendment), a resize, a reopening, a delete.
writes = st.one_of(
    new_orders(),
    st.tuples(
        st.sampled_from(["fill", "cancel", "reprice", "resize", "reopen", "delete"]),
        st.integers(1, 3),
        st.integers(0, 2),
        st.integers(1, 20),
    ),
)


def apply_write(write, owner, markets) -> None:
    kind, *args = write
    if kind == "insert":
        Order.objects.bulk_create(
            Order(
                owner=owner,
                market=markets[market],
                side=side,
                order_type=Order.Type.LIMIT,
                price=price,
                quantity=quantity,
                filled_quantity=filled,
                status=status,
            )
            for market, side, price, quantity, filled, status in args[0]
        )
        return
    modulus, residue, amount = args
    chosen = Order.objects.alias(group=Mod("id", modulus)).filter(group=residue % modulus)
    resting = chosen.filter(status__in=Order.RESTING)
    if kind == "fill":
        after = Least(F("quantity"), F("filled_quantity") + amount)
        resting.update(
            filled_quantity=after,
            status=Case(
                When(quantity__lte=F("filled_quantity") + amount, then=Value("FILLED")),
                default=Value("PARTIALLY_FILLED"),
            ),
        )
    elif kind == "cancel":
        resting.update(status="CANCELLED")
    elif kind == "reprice":
        resting.update(price=F("price") + D("0.01") * (amount % 3))
    elif kind == "resize":
        resting.update(quantity=F("quantity") + amount)
    elif kind == "reopen":
        chosen.filter(status="CANCELLED", filled_quantity=0).update(status="OPEN")
    else:
        chosen.delete()


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(writes, min_size=1, max_size=12))
def test_0011_keeps_each_level_the_sum_of_its_resting_orders(cea, eua, write_list):
    """Whatever one statement does to the orders, the levels after it are the resting
    orders summed by market, side and price, and a level whose last order left is gone."""
    Order.objects.all().delete()
    assert not BookLevel.objects.exists()
    owner = factories.trader()
    for write in write_list:
        apply_write(write, owner, [cea, eua])
        assert_book_levels_match_orders()


@pytest.mark.postgres  # a TRUNCATE trigger; SQLite has no TRUNCATE
@pytest.mark.django_db
def test_0011_truncating_the_orders_empties_the_levels(cea):
    apply_write(("insert", [(0, "BUY", D("10.00"), 5, 0, "OPEN")]), factories.trader(), [cea])
    assert BookLevel.objects.count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending checks
        cursor.execute("TRUNCATE market_order CASCADE")
    assert not BookLevel.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_0011_sums_the_orders_already_resting_and_goes_back(migrated_rows, cea, eua):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("market")
    owner = factories.trader()
    try:
        migrate(("market", "0010_balance_fillfactor"))
        apply_write(
            (
                "insert",
                [
                    (0, "BUY", D("10.00"), 5, 0, "OPEN"),
                    (0, "BUY", D("10.00"), 7, 2, "PARTIALLY_FILLED"),
                    (0, "BUY", D("10.01"), 4, 4, "FILLED"),
                    (1, "SELL", D("12.00"), 9, 0, "OPEN"),
                    (1, "SELL", D("12.01"), 3, 0, "CANCELLED"),
                ],
            ),
            owner,
            [cea, eua],
        )
        migrate(*latest)
        assert sorted(
            BookLevel.objects.values_list(
                "market__code", "side", "price", "quantity", "order_count"
            )
        ) == [("CEA", "BUY", D("10.00"), 10, 2), ("EUA", "SELL", D("12.00"), 9, 1)]
        apply_write(("cancel", 1, 0, 1), owner, [cea, eua])
        assert not BookLevel.objects.exists()
    finally:
        migrate(*latest)
