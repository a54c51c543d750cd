"""Benchmark 2: matching throughput against pgbench on the same PostgreSQL, same run.

4 client processes, each with its own connection, place random limit and market orders
(about half of them crossing) through `order_place` for DURATION seconds, twice: all on
the CEA market (every order queues on one market lock: the strict case, judged against
the target), then on CEA and EUA at random (the product's two markets, whose locks are
independent). Then pgbench runs its built-in TPC-B-like script with 4 clients for the
same time on a database of its own on the same server. Prints orders/s, pgbench tps and
the ratios (target >= 0.3), then checks the market's invariants.

    .venv/bin/python bench/matching.py [--seconds 15]

`bench/matching_ceiling.py` measures, on the same schema, what 4 clients reach with no
application code at all: the bound this ratio can approach on the machine.
"""

import argparse
import multiprocessing
import os
import random
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import fresh_database, report_ratio

CLIENTS = 4
MIDS = {"CEA": Decimal("14.00"), "EUA": Decimal("81.00")}


def client(index: int, holder_ids: list[int], markets: list[str], seconds: float, queue):
    import django

    django.setup()
    from django.core.exceptions import ValidationError
    from django.db import connection

    from market.models import Holder
    from market.services.orders import order_place, order_request_parse

    rng = random.Random(index)
    holders = list(Holder.objects.filter(pk__in=holder_ids))
    placed = refused = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        holder = rng.choice(holders)
        market = rng.choice(markets)
        side = rng.choice(["BUY", "SELL"])
        crossing = rng.random() < 0.5
        try:
            if crossing and rng.random() < 0.4:
                fields = {"order_type": "MARKET", "quantity": rng.randint(1, 20)}
            else:
                # Crossing limits reach past the mid; the others rest a few ticks away.
                offset = Decimal(rng.randint(1, 10)) / 100
                mid = MIDS[market]
                if crossing:
                    price = mid + offset if side == "BUY" else mid - offset
                else:
                    price = mid - offset if side == "BUY" else mid + offset
                fields = {"order_type": "LIMIT", "price": price, "quantity": rng.randint(1, 20)}
            request = order_request_parse(market_code=market, side=side, **fields)
            order_place(owner=holder, request=request)
            placed += 1
        except ValidationError:
            refused += 1  # an empty side or a spent account: still a full round trip
    connection.close()
    queue.put((placed, refused))


def pgbench_tps(url: str, seconds: int) -> float:
    server = url.rsplit("/", 1)[0]
    host = re.search(r"@([^:/]+)", server).group(1)
    port = re.search(r":(\d+)$", server).group(1)
    env = {**os.environ, "PGUSER": "postgres", "PGHOST": host, "PGPORT": port}
    subprocess.run(["dropdb", "--if-exists", "carbon_pgbench"], env=env, check=True)
    subprocess.run(["createdb", "carbon_pgbench"], env=env, check=True)
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", "4", "carbon_pgbench"],
        env=env,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        ["pgbench", "-c", str(CLIENTS), "-j", "2", "-T", str(seconds), "carbon_pgbench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    url = fresh_database()

    from django.contrib.auth import get_user_model

    from market.services.holders import trader_holder_for
    from market.services.ledger import deposit
    from market.tests.helpers import assert_all_invariants

    holder_ids = []
    for number in range(16):
        user = get_user_model().objects.create_user(f"bench{number}", password=None)
        holder = trader_holder_for(user)
        deposit(holder=holder, asset="EUR", amount="10000000")
        deposit(holder=holder, asset="CEA", amount="1000000")
        deposit(holder=holder, asset="EUA", amount="1000000")
        holder_ids.append(holder.pk)

    from django.db import connections

    from market.models import Trade

    def run(markets: list[str]) -> tuple[float, int, int, int]:
        """orders/s, placed, refused and trades of 4 clients on `markets`."""
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        processes = [
            context.Process(target=client, args=(i, holder_ids, markets, args.seconds, queue))
            for i in range(CLIENTS)
        ]
        trades_before = Trade.objects.count()
        connections.close_all()  # the children must not share the parent's connection
        start = time.perf_counter()
        for process in processes:
            process.start()
        results = [queue.get() for _ in processes]
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - start
        placed = sum(p for p, _ in results)
        refused = sum(r for _, r in results)
        # Only orders that were placed count; refusals (an empty side) are shown apart.
        return placed / elapsed, placed, refused, Trade.objects.count() - trades_before

    one_market = run(["CEA"])
    two_markets = run(["CEA", "EUA"])
    tps = pgbench_tps(url, args.seconds)
    print(f"clients: {CLIENTS}; {args.seconds} s per run")
    for label, (rate, placed, refused, trades) in (
        ("one market (CEA)", one_market),
        ("two markets (CEA, EUA)", two_markets),
    ):
        print(
            f"matching, {label}: {rate:,.0f} orders/s "
            f"({placed:,} placed, {refused:,} refused, {trades:,} trades)"
        )
    print(f"pgbench TPC-B-like, {CLIENTS} clients: {tps:,.0f} tps")
    print(f"ratio, one market: {one_market[0] / tps:.2f}  (target >= 0.3)")
    print(f"ratio, two markets: {two_markets[0] / tps:.2f}  (for reference)")
    assert_all_invariants()
    print("invariants: book not crossed, ledger = balances, locked = reservations: OK")
    report_ratio("matching_one_market_vs_tpcb", one_market[0] / tps, 0.3)


if __name__ == "__main__":
    main()
