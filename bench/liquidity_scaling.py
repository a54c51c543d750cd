"""Scaling curve of the liquidity preview and execute: 100, 1,000 and 10,000 market makers.

Each size has as many liquidity providers as asset holders (half each), every one funded
alike (€100,000 a provider, 10,000 CEA a holder), and asks for €1,000 a side per maker
(€1,000,000 a side at 1,000 makers, as `liquidity_execute.py`), so each maker places the
same few orders at every size (one per ladder level: about 3 orders a maker). The makers of
the size before are deactivated; the new ones are created through the services' bulk
create (`market_makers_create_bulk`, 500 at a time).

At each size, REPEATS times each (medians), after one warming execute: `liquidity_preview`
and `liquidity_execute` (withdrawn again outside the timing). Printed: ms, ms per maker,
orders, and the queries of one execute (they must not depend on the size).

The last line is `RATIO liquidity_scaling_per_maker <value> target 0.8`: for the preview
and for the execute, the ms per maker at the smallest size ÷ the ms per maker at the
largest (100 and 10,000 by default), the lower of the two. 1.0: time per maker exactly
constant; above 1: the fixed costs (the transaction, the locks, the round trips), which
weigh most at 100 makers, fade; below 0.8: time per maker grows by more than a quarter
over a hundredfold more makers, the sign of work that is not linear in the makers. It
also prints each curve's smallest ÷ largest ms per maker over all sizes.

    .venv/bin/python bench/liquidity_scaling.py [--repeats 3] [--sizes 100,1000,10000]
"""

import argparse
import gc
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import fresh_database, report_ratio

BATCH = 500  # MAX_BULK_MAKERS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    fresh_database()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from liquidity.services import (
        liquidity_execute,
        liquidity_preview,
        liquidity_request_parse,
        liquidity_withdraw,
    )
    from market.models import MarketMakerClient
    from market.services.market_makers import market_makers_create_bulk

    staff = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")

    def seed(makers: int) -> float:
        start = time.perf_counter()
        for mm_type, asset, each in (
            ("LIQUIDITY_PROVIDER", "EUR", Decimal("100000")),
            ("ASSET_HOLDER", "CEA", Decimal("10000")),
        ):
            remaining, batch_no = makers // 2, 0
            while remaining:
                batch = min(remaining, BATCH)
                batch_no += 1
                market_makers_create_bulk(
                    count=batch,
                    mm_type=mm_type,
                    asset=asset,
                    total_amount=each * batch,
                    name_prefix=f"{mm_type[:2]} {makers}-{batch_no}",
                    created_by=staff,
                )
                remaining -= batch
        return time.perf_counter() - start

    rows = []
    for makers in sizes:
        MarketMakerClient.objects.update(is_active=False)
        seeded = seed(makers)
        amount = str(1000 * makers)
        request = liquidity_request_parse(
            market_code="CEA", bid_amount_eur=amount, ask_amount_eur=amount
        )
        # Warm: the first execute of a size (and of the process) looks up sequences and
        # prepares statements; then the query count of one execute.
        liquidity_withdraw(operation=liquidity_execute(request=request, user=staff), user=staff)
        with CaptureQueriesContext(connection) as queries:
            operation = liquidity_execute(request=request, user=staff)
        liquidity_withdraw(operation=operation, user=staff)
        previews, executes = [], []
        orders = 0
        for _ in range(args.repeats):
            gc.collect()
            start = time.perf_counter()
            plan = liquidity_preview(request=request)
            previews.append(time.perf_counter() - start)
            gc.collect()
            start = time.perf_counter()
            operation = liquidity_execute(request=request, user=staff)
            executes.append(time.perf_counter() - start)
            orders = operation.orders_created
            liquidity_withdraw(operation=operation, user=staff)
        assert plan.total_orders_count == orders
        rows.append(
            (makers, orders, len(queries), statistics.median(previews),
             statistics.median(executes), seeded)
        )  # fmt: skip
        print(
            f"{makers:>6,} makers seeded in {seeded:.1f} s: {orders:,} orders, "
            f"{len(queries)} queries per execute",
            flush=True,
        )

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average: {load}")
    print(f"median of {args.repeats}; ms, and ms per maker")
    print(
        f"{'makers':>7} {'orders':>7} {'queries':>7} {'preview':>10} {'/maker':>7} "
        f"{'execute':>10} {'/maker':>7}"
    )
    for makers, orders, queries, preview, execute, _ in rows:
        print(
            f"{makers:>7,} {orders:>7,} {queries:>7} {preview * 1000:>10.1f} "
            f"{preview * 1000 / makers:>7.3f} {execute * 1000:>10.1f} "
            f"{execute * 1000 / makers:>7.3f}"
        )
    worst = {}
    for name, index in (("preview", 3), ("execute", 4)):
        per_maker = [row[index] / row[0] for row in rows]
        worst[name] = per_maker[0] / per_maker[-1]
        print(
            f"{name}: ms per maker at {rows[0][0]:,} ÷ at {rows[-1][0]:,} = {worst[name]:.2f}; "
            f"smallest ÷ largest over all sizes = {min(per_maker) / max(per_maker):.2f}"
        )
    if len({row[2] for row in rows}) != 1:
        print("queries per execute vary with the number of makers")
        report_ratio("liquidity_scaling_per_maker", 0, 0.8)
        return
    report_ratio("liquidity_scaling_per_maker", min(worst.values()), 0.8)


if __name__ == "__main__":
    main()
