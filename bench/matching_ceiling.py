"""Benchmark 2's ceiling: how fast can orders be placed under the market's row lock on
this machine at all, whatever the application code?

`bench/matching.py` compares our engine (Python, `order_place`) with what this script
measures: application-free stand-ins, driven by pgbench itself (a C client, prepared
statements, 4 clients), on the project's real schema (indexes, foreign keys, CHECKs),
sending **what a placement sends**: the engine's statements as its query log shows them
(`REST`, `CROSS`; the house account's id and the ids ahead are taken more simply, with a
literal and plain `nextval` calls), in the mix of benchmark 2's clients (`MIX`: half the
orders rest, half cross; a crossing one fills one resting order, where the engine's
crossing orders fill 1.5 on average):

- a resting order: lock the market row, read the book (nothing crosses), lock the
  buyer's two balances and take the order's id, then insert the order with its
  reservation, update the EUR balance, insert its ledger entry, bump the book version;
- a crossing order: the same reads (the book finds the best ask), the five balances
  (taker, maker, the house's EUR for the fee) and three ids, then insert the order, the
  trade and its TRADE audit ticket, update the resting order (its status toggles, so the
  book stays the same while indexed columns change, as a fill's do) and the five
  balances, insert eight ledger entries, update the market's last price and book version.

Four ways to send them, and a reference:

- **client-side**: one round trip per statement, in one transaction; the market lock is
  held across every round trip until COMMIT.
- **pipelined**: the three round trips our engine uses (`market.db.pipeline`): [BEGIN,
  market lock, book], [balance locks, ids], [every write, COMMIT]. Benchmark 2's judged
  ratio is the engine against this one.
- **server-side**: the same statements in one PL/pgSQL function per kind, one call per
  order: the lock is held only while PostgreSQL itself runs them (the functions exist
  only in the benchmark database).
- **combined**: four orders (two of each kind, as many as there are clients) under one
  market lock in the same three round trips, as an engine would send them if the request
  holding the lock placed every order waiting on it: not our design (one order a lock),
  the measured ceiling of the design that would be next.
- **TPC-B**: pgbench's built-in script, for reference.

`psycopg_standin` sends the pipelined stand-in's statements from Python instead, through
psycopg, as the engine sends its own (`bench/matching.py` runs it beside the engine).

The balance updates write back the values they read and the resting order's fill only
toggles its status, so the asks the orders cross and the accounts stay the same from one
order to the next while costing the same locks, WAL and index work; the resting buys
pile up at €13.90, on the side no stand-in reads.

    .venv/bin/python bench/matching_ceiling.py [--seconds 10] [--prepare FILE]

Needs the local PostgreSQL and pgbench (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/carbon_bench).
"""

import argparse
import json
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

TARGET = 0.3  # benchmark 2's target before issue 14 judged it against the stand-in
HOLDERS = 100
RESTING_PER_SIDE = 2_000

# What one placement sends, as the engine's query log shows it (`order_place` on
# PostgreSQL; its writes travel as one CTE statement, here as separate statements in the
# same round trip; the house's id is a literal here, the ids ahead plain `nextval` calls).
# Round trips are separated by "-- round trip".


def _reads(*, limit: str) -> str:
    """The first round trip of a limit buy at `limit`: the market lock and the book."""
    return (
        """\
SELECT id, code, tick_size, buy_fee_rate, sell_fee_rate, trading_enabled,
    default_reference_price, price_band_pct, slippage_pct, max_order_quantity,
    max_order_value, last_price, last_trade_date, previous_close
    FROM market_market WHERE id = {market} FOR UPDATE;
SELECT id, owner_id, price, quantity, filled_quantity, filled_value, fee_rate, fee_paid,
    reserved FROM market_order WHERE market_id = {market} AND side = 'SELL'
    AND status IN ('OPEN', 'PARTIALLY_FILLED') AND price <= """
        + limit
        + """ ORDER BY price, id LIMIT 6;
-- round trip
"""
    )


