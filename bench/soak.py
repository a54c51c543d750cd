"""Soak: random traders and staff over HTTP for a bounded time.

On a fresh PostgreSQL database, seeds market makers (through the services) and funded
traders, issues a staff API token (`create_api_token`), then serves the project with
gunicorn and runs 8 client processes against it for `--seconds` (default 60):

- traders (8 - `--staff`): each logs in through the login form, loads the cash market
  page (CSRF token), then at random places limit orders (about half crossing the
  spread) and market orders through the order form (HTMX posts and plain form posts
  with redirects), cancels some of its own resting orders (ids read from My Orders),
  polls the book (If-None-Match, as the page does), and reloads balances and the page;
- staff (`--staff`, default 2): through the JSON API with a bearer token, previews and
  creates liquidity operations (Idempotency-Key, sometimes with the previewed
  fingerprint, sometimes replaying a key) and withdraws them.

At the end it prints the counts (requests by status class, orders placed and refused,
trades, cancels, liquidity operations created and withdrawn, every 4xx by kind), stops
gunicorn and checks the market's invariants on the database (`assert_all_invariants`,
and the matching invariants). Exits non-zero on any 5xx, any failed connection, or any
broken invariant.

    .venv/bin/python bench/soak.py [--seconds 60] [--staff 2] [--workers 4]

Its parts (`prepare`, `servers`, `soak_round`, `invariant_failures`, ...) also serve
bench/two_hosts.py, bench/pgbouncer.py and bench/memory.py, so the soak has one copy.

Needs the local PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
carbon_bench). Loopback only; every loop is bounded in time and in count.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import queue as queue_module
import random
import re
import sys
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import ROOT, Browser, collectstatic
from _setup import fresh_database, report_ratio

PROCESSES = 8
PASSWORD = "soak-Password-2026"
MAX_ACTIONS = 100_000  # per process, on top of the time limit
MIDS = {"CEA": Decimal("14.00"), "EUA": Decimal("81.00")}
CANCEL_URL = re.compile(rb"/market/(CEA|EUA)/orders/(\d+)/cancel/")
HX_TOKEN = re.compile(rb'"X-CSRFToken": "([^"]+)"')


def route(path: str) -> str:
    """A path with its ids and query left out, for counting 4xx by kind."""
    return re.sub(r"/\d+/", "/{id}/", path.split("?", 1)[0])


class Tally:
    def __init__(self):
        self.counts = Counter()
        self.rejections = Counter()  # 4xx by kind
        self.failures: list[str] = []

    def record(self, method: str, path: str, status: int, body: bytes = b"") -> None:
        self.counts["requests"] += 1
        self.counts[f"{status // 100}xx"] += 1
        if 400 <= status < 500:
            kind = ""
            with contextlib.suppress(ValueError, AttributeError):
                kind = json.loads(body).get("error", "")
            self.rejections[f"{method} {route(path)} {status} {kind}".strip()] += 1
        if status >= 500:
            self.failures.append(f"{method} {path} -> {status}: {body[:300]!r}")


def call(tally: Tally, browser: Browser, method: str, path: str, **kwargs):
    try:
        if method == "GET":
            status, headers, body = browser.get(path, **kwargs)
        else:
            status, headers, body = browser.post(path, **kwargs)
    except OSError as error:
        tally.counts["connection errors"] += 1
        tally.failures.append(f"{method} {path}: {error!r}")
        return 0, {}, b""
    tally.record(method, path, status, body)
    return status, headers, body


# --- traders ------------------------------------------------------------------------------


def trader(index: int, base: str, seconds: float, queue) -> None:
    rng = random.Random(1000 + index)
    tally = Tally()
    try:
        _trade(rng, tally, base, f"soak_trader{index}", time.monotonic() + seconds)
    except Exception:  # reported, and fails the soak
        tally.failures.append(f"trader {index} crashed:\n{traceback.format_exc()}")
    queue.put((tally.counts, tally.rejections, tally.failures))


def _login(tally: Tally, browser: Browser, username: str) -> bool:
    call(tally, browser, "GET", "/accounts/login/")
    status, _, _ = call(
        tally,
        browser,
        "POST",
        "/accounts/login/",
        data={"username": username, "password": PASSWORD, "next": "/market/CEA/"},
    )
    return status == 302 and "sessionid" in browser.cookies


def _trade(rng, tally: Tally, base: str, username: str, deadline: float) -> None:
    browser = Browser(base)
    if not _login(tally, browser, username):
        tally.failures.append(f"{username} could not log in")
        return
    etags: dict[str, str] = {}
    own: dict[str, list[int]] = {"CEA": [], "EUA": []}

    def load_page(code: str) -> None:
        status, _, body = call(tally, browser, "GET", f"/market/{code}/")
        match = HX_TOKEN.search(body)
        if status == 200 and match:
            browser.token = match.group(1).decode()

    load_page("CEA")
    actions = 0
    while time.monotonic() < deadline and actions < MAX_ACTIONS:
        actions += 1
        code = rng.choice(("CEA", "EUA"))
        htmx = rng.random() < 0.7
        hx = {"HX-Request": "true", "X-CSRFToken": browser.csrf} if htmx else {}
        roll = rng.random()
        if roll < 0.45:  # limit order, about half of them crossing
            side = rng.choice(("BUY", "SELL"))
            ticks = Decimal(rng.randint(1, 25)) / 100
            crossing = rng.random() < 0.5
            above = (side == "BUY") == crossing
            price = MIDS[code] + ticks if above else MIDS[code] - ticks
            data = {"side": side, "order_type": "LIMIT", "price": str(price)}
            data.update(quantity=str(rng.randint(1, 40)), amount_mode="quantity")
            _place(tally, browser, code, data, hx)
        elif roll < 0.60:  # market order, by quantity or (buys) by EUR amount
            side = rng.choice(("BUY", "SELL"))
            data = {"side": side, "order_type": "MARKET", "amount_mode": "quantity"}
            if side == "BUY" and rng.random() < 0.3:
                data.update(amount_mode="eur", eur_budget=str(rng.randint(50, 600)))
            else:
                data["quantity"] = str(rng.randint(1, 30))
            _place(tally, browser, code, data, hx)
        elif roll < 0.75:  # cancel one of my resting orders
            status, _, body = call(
                tally, browser, "GET", f"/market/{code}/orders/", headers={"HX-Request": "true"}
            )
            own[code] = [int(m.group(2)) for m in CANCEL_URL.finditer(body)]
            if own[code]:
                order_id = rng.choice(own[code])
                status, headers, _ = call(
                    tally,
                    browser,
                    "POST",
                    f"/market/{code}/orders/{order_id}/cancel/",
                    data={},
                    headers=hx,
                )
                if (htmx and headers.get("hx-trigger") == "market-changed") or (
                    not htmx and status == 302
                ):
                    tally.counts["cancels"] += 1
        elif roll < 0.95:  # poll the book as the page does
            headers = {"HX-Request": "true"}
            if code in etags:
                headers["If-None-Match"] = etags[code]
            status, found, _ = call(
                tally, browser, "GET", f"/market/{code}/book/", headers=headers
            )
            if found.get("etag"):
                etags[code] = found["etag"]
            tally.counts[f"book polls {status}"] += 1
        elif roll < 0.98:
            call(
                tally, browser, "GET", f"/market/{code}/balances/", headers={"HX-Request": "true"}
            )
        else:
            load_page(code)


def _place(tally: Tally, browser: Browser, code: str, data: dict, hx: dict) -> None:
    data["client_order_id"] = uuid.uuid4().hex
    status, headers, _ = call(
        tally, browser, "POST", f"/market/{code}/orders/new/", data=data, headers=hx
    )
    kind = data["order_type"].lower()
    placed = headers.get("hx-trigger") == "market-changed" if hx else status == 302
    tally.counts[f"{kind} orders placed" if placed else f"{kind} orders refused"] += 1
    if placed and not hx:
        # Follow the redirect, as a browser does.
        call(tally, browser, "GET", headers.get("location", f"/market/{code}/"))


# --- staff ---------------------------------------------------------------------------------


def staff(index: int, base: str, token: str, seconds: float, queue) -> None:
    rng = random.Random(2000 + index)
    tally = Tally()
    try:
        _manage(rng, tally, base, token, time.monotonic() + seconds)
    except Exception:  # reported, and fails the soak
        tally.failures.append(f"staff {index} crashed:\n{traceback.format_exc()}")
    queue.put((tally.counts, tally.rejections, tally.failures))


def _manage(rng, tally: Tally, base: str, token: str, deadline: float) -> None:
    from _http import request

    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def api(method: str, path: str, payload=None, headers=None):
        body = json.dumps(payload).encode() if payload is not None else None
        try:
            status, _, data = request(
                method, base + path, headers={**auth, **(headers or {})}, body=body
            )
        except OSError as error:
            tally.counts["connection errors"] += 1
            tally.failures.append(f"{method} {path}: {error!r}")
            return 0, b""
        tally.record(method, path, status, data)
        return status, data

    live: list[int] = []
    keys: list[tuple[str, dict]] = []
    actions = 0
    while time.monotonic() < deadline and actions < MAX_ACTIONS:
        actions += 1
        roll = rng.random()
        if roll < 0.45 or not live:
            payload = {
                "certificate_type": rng.choice(("CEA", "EUA")),
                "bid_amount_eur": str(rng.choice((5000, 20000, 50000))),
                "ask_amount_eur": str(rng.choice((0, 5000, 20000, 50000))),
            }
            if rng.random() < 0.3:
                status, data = api("POST", "/api/v1/liquidity/preview", payload)
                if status == 200:
                    payload["fingerprint"] = json.loads(data)["fingerprint"]
            key = uuid.uuid4().hex
            status, data = api(
                "POST", "/api/v1/liquidity/create", payload, {"Idempotency-Key": key}
            )
            if status == 201:
                tally.counts["liquidity ops created"] += 1
                live.append(json.loads(data)["liquidity_operation_id"])
                keys.append((key, payload))
        elif roll < 0.55 and keys:  # a client retrying: the same key answers the same op
            key, payload = rng.choice(keys)
            status, data = api(
                "POST", "/api/v1/liquidity/create", payload, {"Idempotency-Key": key}
            )
            if status == 200:
                tally.counts["liquidity create replays"] += 1
        elif roll < 0.9:
            operation_id = live.pop(0)
            status, data = api("POST", f"/api/v1/liquidity/operations/{operation_id}/withdraw")
            if status == 200:
                tally.counts["liquidity ops withdrawn"] += 1
                tally.counts["liquidity orders cancelled"] += json.loads(data)["orders_cancelled"]
        else:
            api("GET", "/api/v1/liquidity/operations?limit=20")
        time.sleep(rng.uniform(0.05, 0.3))  # staff click less often than traders


# --- cross-host visibility probe --------------------------------------------------------------

ETAG_VERSION = re.compile(r'"book-(\d+)-')
POLL_EVERY = re.compile(r'id="order-book".*?hx-trigger="every (\d+(?:\.\d+)?)s', re.S)


def poll_interval() -> float:
    """Seconds between two polls of the order book, as the cash-market page sets them."""
    template = (ROOT / "templates/market/cash_market.html").read_text()
    return float(POLL_EVERY.search(template).group(1))


def probe(bases: list[str], database_url: str, seconds: float, queue) -> None:
    """Every ~1.5 s, a market order through one host (alternating), then host B's book poll
    (HTMX, as the page polls) until its ETag shows a book version at least the database's
    after that trade committed: the time from host A's answer to host B showing it."""
    import psycopg

    rng = random.Random(3000)
    tally = Tally()
    latencies: list[float] = []
    try:
        browsers = [Browser(base) for base in bases]
        for browser in browsers:
            if not _login(tally, browser, "soak_probe"):
                tally.failures.append(f"the probe could not log in on {browser.base}")
                raise SystemExit
            call(tally, browser, "GET", "/market/CEA/")
        db = psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True)
        deadline = time.monotonic() + seconds - 3
        turn = 0
        while time.monotonic() < deadline and turn < 10_000:
            source, target = browsers[turn % 2], browsers[(turn + 1) % 2]
            turn += 1
            side = "BUY" if turn % 4 < 2 else "SELL"
            data = {"side": side, "order_type": "MARKET", "amount_mode": "quantity"}
            data.update(quantity="1", client_order_id=uuid.uuid4().hex)
            hx = {"HX-Request": "true", "X-CSRFToken": source.csrf}
            status, headers, _ = call(
                tally, source, "POST", "/market/CEA/orders/new/", data=data, headers=hx
            )
            answered = time.monotonic()
            if headers.get("hx-trigger") != "market-changed":
                tally.counts["probe orders refused"] += 1
                time.sleep(1.5)
                continue
            tally.counts["probe trades"] += 1
            (committed,) = db.execute(
                "SELECT book_version FROM market_market WHERE code = 'CEA'"
            ).fetchone()
            seen = None
            while time.monotonic() - answered < 10:
                status, found, _ = call(
                    tally, target, "GET", "/market/CEA/book/", headers={"HX-Request": "true"}
                )
                match = ETAG_VERSION.match(found.get("etag", ""))
                if status == 200 and match and int(match.group(1)) >= committed:
                    seen = time.monotonic() - answered
                    break
                time.sleep(0.01)
            if seen is None:
                tally.failures.append(f"{target.base} never showed book version {committed}")
            else:
                latencies.append(seen)
            time.sleep(rng.uniform(1.0, 2.0))
        db.close()
    except SystemExit:
        pass
    except Exception:  # reported, and fails the soak
        tally.failures.append(f"probe crashed:\n{traceback.format_exc()}")
    queue.put((tally.counts, tally.rejections, tally.failures, latencies))


