"""Benchmark 3: one liquidity operation placing 3,000 orders over 1,000 market makers.

Compares, in the same run and database, `liquidity_execute` (plan under locks, bulk
orders, ledger reservations, audit) with inserting the same orders one INSERT statement
at a time (what the original plan did), and shows the query count does not depend on
the number of market makers.

It also times the database's own floor: the same 3,000 orders and their 3,000 ledger
reservations written by two set-based statements in one transaction, with no plan, no
balance update and no audit. No implementation that writes those rows can be faster, so
one-by-one ÷ floor is the most any execute could score against the target here.

    .venv/bin/python bench/liquidity_execute.py       # needs the local PostgreSQL

Prints the timings and the ratio. Target: execute >= 20x faster than one-by-one inserts.
"""

import contextlib
import gc
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import fresh_database, report_ratio

REPEATS = 5


def collected(run):
    """`run` timed from a collected heap: a full garbage collection of the objects the
    seeding left (tens of ms) would otherwise land in whichever timed run reaches the
    collector's threshold, execute or baseline alike, and decide the median."""

    def timed(*args, **kwargs):
        gc.collect()
        return run(*args, **kwargs)

    return timed


def main() -> None:
    fresh_database()
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from liquidity.services import liquidity_execute, liquidity_request_parse, liquidity_withdraw
    from market.models import Market, MarketMakerClient, Order
    from market.services.market_makers import market_makers_create_bulk

    staff = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")

    def makers(count):
        for mm_type, asset, total in (
            ("LIQUIDITY_PROVIDER", "EUR", Decimal("50000000")),
            ("ASSET_HOLDER", "CEA", Decimal("5000000")),
        ):
            remaining = count
            while remaining:
                batch = min(remaining, 500)
                market_makers_create_bulk(
                    count=batch,
                    mm_type=mm_type,
                    asset=asset,
                    total_amount=total,
                    name_prefix=mm_type[:2],
                    created_by=staff,
                )
                remaining -= batch

    request = liquidity_request_parse(
        market_code="CEA", bid_amount_eur="1000000", ask_amount_eur="1000000"
    )

    def run_execute(*, count_queries: bool = False):
        # Queries are counted on a run of their own: capturing them keeps every statement's
        # SQL and parameters (arrays of 3,000 values), which the timed runs must not pay
        # for when the baselines do not.
        queries = CaptureQueriesContext(connection)
        with queries if count_queries else contextlib.nullcontext():
            start = time.perf_counter()
            operation = liquidity_execute(request=request, user=staff)
            elapsed = time.perf_counter() - start
        orders = list(operation.orders.values_list("owner_id", "side", "price", "quantity"))
        liquidity_withdraw(operation=operation, user=staff)
        return elapsed, len(queries) if count_queries else None, orders

    # Query count with 10 makers per side, for comparison, after one execute that warms
    # the process (a process looks up each table's id sequence once, on first use).
    makers(10)
    run_execute()
    _, small_queries, _ = run_execute(count_queries=True)
    MarketMakerClient.objects.update(is_active=False)
    makers(500)  # 500 of each type: 1,000 market makers

    _, queries, _ = run_execute(count_queries=True)
    execute_times, orders = [], None
    for _ in range(REPEATS):
        elapsed, _, orders = collected(run_execute)()
        execute_times.append(elapsed)

    market = Market.objects.get(code="CEA")

    def run_one_by_one():
        start = time.perf_counter()
        with transaction.atomic():
            for owner_id, side, price, quantity in orders:
                Order.objects.create(
                    owner_id=owner_id,
                    market=market,
                    side=side,
                    order_type="LIMIT",
                    price=price,
                    quantity=quantity,
                    status="CANCELLED",
                )
        return time.perf_counter() - start

    def run_autocommit():
        # Each INSERT its own transaction, as an ORM flushing row by row outside a
        # transaction would do: a commit per order.
        start = time.perf_counter()
        for owner_id, side, price, quantity in orders:
            Order.objects.create(
                owner_id=owner_id,
                market=market,
                side=side,
                order_type="LIMIT",
                price=price,
                quantity=quantity,
                status="CANCELLED",
            )
        return time.perf_counter() - start

    def run_floor():
        # The rows the spec requires of any execute (docs/rules.md §3, §7): each resting order,
        # and the ledger entry reserving its funds (foreign keys checked at COMMIT, as
        # for the real thing). Set-based, no Python per row. The balances are left as
        # they are: this database is thrown away.
        rows = [(owner_id, side, price, quantity) for owner_id, side, price, quantity in orders]
        start = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "WITH o AS (INSERT INTO market_order (owner_id, market_id, side, order_type, "
                "price, quantity, filled_quantity, filled_value, fee_rate, fee_paid, reserved, "
                "status, status_reason, created_at, updated_at) "
                "SELECT v.owner_id, %s, v.side, 'LIMIT', v.price, v.quantity, 0, 0, 0, 0, "
                "CASE v.side WHEN 'BUY' THEN v.price * v.quantity ELSE v.quantity END, "
                "'OPEN', '', now(), now() "
                "FROM unnest(%s::bigint[], %s::text[], %s::numeric[], %s::bigint[]) "
                "AS v(owner_id, side, price, quantity) RETURNING id, owner_id, side, reserved) "
                "INSERT INTO market_ledgerentry (holder_id, asset, kind, available_delta, "
                "locked_delta, order_id, created_at) "
                "SELECT owner_id, CASE side WHEN 'BUY' THEN 'EUR' ELSE 'CEA' END, 'RESERVE', "
                "-reserved, reserved, id, now() FROM o",
                [market.pk, *(list(column) for column in zip(*rows, strict=True))],
            )
        return time.perf_counter() - start

    one_by_one_times = [collected(run_one_by_one)() for _ in range(REPEATS)]
    autocommit_times = [collected(run_autocommit)() for _ in range(REPEATS)]
    floor_times = [collected(run_floor)() for _ in range(REPEATS)]
    ours = statistics.median(execute_times)
    naive = statistics.median(one_by_one_times)
    print(f"market makers: 1,000 (500 per type); orders per operation: {len(orders):,}")
    print(f"queries per execute: {queries} with 1,000 makers, {small_queries} with 20 makers")
    print(f"liquidity_execute (median of {REPEATS}): {ours * 1000:8.1f} ms")
    autocommit = statistics.median(autocommit_times)
    print(f"one INSERT per order, one transaction (median of {REPEATS}): {naive * 1000:8.1f} ms")
    print(
        f"one INSERT per order, autocommit      (median of {REPEATS}): {autocommit * 1000:8.1f} ms"
    )
    floor = statistics.median(floor_times)
    print(
        f"database floor: the orders and their ledger rows, two set-based statements "
        f"(median of {REPEATS}): {floor * 1000:8.1f} ms"
    )
    print(
        f"ratio vs one transaction: {naive / ours:.1f}x; vs autocommit: {autocommit / ours:.1f}x"
    )
    print(
        f"target: >= 20x; the floor itself scores {naive / floor:.1f}x vs one transaction "
        f"and {autocommit / floor:.1f}x vs autocommit"
    )
    report_ratio("liquidity_execute_vs_one_transaction", naive / ours, 20)


if __name__ == "__main__":
    main()