# The head of a limit buy's INSERT, up to its price.
_ORDER_INSERT = """\
INSERT INTO market_order (id, owner_id, market_id, side, order_type, price, quantity,
    eur_budget, filled_quantity, filled_value, fee_rate, fee_paid, reserved, status,
    status_reason, client_order_id, ticket_id, time_in_force, post_only, created_at,
    updated_at)
    VALUES (currval('market_order_id_seq'), {taker}, {market}, 'BUY', 'LIMIT', """

# A resting order: a limit buy below the best ask. The book read finds nothing; it
# writes the order with its reservation, the buyer's EUR balance, one ledger entry and
# the book version.
REST = (
    _reads(limit="13.90")
    + """\
SELECT id, holder_id, asset, available, locked FROM market_balance
    WHERE holder_id = {taker} AND asset IN ('CEA', 'EUR') ORDER BY id FOR UPDATE;
SELECT nextval('market_order_id_seq');
-- round trip
"""
    + _ORDER_INSERT
    + """13.90, 5, NULL,
    0, 0, 0.005, 0, 69.85, 'OPEN', '', NULL, NULL, 'GTC', false, now(), now());
UPDATE market_balance SET available = available, locked = locked
    WHERE holder_id = {taker} AND asset = 'EUR';
INSERT INTO market_ledgerentry (holder_id, asset, kind, available_delta, locked_delta,
    order_id, trade_id, ticket_id, created_at)
    VALUES ({taker}, 'EUR', 'RESERVE', -69.85, 69.85, currval('market_order_id_seq'), NULL,
    NULL, now());
UPDATE market_market SET book_version = book_version + 1 WHERE id = {market};
"""
)

# A crossing order with one fill: a limit buy through the best ask, which it partly
# fills. It writes the order, the trade with its TRADE audit ticket, the resting order's
# fill (here its status toggles between OPEN and PARTIALLY_FILLED, so that the book stays
# as it is while the row changes indexed columns, as a fill does), the five balances
# (taker and maker, both assets, and the house's EUR for the fee), eight ledger entries
# and the market's last price and book version.
CROSS = (
    _reads(limit="14.05")
    + """\
SELECT id, holder_id, asset, available, locked FROM market_balance
    WHERE (holder_id IN ({taker}, {maker}) AND asset IN ('CEA', 'EUR'))
    OR (holder_id = {house} AND asset = 'EUR') ORDER BY id FOR UPDATE;
SELECT nextval('market_order_id_seq'), nextval('market_trade_id_seq'),
    nextval('market_ticketlog_id_seq');
-- round trip
"""
    + _ORDER_INSERT
    + """14.05, 5, NULL,
    5, 70.05, 0.005, 0.35, 0, 'FILLED', '', NULL, NULL, 'GTC', false, now(), now());
INSERT INTO market_ticketlog (id, ticket_id, action_type, entity_type, entity_id, user_id,
    market_maker_id, status, request_payload, before_state, after_state,
    related_ticket_ids, tags, ip_address, created_at, idempotency_key)
    VALUES (currval('market_ticketlog_id_seq'), 'TKT-S-' || currval('market_ticketlog_id_seq'),
    'TRADE', 'Trade', currval('market_trade_id_seq')::text, NULL, NULL, 'SUCCESS',
    '{{"taker_order": 3, "maker_order": {resting_id}}}', '{{}}',
    '{{"market": "CEA", "price": "14.01", "quantity": 5, "value": "70.05",
    "buyer_fee": "0.35", "seller_fee": "0.00", "aggressor_side": "BUY"}}',
    '[]', '["trade", "CEA"]', NULL, now(), NULL);
INSERT INTO market_trade (id, market_id, buy_order_id, sell_order_id, buyer_id, seller_id,
    price, quantity, value, buyer_fee, seller_fee, aggressor_side, ticket_id, created_at)
    VALUES (currval('market_trade_id_seq'), {market}, currval('market_order_id_seq'),
    {resting_id}, {taker}, {maker}, 14.01, 5, 70.05, 0.35, 0, 'BUY',
    currval('market_ticketlog_id_seq'), now());
UPDATE market_order SET filled_quantity = filled_quantity, filled_value = filled_value,
    fee_paid = fee_paid, reserved = reserved,
    status = CASE status WHEN 'OPEN' THEN 'PARTIALLY_FILLED' ELSE 'OPEN' END,
    status_reason = '', updated_at = now() WHERE id = {resting_id};
UPDATE market_balance SET available = available, locked = locked
    WHERE (holder_id IN ({taker}, {maker}) AND asset IN ('CEA', 'EUR'))
    OR (holder_id = {house} AND asset = 'EUR');
INSERT INTO market_ledgerentry (holder_id, asset, kind, available_delta, locked_delta,
    order_id, trade_id, ticket_id, created_at) VALUES
    ({taker}, 'EUR', 'RESERVE', -70.60, 70.60, currval('market_order_id_seq'), NULL, NULL, now()),
    ({taker}, 'EUR', 'TRADE_DEBIT', 0, -70.05, NULL, currval('market_trade_id_seq'), NULL, now()),
    ({taker}, 'EUR', 'FEE', 0, -0.35, NULL, currval('market_trade_id_seq'), NULL, now()),
    ({taker}, 'CEA', 'TRADE_CREDIT', 5, 0, NULL, currval('market_trade_id_seq'), NULL, now()),
    ({maker}, 'CEA', 'TRADE_DEBIT', 0, -5, NULL, currval('market_trade_id_seq'), NULL, now()),
    ({maker}, 'EUR', 'TRADE_CREDIT', 70.05, 0, NULL, currval('market_trade_id_seq'), NULL, now()),
    ({house}, 'EUR', 'FEE', 0.35, 0, NULL, currval('market_trade_id_seq'), NULL, now()),
    ({taker}, 'EUR', 'RELEASE', 0.20, -0.20, currval('market_order_id_seq'), NULL, NULL, now());
UPDATE market_market SET book_version = book_version + 1, last_price = 14.01,
    last_trade_date = current_date, previous_close = previous_close WHERE id = {market};
"""
)

