"""Benchmark 2: matching throughput against pgbench on the same PostgreSQL, same run.

4 client processes, each with its own connection, place random limit and market orders
(about half of them crossing) on the CEA market through `order_place` for DURATION
seconds; then pgbench runs its built-in TPC-B-like script with 4 clients for the same
time on a database of its own on the same server. Prints orders/s, pgbench tps and their
ratio (target >= 0.3), then checks the market's invariants.

    .venv/bin/python bench/matching.py [--seconds 15]
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
from _setup import fresh_database

CLIENTS = 4


def client(index: int, holder_ids: list[int], seconds: float, queue) -> None:
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
        side = rng.choice(["BUY", "SELL"])
        crossing = rng.random() < 0.5
        try:
            if crossing and rng.random() < 0.4:
                fields = {"order_type": "MARKET", "quantity": rng.randint(1, 20)}
            else:
                # Crossing limits reach past the mid; the others rest a few ticks away.
                offset = Decimal(rng.randint(1, 10)) / 100
                mid = Decimal("14.00")
                if crossing:
                    price = mid + offset if side == "BUY" else mid - offset
                else:
                    price = mid - offset if side == "BUY" else mid + offset
                fields = {"order_type": "LIMIT", "price": price, "quantity": rng.randint(1, 20)}
            request = order_request_parse(market_code="CEA", side=side, **fields)
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
        holder_ids.append(holder.pk)

    queue = multiprocessing.get_context("fork").Queue()
    processes = [
        multiprocessing.get_context("fork").Process(
            target=client, args=(i, holder_ids, args.seconds, queue)
        )
        for i in range(CLIENTS)
    ]
    from django.db import connections

    connections.close_all()
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
    orders_per_second = placed / elapsed

    from market.models import Trade

    trades = Trade.objects.count()
    tps = pgbench_tps(url, args.seconds)
    print(f"clients: {CLIENTS}; duration: {elapsed:.1f} s")
    print(f"orders: {placed:,} placed, {refused:,} refused; trades: {trades:,}")
    print(f"matching: {orders_per_second:,.0f} orders/s")
    print(f"pgbench TPC-B-like, {CLIENTS} clients: {tps:,.0f} tps")
    print(f"ratio: {orders_per_second / tps:.2f}  (target >= 0.3)")
    assert_all_invariants()
    print("invariants: book not crossed, ledger = balances, locked = reservations: OK")


if __name__ == "__main__":
    main()
