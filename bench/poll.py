"""Benchmark 1: the order-book poll against a bare Django view, same gunicorn, same run.

Seeds a fresh PostgreSQL database with 50,000 resting orders over both markets (bulk
inserted, a few hundred price levels per side, uncrossed) and a few hundred real trades
(placed through `order_place`, so recent trades and the 24 h stats have something to
show), logs a trader in, then serves the project with gunicorn (2 sync workers, bench
settings: the project's URLs plus `/bench/bare/`, a tiny response that reads nothing).
Loads three URLs with the same concurrency, interleaved over a few rounds:

- bare:    GET /bench/bare/
- auth:    GET /bench/auth/, which only loads the session and the user from the database
           (for reference, no target: what every other view behind login pays first; the
           poll does not, see below)
- partial: GET /market/CEA/book/ as the page polls it (session cookie, HX-Request), without
           If-None-Match: the 200 path, book, stats, depth chart and recent trades
- 304:     the same with If-None-Match: <current ETag>

and prints the median requests/s of each and the ratios partial/bare (target >= 0.5)
and 304/bare (target >= 0.8).

On PostgreSQL the poll is answered from memory once a worker has seen the session: the
live feed (market/live.py) knows the book versions and the sessions, and the body is
cached per book version. The book does not change during the load, so both paths measure
that steady state; what a change costs (one render per worker and version) is in the
`--profile` breakdown. The load generator is wrk if installed (Debian: `apt-get
install wrk`), else a bounded threaded Python client (which takes more of the CPU).

    .venv/bin/python bench/poll.py [--seconds 10] [--rounds 3] [--connections 4]
    .venv/bin/python bench/poll.py --profile   # also cProfile the two poll paths in-process

Needs the local PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
carbon_bench). Exits non-zero if a request fails or answers an unexpected status.
"""

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import gunicorn, request
from _setup import fresh_database, report_ratio

ORDERS = 50_000
LEVELS_PER_SIDE = 300  # per market and side: 1,200 price levels in all
OWNERS = 200
TRADES_PER_MARKET = 60
BOOK = "/market/CEA/book/"
BARE = "/bench/bare/"
AUTH = "/bench/auth/"  # session + user from the database: what other logged-in views pay
TARGETS = {"partial": 0.5, "304": 0.8}


