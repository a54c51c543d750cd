"""Benchmark 2's ceiling: how fast can orders be matched under the market's row lock on
this machine at all, whatever the application code?

`bench/matching.py` compares our engine (Python, `order_place`) with pgbench's TPC-B-like
script. This script measures, in the same run and with the same 4 clients, two
application-free stand-ins for one crossing order, driven by pgbench itself (a C client,
prepared statements), on the project's real schema (indexes, foreign keys, checks):

- **client-side**: the statements one crossing order needs, in one transaction from the
  client, one round trip each: lock the market row, lock the two holders' balances, read
  the crossing orders, insert the order and the trade, update the resting order and the
  balances, insert four ledger entries, bump the book version. The market lock is held
  across every round trip until COMMIT.
- **pipelined**: the same statements in the three round trips our engine now uses
  (`market.db.pipeline`): [BEGIN, market lock, book], [balance lock], [every write, COMMIT].
- **server-side**: the same statements in one PL/pgSQL function, one call per order: the
  lock is held only while PostgreSQL itself runs them (the function exists only in the
  benchmark database).
- **TPC-B**: pgbench's built-in script, the denominator of benchmark 2.

The updates write back the values they read, so the book stays the same from one order
to the next while costing the same locks, WAL and index work.

    .venv/bin/python bench/matching_ceiling.py [--seconds 10]

Needs the local PostgreSQL and pgbench (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/carbon_bench).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import fresh_database, report_ratio
from matching import CLIENTS, pgbench_tps

TARGET = 0.3
HOLDERS = 100
RESTING_PER_SIDE = 2_000

STATEMENTS = """\
SELECT id, book_version FROM market_market WHERE id = {market} FOR UPDATE;
SELECT id, available, locked FROM market_balance
    WHERE holder_id IN ({taker}, {maker}) ORDER BY id FOR UPDATE;
SELECT id, owner_id, price, quantity - filled_quantity FROM market_order
    WHERE market_id = {market} AND side = 'SELL' AND status IN ('OPEN', 'PARTIALLY_FILLED')
    ORDER BY price, id LIMIT 3 FOR UPDATE;
INSERT INTO market_order (owner_id, market_id, side, order_type, price, quantity,
    filled_quantity, filled_value, fee_rate, fee_paid, reserved, status, status_reason,
    created_at, updated_at)
    VALUES ({taker}, {market}, 'BUY', 'LIMIT', 14.50, 5, 5, 70.50, 0.001, 0.07, 0,
    'FILLED', '', now(), now()) RETURNING id {into};
INSERT INTO market_trade (market_id, buy_order_id, sell_order_id, buyer_id, seller_id,
    price, quantity, value, buyer_fee, seller_fee, aggressor_side, created_at)
    VALUES ({market}, {order_id}, {resting_id}, {taker}, {maker}, 14.10, 5, 70.50, 0.07,
    0.07, 'BUY', now());
UPDATE market_order SET filled_quantity = filled_quantity, filled_value = filled_value,
    updated_at = now() WHERE id = {resting_id};
UPDATE market_balance SET available = available, locked = locked
    WHERE holder_id IN ({taker}, {maker});
INSERT INTO market_ledgerentry (holder_id, asset, kind, available_delta, locked_delta,
    order_id, created_at) VALUES
    ({taker}, 'EUR', 'TRADE', -70.57, 0, {order_id}, now()),
    ({taker}, 'CEA', 'TRADE', 5, 0, {order_id}, now()),
    ({maker}, 'EUR', 'TRADE', 70.43, 0, {resting_id}, now()),
    ({maker}, 'CEA', 'TRADE', 0, -5, {resting_id}, now());
UPDATE market_market SET book_version = book_version + 1 WHERE id = {market};
"""


def seed():
    """Holders with money and certificates, and a resting book on CEA; returns the market
    id, the holders' ids and the best resting sell order."""
    from django.contrib.auth import get_user_model

    from market.models import Market, Order
    from market.services.holders import trader_holder_for
    from market.services.ledger import deposit

    market = Market.objects.get(code="CEA")
    holders = []
    for number in range(HOLDERS):
        holder = trader_holder_for(get_user_model().objects.create_user(f"c{number}"))
        deposit(holder=holder, asset="EUR", amount="1000000")
        deposit(holder=holder, asset="CEA", amount="100000")
        holders.append(holder.pk)
    orders = []
    for index in range(RESTING_PER_SIDE):
        tick = Decimal("0.01") * (index % 100)
        for side, price in (("BUY", Decimal("13.99") - tick), ("SELL", Decimal("14.01") + tick)):
            orders.append(
                Order(
                    owner_id=holders[index % HOLDERS],
                    market=market,
                    side=side,
                    order_type="LIMIT",
                    price=price,
                    quantity=10,
                    status="OPEN",
                )
            )
    Order.objects.bulk_create(orders, batch_size=2_000)
    resting = Order.objects.filter(market=market, side="SELL").order_by("price", "id").first()
    return market.pk, holders, resting