# The engine's mix in benchmark 2: half its orders rest, half cross (those average about
# 1.5 fills; the stand-in's cross fills one, so it writes a little less than the engine).
MIX = {"rest": (REST, 50), "cross": (CROSS, 50)}


def seed():
    """Holders with money and certificates, and a resting book on CEA; returns the market
    id, the holders' ids, the best resting sell order and the house account's id."""
    from django.contrib.auth import get_user_model

    from market.models import Holder, Market, Order
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
    house = Holder.objects.get(kind=Holder.Kind.HOUSE)
    return market.pk, holders, resting, house.pk


def pgbench(url: str, scripts: list[tuple[str, int]], seconds: int) -> float:
    """Transactions per second of pgbench running `scripts` (text, weight: each
    transaction picks one by weight), CLIENTS clients, prepared statements."""
    files = []
    try:
        for script, weight in scripts:
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
                file.write(script)
            files.append((file.name, weight))
        command = ["pgbench", "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", "2"]
        target = url.replace("postgres://", "postgresql://")
        chosen = [arg for name, weight in files for arg in ("-f", f"{name}@{weight}")]
        result = subprocess.run(
            [*command, "-T", str(seconds), *chosen, target], capture_output=True, text=True
        )
    finally:
        for name, _ in files:
            os.unlink(name)
    if result.returncode:
        shown = "\n--- script ---\n".join(script for script, _ in scripts)
        raise SystemExit(f"pgbench failed:\n{result.stderr}\n--- script ---\n{shown}")
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    assert failed is None or failed.group(1) == "0", result.stdout
    return float(re.search(r"tps = ([\d.]+) \(without", result.stdout).group(1))