# --- set-up and report ------------------------------------------------------------------------

PROGRAM = {  # re-centres often under the soak's trading: the worker has work
    "refresh_interval_seconds": 5,
    "refresh_tolerance_pct": "0.1",
    "replenish_threshold_pct": "30",
    "replenish_delay_seconds": 5,
    "notes": "soak",
}


def seed(traders: int, *, programs: bool = False) -> str:
    """Market makers and funded traders (and the probe's trader) through the services; with
    `programs`, an active liquidity program per market. The staff API token."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from market.services.holders import trader_holder_for
    from market.services.ledger import deposit
    from market.services.market_makers import market_makers_create_bulk

    users = get_user_model().objects
    admin = users.create_superuser("soak_staff", "staff@example.com", PASSWORD)
    for mm_type, asset, total in (
        ("LIQUIDITY_PROVIDER", "EUR", "20000000"),
        ("ASSET_HOLDER", "CEA", "2000000"),
        ("ASSET_HOLDER", "EUA", "400000"),
    ):
        market_makers_create_bulk(
            count=25,
            mm_type=mm_type,
            asset=asset,
            total_amount=total,
            name_prefix=f"Soak {asset}",
            created_by=admin,
        )
    for username in [f"soak_trader{index}" for index in range(traders)] + ["soak_probe"]:
        user = users.create_user(username, password=PASSWORD)
        holder = trader_holder_for(user)
        deposit(holder=holder, asset="EUR", amount="500000")
        deposit(holder=holder, asset="CEA", amount="20000")
        deposit(holder=holder, asset="EUA", amount="5000")
    if programs:
        from liquidity.programs import program_activate, program_create

        for code, (bid, ask) in {"CEA": ("100000", "50000"), "EUA": ("200000", "100000")}.items():
            program = program_create(
                user=admin,
                data={
                    "name": f"Soak {code}",
                    "certificate_type": code,
                    "bid_target_eur": bid,
                    "ask_target_eur": ask,
                    **PROGRAM,
                },
            )
            program_activate(program_id=program.pk, user=admin)
    out = StringIO()
    call_command("create_api_token", username="soak_staff", name="soak", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


@contextlib.contextmanager
def liquidity_worker(env: dict[str, str] | None = None):
    """`manage.py liquidity_worker` beside the web servers; yields its log's path."""
    import signal
    import subprocess
    import tempfile

    from _http import server_env

    handle, log = tempfile.mkstemp(prefix="bench-worker-", suffix=".log")
    os.close(handle)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "liquidity_worker", "--poll", "1", "--name", "soak"],
            cwd=ROOT,
            env={**server_env(), **(env or {}), "PYTHONUNBUFFERED": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextlib.contextmanager
def servers(*, hosts: int = 1, workers: int = 4, env=None, worker: bool = False):
    """`hosts` gunicorn servers (each its own port and workers) against the one database,
    and with `worker` the liquidity worker; yields (servers, worker log or None)."""
    from _http import gunicorn_server

    with contextlib.ExitStack() as stack:
        running = [
            stack.enter_context(gunicorn_server(workers=workers, env=env)) for _ in range(hosts)
        ]
        log = stack.enter_context(liquidity_worker(env)) if worker else None
        yield running, log


@dataclass
class Round:
    seconds: float
    elapsed: float
    clients: int
    counts: Counter = field(default_factory=Counter)
    rejections: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    latencies: list = field(default_factory=list)  # the probe's, in seconds


def soak_round(
    bases: list[str], token: str, *, seconds: float, staff_count: int = 2, probe_url: str = ""
) -> Round:
    """The 8 client processes for `seconds`, spread over `bases` in turn (with `probe_url`,
    the database's URL, and two hosts: the visibility probe too); their tallies."""
    traders = PROCESSES - staff_count
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    started = time.monotonic()
    processes = [
        context.Process(target=trader, args=(i, bases[i % len(bases)], seconds, queue))
        for i in range(traders)
    ] + [
        context.Process(
            target=staff, args=(i, bases[(traders + i) % len(bases)], token, seconds, queue)
        )
        for i in range(staff_count)
    ]
    if probe_url and len(bases) > 1:
        processes.append(context.Process(target=probe, args=(bases, probe_url, seconds, queue)))
    for process in processes:
        process.start()
    results = []
    for _ in processes:
        try:
            results.append(queue.get(timeout=seconds + 300))
        except queue_module.Empty:  # a client hung
            break
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)
    found = Round(seconds, time.monotonic() - started, len(processes))
    for result in results:
        found.counts.update(result[0])
        found.rejections.update(result[1])
        found.failures += result[2]
        if len(result) > 3:
            found.latencies += result[3]
    if len(results) != len(processes):
        found.failures.append(f"only {len(results)} of {len(processes)} clients reported back")
    if found.counts["5xx"]:
        found.failures.append(f"{found.counts['5xx']} responses were 5xx")
    if found.counts["requests"] == 0:
        found.failures.append("no request was made")
    return found


