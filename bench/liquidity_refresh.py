"""Benchmark 9: one liquidity program refresh that withdraws 3,000 orders and places 3,000.

A standing program on CEA over 1,000 market makers (500 liquidity providers, 500 asset
holders, funded) with the default 3-level ladder: 1,500 orders a side. Compares, in the
same run and database:

- **execute**: a plain one-shot `liquidity_execute` of the same 3,000 orders (same makers,
  same targets), withdrawn again outside the timing;
- **refresh**: one `program_refresh` that re-centres the program (its targets changed by
  one euro, outside the timing), withdrawing the 3,000 orders resting and placing 3,000:
  the claim, the inputs (ladder state, position, reference), the decision, the
  withdrawal, the new ladder and the alerts, in one transaction.

The two alternate, several times; medians. The issue's bound: a refresh takes at most
twice a plain execute (it does an execute's work plus a withdrawal of as many orders).

    .venv/bin/python bench/liquidity_refresh.py [--profile]   # needs the local PostgreSQL

Prints the timings, the queries of each, a plain `liquidity_withdraw` of the 3,000
orders for comparison (a refresh does its work too), and `RATIO program_refresh_vs_execute
<refresh ÷ execute> target 2.0` (lower is better here). With `--profile`, one more refresh
runs under cProfile and the functions it spends most time in are printed.
"""

import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import fresh_database, report_ratio

REPEATS = 7
TARGET_EUR = Decimal("1000000")


def main() -> None:
    profile = "--profile" in sys.argv
    fresh_database()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from liquidity import programs
    from liquidity.models import LiquidityOperation
    from liquidity.services import liquidity_execute, liquidity_request_parse, liquidity_withdraw
    from market.models import Order
    from market.services.market_makers import market_makers_create_bulk

    staff = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    for mm_type, asset, total in (
        ("LIQUIDITY_PROVIDER", "EUR", Decimal("50000000")),
        ("ASSET_HOLDER", "CEA", Decimal("5000000")),
    ):
        market_makers_create_bulk(
            count=500,
            mm_type=mm_type,
            asset=asset,
            total_amount=total,
            name_prefix=mm_type[:2],
            created_by=staff,
        )

    request = liquidity_request_parse(
        market_code="CEA", bid_amount_eur=str(TARGET_EUR), ask_amount_eur=str(TARGET_EUR)
    )

    def run_execute():
        gc.collect()  # from a collected heap (see bench/liquidity_execute.py)
        start = time.perf_counter()
        operation = liquidity_execute(request=request, user=staff)
        elapsed = time.perf_counter() - start
        placed = operation.orders_created
        gc.collect()
        start = time.perf_counter()
        liquidity_withdraw(operation=operation, user=staff)
        return elapsed, time.perf_counter() - start, placed

    program = programs.program_create(
        user=staff,
        data={
            "name": "CEA standing",
            "certificate_type": "CEA",
            "bid_target_eur": str(TARGET_EUR),
            "ask_target_eur": str(TARGET_EUR),
            "refresh_interval_seconds": 60,
        },
    )
    programs.program_activate(program_id=program.pk, user=staff)
    first = programs.program_refresh(program_id=program.pk, worker="bench")
    assert first.outcome == "placed", first.reason
    flip = iter(range(1, 10_000))

    def run_refresh(profiler=None):
        # A target one euro off: the next tick re-centres, withdrawing and placing a ladder.
        offset = next(flip) % 2
        programs.program_update(
            program_id=program.pk,
            user=staff,
            data={"bid_target_eur": str(TARGET_EUR - offset)},
        )
        resting_before = Order.objects.filter(
            ticket__liquidity_operation__program=program, status__in=Order.RESTING
        ).count()
        gc.collect()
        if profiler:
            profiler.enable()
        start = time.perf_counter()
        refresh = programs.program_refresh(
            program_id=program.pk, worker="bench", now=timezone.now()
        )
        elapsed = time.perf_counter() - start
        if profiler:
            profiler.disable()
        assert refresh.outcome == "recentred", refresh.reason
        assert refresh.orders_withdrawn == resting_before, (refresh, resting_before)
        return elapsed, refresh.orders_withdrawn, refresh.orders_placed

    # One of each warms the process (sequences looked up, statements prepared); then the
    # queries of each are counted on runs of their own (capturing keeps every parameter).
    run_execute()
    run_refresh()
    with CaptureQueriesContext(connection) as execute_queries:
        liquidity_execute(request=request, user=staff)
    liquidity_withdraw(
        operation=LiquidityOperation.objects.filter(program__isnull=True).latest("pk"),
        user=staff,
    )
    programs.program_update(program_id=program.pk, user=staff, data={"ask_target_eur": "999999"})
    with CaptureQueriesContext(connection) as refresh_queries:
        programs.program_refresh(program_id=program.pk, worker="bench")

    execute_times, withdraw_times, refresh_times = [], [], []
    placed = withdrawn = refresh_placed = 0
    for _ in range(REPEATS):
        elapsed, withdrawal, placed = run_execute()
        execute_times.append(elapsed)
        withdraw_times.append(withdrawal)
        elapsed, withdrawn, refresh_placed = run_refresh()
        refresh_times.append(elapsed)

    execute = statistics.median(execute_times)
    refresh = statistics.median(refresh_times)
    withdraw = statistics.median(withdraw_times)
    print("market makers: 1,000 (500 per type); ladder: the default 3 levels")
    print(
        f"execute: places {placed:,} orders; refresh: withdraws {withdrawn:,}, places "
        f"{refresh_placed:,}"
    )
    print(f"queries: execute {len(execute_queries)}, refresh {len(refresh_queries)}")
    print(
        f"liquidity_execute   (median of {REPEATS}): {execute * 1000:8.1f} ms  "
        f"[{', '.join(f'{t * 1000:.0f}' for t in execute_times)}]"
    )
    print(
        f"program refresh     (median of {REPEATS}): {refresh * 1000:8.1f} ms  "
        f"[{', '.join(f'{t * 1000:.0f}' for t in refresh_times)}]"
    )
    print(
        f"liquidity_withdraw  (median of {REPEATS}): {withdraw * 1000:8.1f} ms  "
        f"[{', '.join(f'{t * 1000:.0f}' for t in withdraw_times)}]"
    )
    print(
        f"execute + withdraw (two transactions): {(execute + withdraw) * 1000:.1f} ms, "
        f"{(execute + withdraw) / execute:.2f}x the execute"
    )
    if profile:
        profiler = cProfile.Profile()
        run_refresh(profiler)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(35)
        print(out.getvalue())
    report_ratio("program_refresh_vs_execute", refresh / execute, 2.0)


if __name__ == "__main__":
    main()