def seed(rng: random.Random):
    """Trades first (through the services), then the resting book in bulk; returns the
    trader's user."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import F

    from market.models import Market, Order
    from market.services.holders import trader_holder_for
    from market.services.ledger import deposit
    from market.services.orders import order_place, order_request_parse

    users = get_user_model().objects
    seller = trader_holder_for(users.create_user("bench_seller", password=None))
    buyer = trader_holder_for(users.create_user("bench_buyer", password=None))
    deposit(holder=buyer, asset="EUR", amount="100000000")
    markets = list(Market.objects.order_by("code"))
    for market in markets:
        deposit(holder=seller, asset=market.code, amount="1000000")
        mid = market.default_reference_price
        for _ in range(TRADES_PER_MARKET):
            quantity = rng.randint(1, 200)
            for holder, side, fields in (
                (seller, "SELL", {"order_type": "LIMIT", "price": mid}),
                (buyer, "BUY", {"order_type": "MARKET"}),
            ):
                parsed = order_request_parse(
                    market_code=market.code, side=side, quantity=quantity, **fields
                )
                order_place(owner=holder, request=parsed)

    owners = [
        trader_holder_for(users.create_user(f"book_owner_{n}", password=None)).pk
        for n in range(OWNERS)
    ]
    per_side = ORDERS // (2 * len(markets))
    rows = []
    for market in markets:
        mid, tick = market.default_reference_price, market.tick_size
        for side, sign in (("BUY", -1), ("SELL", 1)):
            for _ in range(per_side):
                level = rng.randint(1, LEVELS_PER_SIDE)
                rows.append(
                    Order(
                        owner_id=rng.choice(owners),
                        market=market,
                        side=side,
                        order_type="LIMIT",
                        price=mid + sign * tick * level,
                        quantity=rng.randint(1, 500),
                        status="OPEN",
                    )
                )
    Order.objects.bulk_create(rows, batch_size=5000)
    Market.objects.update(book_version=F("book_version") + 1)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Order._meta.db_table}")
    trader = users.create_user("bench_trader", password=None)
    trader_holder_for(trader)
    return trader


def session_cookie(user) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


# --- load generators ------------------------------------------------------------------------


def run_wrk(url: str, headers: dict, seconds: int, connections: int) -> tuple[float, int, str]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    result = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    errors = re.search(r"Socket errors: (.*)", result.stdout)
    return rate, int(bad.group(1)) if bad else 0, errors.group(1) if errors else ""


def run_python(url: str, headers: dict, seconds: int, connections: int):
    """`connections` threads, one request after another each (a new connection per request,
    as gunicorn's sync workers close it), for `seconds` or 1,000,000 requests at most."""
    deadline = time.perf_counter() + seconds
    counts = [0] * connections
    bad = [0] * connections

    def worker(index: int) -> None:
        while time.perf_counter() < deadline and counts[index] < 1_000_000:
            status, _, _ = request("GET", url, headers=headers, timeout=10)
            counts[index] += 1
            bad[index] += status >= 400

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return sum(counts) / (time.perf_counter() - start), sum(bad), ""


# --- profile ----------------------------------------------------------------------------------


def _per_call(function, count: int) -> float:
    """Median milliseconds of `function()` over 5 batches of `count` calls."""
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            function()
        batches.append((time.perf_counter() - start) / count * 1000)
    return statistics.median(batches)


def profile(cookie: str, etag: str, count: int = 40) -> None:
    """Where a poll's time goes, in-process (Django's test client, the same settings and
    database, no HTTP server): whole requests, then each step of the view on its own;
    then cProfile's top functions of the 200 path."""
    import cProfile
    import pstats

    from django.contrib.auth import get_user_model
    from django.test import Client, RequestFactory

    from market import selectors
    from market.models import Market
    from market.views import cash_market as views

    name, value = cookie.split("=", 1)
    client = Client(HTTP_HOST="127.0.0.1")
    client.cookies[name] = value
    htmx = {"HX-Request": "true"}
    requests = {
        "bare view": lambda: client.get(BARE),
        "auth view (session + user)": lambda: client.get(AUTH),
        "poll, 304": lambda: client.get(BOOK, headers={**htmx, "If-None-Match": etag}),
        "poll, 200": lambda: client.get(BOOK, headers=htmx),
    }
    requests["poll, 200"]()  # warm the caches
    print(f"\n--- profile (in-process, ms per call, median of 5 x {count}) ---")
    for label, function in requests.items():
        print(f"{label:44} {_per_call(function, count):7.2f}")

    market = Market.objects.get(code="CEA")
    request = RequestFactory(HTTP_HOST="127.0.0.1").get(BOOK)
    request.user = get_user_model().objects.get(username="bench_trader")
    context = {**views._base_context(request, market), **views._market_data(market, 50)}

    def render(partial: str):
        return lambda: views._render_partial(request, partial, context, oob=True)

    steps = {
        "market_book_version (the 304's own query)": lambda: selectors.market_book_version(
            market_code="CEA"
        ),
        "_market (market row)": lambda: views._market("CEA"),
        "cached_order_book, cache hit": lambda: selectors.cached_order_book(market_code="CEA"),
        "market_stats (2 queries)": lambda: selectors.market_stats(market=market),
        "recent_trades (1 query)": lambda: selectors.recent_trades(market=market, limit=40),
        "render market-stats": render("market-stats"),
        "render recent-trades (40 rows)": render("recent-trades"),
        "order-book + depth-chart, cached HTML": lambda: views._book_fragments(request, context),
        "render order-book (100 levels), uncached": render("order-book"),
        "render depth-chart, uncached": render("depth-chart"),
        "order_book (2 grouped queries), uncached": lambda: selectors.order_book(
            market=market, depth=50
        ),
    }
    for label, function in steps.items():
        print(f"  {label:42} {_per_call(function, count):7.2f}")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        requests["poll, 200"]()
    profiler.disable()
    print(f"\n--- cProfile, poll 200 path, {count} requests, top 20 by own time ---")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per URL and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--python-client", action="store_true", help="even if wrk is there")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    args.seconds = max(1, min(args.seconds, 120))
    args.rounds = max(1, min(args.rounds, 10))

    # The bench URLs in this process too, for the in-process profile.
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    fresh_database()
    from market.models import Order

    started = time.perf_counter()
    trader = seed(random.Random(6))
    resting = Order.objects.filter(status__in=Order.RESTING).count()
    levels = Order.objects.filter(status__in=Order.RESTING).values("market", "side", "price")
    print(
        f"seeded {resting:,} resting orders over {levels.distinct().count():,} price levels "
        f"in both markets, {Order.objects.exclude(status__in=Order.RESTING).count():,} "
        f"closed orders ({time.perf_counter() - started:.0f} s)"
    )
    cookie = session_cookie(trader)
    from django.db import connections

    connections.close_all()

    use_wrk = shutil.which("wrk") and not args.python_client
    load = run_wrk if use_wrk else run_python
    failures = []
    with gunicorn(workers=args.workers) as (base, log):
        htmx = {"Cookie": cookie, "HX-Request": "true"}
        status, headers, body = request("GET", base + BOOK, headers=htmx)
        etag = headers.get("etag")
        bids = body.count(b'data-testid="bid-level"')
        asks = body.count(b'data-testid="ask-level"')
        assert status == 200 and etag, (status, headers)
        assert bids == asks == 50, (bids, asks)
        status, _, _ = request("GET", base + BOOK, headers={**htmx, "If-None-Match": etag})
        assert status == 304, status
        print(f"partial: {len(body):,} bytes, {bids} bid and {asks} ask levels, ETag {etag}")
        cases = {
            "bare": (BARE, {"Cookie": cookie}),
            "auth": (AUTH, {"Cookie": cookie}),
            "partial": (BOOK, htmx),
            "304": (BOOK, {**htmx, "If-None-Match": etag}),
        }
        rates = {name: [] for name in cases}
        loads = []
        for round_number in range(args.rounds):
            for name, (path, headers) in cases.items():
                rate, bad, errors = load(base + path, headers, args.seconds, args.connections)
                rates[name].append(rate)
                if bad:
                    failures.append(f"{name}: {bad} responses >= 400 ({errors})")
                print(
                    f"round {round_number + 1} {name:8} {rate:8,.0f} req/s"
                    + (f"  socket errors: {errors}" if errors else "")
                )
            loads.append(os.getloadavg()[0])
        log_text = Path(log).read_text()
    if args.profile:
        profile(cookie, etag)

    median = {name: statistics.median(values) for name, values in rates.items()}
    print()
    print(
        f"load generator: {'wrk' if use_wrk else 'python threads'}, {args.connections} "
        f"connections; gunicorn {args.workers} sync workers; {args.rounds} rounds of "
        f"{args.seconds} s per URL; {os.cpu_count()} CPUs"
    )
    print(f"load average (1 min) after each round: {', '.join(f'{x:.2f}' for x in loads)}")
    for name in cases:
        print(f"{name:8} {median[name]:8,.0f} req/s (median)")
    verdicts = []
    for name, target in TARGETS.items():
        ratio = median[name] / median["bare"]
        met = "met" if ratio >= target else "NOT met"
        verdicts.append(ratio >= target)
        print(f"ratio {name}/bare: {ratio:.2f}  (target >= {target}: {met})")
    for name in ("partial", "304"):
        print(
            f"ratio {name}/auth: {median[name] / median['auth']:.2f}  (no target: for reference)"
        )
    if "Traceback" in log_text or "WORKER TIMEOUT" in log_text:
        failures.append("gunicorn logged errors:\n" + log_text[-3000:])
    if failures:
        print("FAILED:\n" + "\n".join(failures))
    for name, target in TARGETS.items():
        report_ratio(f"poll_{name}_vs_bare", median[name] / median["bare"], target)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