def pgbench(url: str, script: str, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        command = ["pgbench", "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", "2"]
        target = url.replace("postgres://", "postgresql://")
        result = subprocess.run(
            [*command, "-T", str(seconds), "-f", file.name, target],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(file.name)
    if result.returncode:
        raise SystemExit(f"pgbench failed:\n{result.stderr}\n--- script ---\n{script}")
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    assert failed is None or failed.group(1) == "0", result.stdout
    return float(re.search(r"tps = ([\d.]+) \(without", result.stdout).group(1))


def standin_scripts() -> dict[str, str]:
    """Seed the stand-ins' holders and resting book in the bench database (migrated and
    set up) and return their pgbench scripts by name: `client-side`,
    `pipelined` and `server-side` (module docstring)."""
    market, holders, best_ask = seed()
    resting, maker = best_ask.pk, best_ask.owner_id
    takers = [holder for holder in holders if holder != maker]  # no self-trade
    assert maker < min(takers), "the best ask's owner must be outside the takers' range"
    variables = f"\\set taker random({min(takers)}, {max(takers)})\n"

    client_side = (
        variables
        + "BEGIN;\n"
        + STATEMENTS.format(
            market=market,
            taker=":taker",
            maker=maker,
            resting_id=resting,
            into="",
            order_id="(SELECT max(id) FROM market_order WHERE owner_id = :taker)",
        ).replace("\n    ", " ")
        + "END;\n"
    )
    body = STATEMENTS.format(
        market=market,
        taker="taker",
        maker=maker,
        resting_id=resting,
        into="INTO order_id",
        order_id="order_id",
    ).replace("SELECT id", "PERFORM id")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION bench_place_order(taker bigint) RETURNS bigint AS $$\n"
            "DECLARE order_id bigint;\nBEGIN\n" + body + "RETURN order_id;\nEND $$ "
            "LANGUAGE plpgsql"
        )
    server_side = variables + "SELECT bench_place_order(:taker);\n"
    lock_market, lock_balances, read_book, *writes = [
        statement.strip()
        for statement in client_side.removeprefix(variables + "BEGIN;\n")
        .removesuffix("END;\n")
        .split(";\n")
        if statement.strip()
    ]
    pipelined = (
        variables
        + f"\\startpipeline\nBEGIN;\n{lock_market};\n{read_book};\n\\endpipeline\n"
        + f"{lock_balances};\n"
        + "\\startpipeline\n"
        + "".join(f"{statement};\n" for statement in writes)
        + "END;\n\\endpipeline\n"
    )
    return {"client-side": client_side, "pipelined": pipelined, "server-side": server_side}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--prepare",
        metavar="FILE",
        help="only seed the database and write the pipelined stand-in's script to FILE "
        "(bench/matching.py runs it beside the engine)",
    )
    args = parser.parse_args()
    url = fresh_database()
    scripts = standin_scripts()
    if args.prepare:
        Path(args.prepare).write_text(scripts["pipelined"])
        return
    client_tps = pgbench(url, scripts["client-side"], args.seconds)
    pipelined_tps = pgbench(url, scripts["pipelined"], args.seconds)
    server_tps = pgbench(url, scripts["server-side"], args.seconds)
    tpcb_tps = pgbench_tps(url, args.seconds)
    print(f"clients: {CLIENTS}; {args.seconds} s each; pgbench, prepared statements")
    print(f"one crossing order, a round trip per statement: {client_tps:8,.0f} orders/s")
    print(f"one crossing order, three pipelined round trips: {pipelined_tps:7,.0f} orders/s")
    print(f"one crossing order, one server-side function:   {server_tps:8,.0f} orders/s")
    print(f"pgbench TPC-B-like (benchmark 2's reference):   {tpcb_tps:8,.0f} tps")
    print(
        f"ratios to TPC-B: a round trip per statement {client_tps / tpcb_tps:.2f}, "
        f"pipelined {pipelined_tps / tpcb_tps:.2f}, server-side {server_tps / tpcb_tps:.2f} "
        f"(benchmark 2's target: >= {TARGET})"
    )
    report_ratio("matching_ceiling_pipelined_vs_tpcb", pipelined_tps / tpcb_tps, TARGET)


if __name__ == "__main__":
    main()