def psycopg_standin(
    url: str, scripts: list[tuple[str, int]], seconds: float, *, clients: int = CLIENTS
) -> float:
    """Orders per second of the **psycopg stand-in**: the pipelined stand-in's scripts
    (`scripts`, as `standin_scripts()["pipelined"]` gives them) sent not by pgbench but
    by CLIENTS Python processes through psycopg, as our engine sends its statements:
    pipeline mode, one sync per round trip, prepared statements, every row fetched, the
    writes as one statement; and no application code. What the driver alone costs a
    Python client of this design: the engine does all of this and its own work besides.
    With `clients=1`, returns instead the CPU an order costs its PostgreSQL backend, in
    seconds (read from /proc: the server is on this machine)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")  # the children open their own connections
    queue = context.Queue()
    processes = [
        context.Process(target=_psycopg_client, args=(url, scripts, seconds, index, queue))
        for index in range(clients)
    ]
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    if clients == 1:
        ((done, _, backend_cpu),) = results
        return backend_cpu / done
    return sum(done / elapsed for done, elapsed, _ in results)


def _psycopg_trips(script: str) -> tuple[tuple[int, int], list[list[str]]]:
    """A pipelined pgbench script as (the taker's id range, its round trips' statements,
    `:taker` as a psycopg placeholder), the last round trip's writes joined into one
    statement before its COMMIT, as the engine sends them (`pipeline.joined_writes`)."""
    from market.db.pipeline import joined_writes

    low, high = map(int, re.search(r"random\((\d+), (\d+)\)", script).groups())
    trips = [
        [line.rstrip(";").replace(":taker", "%(taker)s") for line in block.splitlines() if line]
        for block in re.findall(r"\\startpipeline\n(.*?)\\endpipeline", script, re.DOTALL)
    ]
    *writes, commit = trips[-1]
    trips[-1] = [joined_writes(writes), commit]
    return (low, high), trips


def _psycopg_client(url: str, scripts, seconds: float, index: int, queue) -> None:
    import random
    import time

    import psycopg

    rng = random.Random(index)
    parsed = [_psycopg_trips(script) for script, _ in scripts]
    weights = [weight for _, weight in scripts]
    done = 0
    with psycopg.connect(url, autocommit=True) as conn:
        stat = Path(f"/proc/{conn.info.backend_pid}/stat")
        backend_cpu = -backend_cpu_seconds(stat)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            ((low, high), trips) = rng.choices(parsed, weights)[0]
            params = {"taker": rng.randint(low, high)}
            with conn.pipeline() as pipeline:
                for trip in trips:
                    cursors = []
                    for statement in trip:
                        cursor = conn.cursor()
                        cursor.execute(statement, params, prepare=True)
                        cursors.append(cursor)
                    pipeline.sync()
                    for cursor in cursors:
                        if cursor.pgresult is not None and cursor.description is not None:
                            cursor.fetchall()
                        cursor.close()
            done += 1
        elapsed = time.perf_counter() - start
        backend_cpu += backend_cpu_seconds(stat)
    queue.put((done, elapsed, backend_cpu))


def backend_cpu_seconds(stat: Path) -> float:
    """The CPU (user and system) a process has used, from its /proc/<pid>/stat."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])  # utime, stime: fields 14 and 15
    return (user + system) / os.sysconf("SC_CLK_TCK")


def standin_scripts() -> dict[str, list[tuple[str, int]]]:
    """Seed the stand-ins' holders and resting book in the bench database (migrated and
    set up) and return, by stand-in (`client-side`, `pipelined`, `server-side`,
    `combined`: module docstring), its pgbench scripts with their weights (`MIX`)."""
    from django.db import connection

    market, holders, best_ask, house = seed()
    resting, maker = best_ask.pk, best_ask.owner_id
    takers = [holder for holder in holders if holder != maker]  # no self-trade
    assert maker < min(takers), "the best ask's owner must be outside the takers' range"
    variables = f"\\set taker random({min(takers)}, {max(takers)})\n"
    known = {"market": market, "maker": maker, "resting_id": resting, "house": house}
    scripts = {"client-side": [], "pipelined": [], "server-side": []}
    for name, (template, weight) in MIX.items():
        trips = [
            [" ".join(statement.split()) for statement in trip.split(";\n") if statement.strip()]
            for trip in template.format(taker=":taker", **known).split("-- round trip\n")
        ]
        statements = [statement for trip in trips for statement in trip]
        client_side = variables + "BEGIN;\n" + "".join(f"{s};\n" for s in statements)
        scripts["client-side"].append((client_side + "END;\n", weight))
        # The engine's round trips: [BEGIN, market, book], [balances, ids], [writes, COMMIT].
        trips[0].insert(0, "BEGIN")
        trips[-1].append("END")
        pipelined = "".join(
            "\\startpipeline\n" + "".join(f"{s};\n" for s in trip) + "\\endpipeline\n"
            for trip in trips
        )
        scripts["pipelined"].append((variables + pipelined, weight))
        body = template.format(taker="taker", **known).replace("-- round trip\n", "")
        body = re.sub(r"^SELECT ", "PERFORM ", body, flags=re.MULTILINE)
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE FUNCTION bench_{name}(taker bigint) RETURNS void AS $$\n"
                f"BEGIN\n{body}END $$ LANGUAGE plpgsql"
            )
        scripts["server-side"].append((variables + f"SELECT bench_{name}(:taker);\n", weight))
    scripts["combined"] = [(_combined_script(known, low=min(takers), high=max(takers)), 1)]
    return scripts