def print_round(found: Round, label: str = "soak") -> None:
    counts = found.counts
    print(
        f"{label}: {found.clients} client processes for {found.seconds:g} s "
        f"({found.elapsed:.0f} s with start-up)"
    )
    print(
        f"requests: {counts['requests']:,} ({counts['requests'] / found.seconds:,.0f}/s); "
        + ", ".join(f"{c}: {counts[c]:,}" for c in ("2xx", "3xx", "4xx", "5xx"))
        + f"; connection errors: {counts['connection errors']:,}"
    )
    print(
        "orders through the form: "
        f"limit {counts['limit orders placed']:,} placed / {counts['limit orders refused']:,} "
        f"refused, market {counts['market orders placed']:,} placed / "
        f"{counts['market orders refused']:,} refused; cancels: {counts['cancels']:,}"
    )
    print(
        f"book polls: {counts['book polls 200']:,} answered 200, "
        f"{counts['book polls 304']:,} answered 304"
    )
    print(
        f"liquidity: {counts['liquidity ops created']:,} operations created "
        f"({counts['liquidity create replays']:,} idempotent replays), "
        f"{counts['liquidity ops withdrawn']:,} withdrawn "
        f"({counts['liquidity orders cancelled']:,} orders cancelled)"
    )
    print("4xx by kind:" if found.rejections else "4xx: none")
    for kind, number in found.rejections.most_common():
        print(f"  {number:6,}  {kind}")


