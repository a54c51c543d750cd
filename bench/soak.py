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
from decimal import Decimal
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import Browser, collectstatic, gunicorn
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


# --- set-up and report ------------------------------------------------------------------------


def seed(traders: int) -> str:
    """Market makers and funded traders through the services; the staff API token."""
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
    for index in range(traders):
        user = users.create_user(f"soak_trader{index}", password=PASSWORD)
        holder = trader_holder_for(user)
        deposit(holder=holder, asset="EUR", amount="500000")
        deposit(holder=holder, asset="CEA", amount="20000")
        deposit(holder=holder, asset="EUA", amount="5000")
    out = StringIO()
    call_command("create_api_token", username="soak_staff", name="soak", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--staff", type=int, default=2, choices=(1, 2))
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    args = parser.parse_args()
    seconds = max(5, min(args.seconds, 3600))

    fresh_database()
    traders = PROCESSES - args.staff
    token = seed(traders)
    collectstatic()
    from django.db import connections

    connections.close_all()

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    started = time.monotonic()
    with gunicorn(workers=args.workers) as (base, log):
        processes = [
            context.Process(target=trader, args=(i, base, seconds, queue)) for i in range(traders)
        ] + [
            context.Process(target=staff, args=(i, base, token, seconds, queue))
            for i in range(args.staff)
        ]
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
        elapsed = time.monotonic() - started
        server_log = Path(log).read_text()
    load = os.getloadavg()

    counts, rejections, failures = Counter(), Counter(), []
    for process_counts, process_rejections, process_failures in results:
        counts.update(process_counts)
        rejections.update(process_rejections)
        failures += process_failures
    if len(results) != len(processes):
        failures.append(f"only {len(results)} of {len(processes)} clients reported back")
    if "Traceback" in server_log or "WORKER TIMEOUT" in server_log:
        failures.append("gunicorn logged errors:\n" + server_log[-4000:])

    from liquidity.models import LiquidityOperation
    from market.models import Order, Trade
    from market.tests import helpers

    print(
        f"soak: {traders} traders + {args.staff} staff processes for {seconds} s "
        f"({elapsed:.0f} s with start-up), gunicorn {args.workers} sync workers, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"requests: {counts['requests']:,} ({counts['requests'] / seconds:,.0f}/s); "
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
    print(
        f"database: {Order.objects.count():,} orders "
        f"({Order.objects.filter(status__in=Order.RESTING).count():,} resting), "
        f"{Trade.objects.count():,} trades, "
        f"{LiquidityOperation.objects.count():,} liquidity operations"
    )
    print("4xx by kind:" if rejections else "4xx: none")
    for kind, number in rejections.most_common():
        print(f"  {number:6,}  {kind}")

    try:
        helpers.assert_all_invariants()
        if hasattr(helpers, "assert_matching_invariants"):
            helpers.assert_matching_invariants()
        print(
            "invariants: all hold (ledger = balances, locked = reservations, book not "
            "crossed, orders consistent, totals conserved, fills = trades, FIFO, fees)"
        )
    except AssertionError as error:
        failures.append(f"invariant broken: {error!r}\n{traceback.format_exc()}")
    if counts["5xx"]:
        failures.append(f"{counts['5xx']} responses were 5xx")
    if counts["requests"] == 0:
        failures.append("no request was made")
    answered = counts["requests"] - counts["5xx"]
    if failures:
        print("FAILED:")
        for failure in failures[:30]:
            print("  " + failure)
    else:
        print("OK: zero 5xx, every invariant holds")
    # The share of requests answered without a server error, invariants holding.
    holds = not any(failure.startswith("invariant broken") for failure in failures)
    report_ratio(
        "soak_answered_without_5xx",
        answered / counts["requests"] if holds and counts["requests"] else 0,
        1,
    )
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