# The combined stand-in's orders in one transaction: the mix, a crossing order last (its
# market update, with the last price, is the batch's only one).
COMBINED = ("rest", "cross", "rest", "cross")


def _combined_script(known: dict, *, low: int, high: int) -> str:
    """The **combined** stand-in: len(COMBINED) orders (as many as there are clients)
    under one market lock, in the same three round trips: [BEGIN, the market lock, every
    order's book read], [every order's balance locks], [each order's ids and writes, one
    market update, COMMIT]. What an engine that places the orders waiting on the lock
    together would send at best; each order its own taker."""
    reads, locks, writes = ["BEGIN"], [], []
    for number, name in enumerate(COMBINED, start=1):
        template = MIX[name][0].format(taker=f":taker{number}", **known)
        (market, book), (balances, ids), trip_writes = [
            [" ".join(statement.split()) for statement in trip.split(";\n") if statement.strip()]
            for trip in template.split("-- round trip\n")
        ]
        if number == 1:
            reads.append(market)
        reads.append(book)
        locks.append(balances)
        *order_writes, market_update = trip_writes
        writes += [ids, *order_writes]
    writes += [market_update, "END"]
    variables = "".join(
        f"\\set taker{number} random({low}, {high})\n" for number in range(1, len(COMBINED) + 1)
    )
    return variables + "".join(
        "\\startpipeline\n" + "".join(f"{s};\n" for s in trip) + "\\endpipeline\n"
        for trip in (reads, locks, writes)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--prepare",
        metavar="FILE",
        help="only seed the database and write the pipelined and combined stand-ins' scripts "
        "and weights to FILE, as JSON by name (bench/matching.py runs them beside the engine)",
    )
    args = parser.parse_args()
    url = fresh_database()
    scripts = standin_scripts()
    if args.prepare:
        chosen = {name: scripts[name] for name in ("pipelined", "combined")}
        Path(args.prepare).write_text(json.dumps(chosen))
        return
    client_tps = pgbench(url, scripts["client-side"], args.seconds)
    pipelined_tps = pgbench(url, scripts["pipelined"], args.seconds)
    server_tps = pgbench(url, scripts["server-side"], args.seconds)
    combined_tps = pgbench(url, scripts["combined"], args.seconds)
    tpcb_tps = pgbench_tps(url, args.seconds)
    mix = ", ".join(f"{name} {weight} %" for name, (_, weight) in MIX.items())
    print(f"clients: {CLIENTS}; {args.seconds} s each; pgbench, prepared statements; {mix}")
    print(f"one order, a round trip per statement:      {client_tps:8,.0f} orders/s")
    print(f"one order, three pipelined round trips:     {pipelined_tps:8,.0f} orders/s")
    print(f"one order, one server-side function:        {server_tps:8,.0f} orders/s")
    print(
        f"{len(COMBINED)} orders a lock, three round trips:      "
        f"{combined_tps * len(COMBINED):8,.0f} orders/s "
        f"({combined_tps * len(COMBINED) / pipelined_tps:.2f}x pipelined)"
    )
    print(f"pgbench TPC-B-like (for reference):           {tpcb_tps:6,.0f} tps")
    print(
        f"ratios to TPC-B: a round trip per statement {client_tps / tpcb_tps:.2f}, "
        f"pipelined {pipelined_tps / tpcb_tps:.2f}, server-side {server_tps / tpcb_tps:.2f} "
        f"(benchmark 2's old target, against TPC-B: >= {TARGET})"
    )
    report_ratio("matching_ceiling_pipelined_vs_tpcb", pipelined_tps / tpcb_tps, TARGET)


if __name__ == "__main__":
    main()