def log_failures(logs: list[str]) -> list[str]:
    """Tracebacks or timeouts in gunicorn's (or the worker's) logs."""
    failures = []
    for log in logs:
        text = Path(log).read_text()
        if "Traceback" in text or "WORKER TIMEOUT" in text or "Pass failed" in text:
            failures.append(f"{log} logged errors:\n" + text[-4000:])
    return failures


def invariant_failures() -> list[str]:
    """The market's invariants on the database, with the totals printed."""
    from django.db import connections

    from liquidity.models import LiquidityOperation
    from market.models import Order, Trade
    from market.tests import helpers

    connections.close_all()  # a fresh connection: the one before the fork may be stale
    print(
        f"database: {Order.objects.count():,} orders "
        f"({Order.objects.filter(status__in=Order.RESTING).count():,} resting), "
        f"{Trade.objects.count():,} trades, "
        f"{LiquidityOperation.objects.count():,} liquidity operations"
    )
    try:
        helpers.assert_all_invariants()
        if hasattr(helpers, "assert_matching_invariants"):
            helpers.assert_matching_invariants()
    except AssertionError as error:
        return [f"invariant broken: {error!r}\n{traceback.format_exc()}"]
    print(
        "invariants: all hold (ledger = balances, locked = reservations, book not "
        "crossed, orders consistent, totals conserved, fills = trades, FIFO, fees)"
    )
    return []


