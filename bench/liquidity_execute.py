"""Benchmark 3: one liquidity operation placing 3,000 orders over 1,000 market makers,
against the database floor: the same rows written by PostgreSQL's fastest bulk methods.

In the same run and database, alternating, `--repeats` times each (medians; 25 by
default: single runs on a shared VM vary by ±30 %; two runs of one tree judged 0.94
and 0.73 with 9 repeats, 0.87 and 0.84 with 25):

- `liquidity_execute` (the plan under locks, the orders, their ledger reservations, the
  balance updates, the operation and its audit ticket), withdrawn again outside the
  timing;
- the **database floor** (`bench/_floor.py`): every row that execute wrote (captured
  from one execute: ticket, operation, 3,000 orders, 3,000 ledger entries, the makers'
  changed balance rows, the book version), written again into the same tables in one
  transaction, with the data prepared before the timer, two ways: set-based `unnest`
  statements, and `COPY … FROM STDIN` for the orders and the ledger. The faster of the
  two is the floor.

The judged ratio is floor ÷ execute (1.0: the execute costs what the database needs to
write its rows; target 0.8). For reference it also prints the ORM's one INSERT per order
in one transaction (the original design), and the queries per execute with 20 and with
1,000 makers (they must not depend on the number of makers).

    .venv/bin/python bench/liquidity_execute.py [--repeats 25] [--profile]

`--profile`: cProfile of one execute (cumulative and own time), instead of the comparison.
"""

import argparse
import contextlib
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _floor import Floor
from _setup import fresh_database, report_ratio


def collected(run):
    """`run` timed from a collected heap: a full garbage collection of the objects the
    seeding left (tens of ms) would otherwise land in whichever timed run reaches the
    collector's threshold, execute or floor alike, and decide the median."""

    def timed(*args, **kwargs):
        gc.collect()
        return run(*args, **kwargs)

    return timed


def seed_makers(staff, count: int) -> None:
    """`count` funded market makers of each type, through the services' bulk create."""
    from market.services.market_makers import market_makers_create_bulk

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    url = fresh_database()
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from liquidity.services import liquidity_execute, liquidity_request_parse, liquidity_withdraw
    from market.models import Market, MarketMakerClient, Order

    staff = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    request = liquidity_request_parse(
        market_code="CEA", bid_amount_eur="1000000", ask_amount_eur="1000000"
    )

    def run_execute(*, count_queries: bool = False):
        # Queries are counted on a run of their own: capturing them keeps every statement's
        # SQL and parameters, which the timed runs must not pay for.
        queries = CaptureQueriesContext(connection)
        with queries if count_queries else contextlib.nullcontext():
            start = time.perf_counter()
            operation = liquidity_execute(request=request, user=staff)
            elapsed = time.perf_counter() - start
        return elapsed, len(queries) if count_queries else None, operation

    # Query count with 10 makers per side, for comparison, after one execute that warms
    # the process (a process looks up each table's id sequence once, on first use).
    seed_makers(staff, 10)
    liquidity_withdraw(operation=run_execute()[2], user=staff)
    _, small_queries, operation = run_execute(count_queries=True)
    liquidity_withdraw(operation=operation, user=staff)
    MarketMakerClient.objects.update(is_active=False)
    seed_makers(staff, 500)  # 500 of each type: 1,000 market makers
    # The planner's statistics, as autovacuum keeps them on a live database: seeding
    # grew the makers and their balances fifty-fold a moment ago, and the tables' first
    # automatic ANALYZE would come a minute later, after the timed runs.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    _, queries, operation = run_execute(count_queries=True)
    liquidity_withdraw(operation=operation, user=staff)

    if args.profile:
        gc.collect()
        profile = cProfile.Profile()
        profile.enable()
        start = time.perf_counter()
        operation = liquidity_execute(request=request, user=staff)
        elapsed = time.perf_counter() - start
        profile.disable()
        print(f"one execute under cProfile: {elapsed * 1000:.1f} ms")
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
        return

    # The rows one execute writes, captured right after it, for the floor.
    _, _, operation = run_execute()
    floor = Floor(url, operation.ticket_id)
    orders = list(operation.orders.values_list("owner_id", "side", "price", "quantity"))
    liquidity_withdraw(operation=operation, user=staff)
    before = floor.balances_now()

    def run_floor(method):
        floor.prepare(before)
        gc.collect()
        elapsed = floor.run(method)
        floor.undo()
        return elapsed

    execute_times, unnest_times, copy_times = [], [], []
    for _ in range(args.repeats):
        elapsed, _, operation = collected(run_execute)()
        execute_times.append(elapsed)
        liquidity_withdraw(operation=operation, user=staff)
        unnest_times.append(run_floor("unnest"))
        copy_times.append(run_floor("copy"))
    if floor.balances_now() != before:
        raise SystemExit("the floor's undo did not restore the balances")

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

    one_by_one = statistics.median(collected(run_one_by_one)() for _ in range(3))
    floor.close()

    ours = statistics.median(execute_times)
    unnest = statistics.median(unnest_times)
    copy = statistics.median(copy_times)
    best = min(unnest, copy)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average: {load}")
    print(f"market makers: 1,000 (500 per type); orders per operation: {len(orders):,}")
    print("rows each execute writes, and the floor writes again:")
    for table, count in floor.counts.items():
        print(f"  {table}: {count:,}")
    print(f"queries per execute: {queries} with 1,000 makers, {small_queries} with 20 makers")
    for label, times in (
        ("liquidity_execute", execute_times),
        ("floor, unnest", unnest_times),
        ("floor, COPY", copy_times),
    ):
        print(f"  each run, {label + ':':18} {', '.join(f'{t * 1000:.1f}' for t in times)} ms")
    print(f"liquidity_execute          (median of {args.repeats}): {ours * 1000:8.1f} ms")
    print(f"database floor, unnest     (median of {args.repeats}): {unnest * 1000:8.1f} ms")
    print(f"database floor, COPY       (median of {args.repeats}): {copy * 1000:8.1f} ms")
    print(
        f"floor = the faster ({'COPY' if copy < unnest else 'unnest'}): {best * 1000:.1f} ms; "
        f"execute ÷ floor = {ours / best:.2f}x"
    )
    print(
        f"for reference: one ORM INSERT per order, one transaction (median of 3): "
        f"{one_by_one * 1000:8.1f} ms, {one_by_one / ours:.1f}x the execute"
    )
    report_ratio("liquidity_execute_vs_floor", best / ours, 0.8)


if __name__ == "__main__":
    main()