def answered_share(rounds: list[Round], failures: list[str]) -> float:
    """The share of requests answered without a server error; 0 if an invariant broke."""
    requests = sum(r.counts["requests"] for r in rounds)
    errors = sum(r.counts["5xx"] for r in rounds)
    if not requests or any(f.startswith("invariant broken") for f in failures):
        return 0.0
    return (requests - errors) / requests


def print_failures(failures: list[str]) -> None:
    if failures:
        print("FAILED:")
        for failure in failures[:30]:
            print("  " + failure)
    else:
        print("OK: zero 5xx, every invariant holds")


def prepare(*, staff: int = 2, programs: bool = False) -> tuple[str, str]:
    """A fresh database, seeded, static files collected; (its URL, the staff token)."""
    url = fresh_database()
    token = seed(PROCESSES - staff, programs=programs)
    collectstatic()
    from django.db import connections

    connections.close_all()
    return url, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--staff", type=int, default=2, choices=(1, 2))
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    args = parser.parse_args()
    seconds = max(5, min(args.seconds, 3600))

    _, token = prepare(staff=args.staff)
    with servers(workers=args.workers) as (running, _):
        found = soak_round(
            [s.base for s in running], token, seconds=seconds, staff_count=args.staff
        )
        found.failures += log_failures([s.log for s in running])
    load = os.getloadavg()
    print(
        f"soak: {PROCESSES - args.staff} traders + {args.staff} staff processes, gunicorn "
        f"{args.workers} sync workers, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print_round(found)
    failures = found.failures + invariant_failures()
    print_failures(failures)
    # The share of requests answered without a server error, invariants holding.
    report_ratio("soak_answered_without_5xx", answered_share([found], failures), 1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
