"""Scaling curve of the order-book poll: 10,000, 100,000 and 500,000 resting orders.

Seeds the database as `poll.py` does (real trades through the services, then 10,000
resting orders in bulk over both markets, 300 price levels a side), serves it with
gunicorn (2 sync workers, port 8630 unless `--port`), then at each size:

- grows the book to the size (set-based INSERT of random resting orders over the same
  owners and price levels, so each level holds more orders; then `VACUUM ANALYZE`, as
  autovacuum would after a bulk load, and a `CHECKPOINT`, so the load's writes are done
  before the timing starts);
- **cold render**: bumps the CEA book version (what every book change does), waits for
  the live feed to tell the workers, and times one poll (200) right after: the render a
  change costs, nothing cached; median of COLD_SAMPLES;
- **steady state**: req/s of the 200 path (HTMX partial, no ETag) and of the 304 path
  (If-None-Match), and of the bare view for the machine's own pace, wrk (or the Python
  client), `--rounds` × `--seconds` each, medians.

The last line is `RATIO poll_flat_500k_vs_10k <value> target 0.9`: the lowest of
(200 req/s ÷ bare req/s at the largest size) ÷ (the same at the smallest), the same for
the 304 path, and (cold render ms at the smallest size ÷ at the largest): 1.0 when
nothing the poll does grows with the resting book. The steady paths are taken relative
to the bare view measured at the same size because the sizes run minutes apart on a
shared machine whose pace moves by more than that (the raw ratios are printed too).

    .venv/bin/python bench/poll_scaling.py [--sizes 10000,100000,500000] [--seconds 5]
        [--rounds 2] [--connections 4] [--port 8630]
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import poll
from _http import gunicorn, request
from _setup import fresh_database, report_ratio

COLD_SAMPLES = 9


def grow(to: int) -> float:
    """Add random resting orders (both markets, both sides alike) up to `to` resting."""
    from django.db import connection

    from market.models import Holder, Order

    start = time.perf_counter()
    resting = Order.objects.filter(status__in=Order.RESTING).count()
    owners = list(
        Holder.objects.filter(user__username__startswith="book_owner_").values_list(
            "pk", flat=True
        )
    )
    per_part = (to - resting) // 4  # two markets × two sides
    gtc = Order._meta.get_field("time_in_force").default
    if per_part > 0:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO market_order (owner_id, market_id, side, order_type, price, "
                "quantity, filled_quantity, filled_value, fee_rate, fee_paid, reserved, status, "
                "status_reason, time_in_force, post_only, created_at, updated_at) "
                "SELECT (%s::bigint[])[1 + floor(random() * %s)::int], m.id, s.side, 'LIMIT', "
                f"m.default_reference_price + s.sign * m.tick_size * "
                f"(1 + floor(random() * {poll.LEVELS_PER_SIDE})), 1 + floor(random() * 500), "
                "0, 0, 0, 0, 0, 'OPEN', '', %s, false, now(), now() "
                "FROM market_market m "
                "CROSS JOIN (VALUES ('BUY', -1), ('SELL', 1)) AS s(side, sign) "
                "CROSS JOIN generate_series(1, %s)",
                [owners, len(owners), gtc, per_part],
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE market_order")
        cursor.execute("ANALYZE market_booklevel")
        # The load's dirty pages written now, not by the checkpointer while the poll is
        # timed: on two cores that write took CPU from the largest size's rounds.
        cursor.execute("CHECKPOINT")
    return time.perf_counter() - start


def bump_book(code: str = "CEA") -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE market_market SET book_version = book_version + 1 WHERE code = %s", [code]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,500000")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--port", type=int, default=8630)
    parser.add_argument("--python-client", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    fresh_database()
    from django.db import connection, connections

    from market.models import Order

    poll.ORDERS = sizes[0]
    trader = poll.seed(random.Random(6))
    cookie = poll.session_cookie(trader)
    connection.set_autocommit(True)
    use_wrk = shutil.which("wrk") and not args.python_client
    load = poll.run_wrk if use_wrk else poll.run_python
    htmx = {"Cookie": cookie, "HX-Request": "true"}
    results, failures = [], []
    with gunicorn(workers=2, port=args.port) as (base, log):
        for size in sizes:
            grown = grow(size)
            resting = Order.objects.filter(status__in=Order.RESTING).count()
            connections.close_all()
            cold = []
            for _ in range(COLD_SAMPLES):
                bump_book()
                time.sleep(0.3)  # the NOTIFY reaches both workers' live feeds
                start = time.perf_counter()
                status, _, body = request("GET", base + poll.BOOK, headers=htmx)
                cold.append(time.perf_counter() - start)
                if status != 200:
                    failures.append(f"cold poll at {size:,}: {status}")
            status, headers, body = request("GET", base + poll.BOOK, headers=htmx)
            etag = headers.get("etag")
            assert status == 200 and etag, (status, headers)
            assert body.count(b'data-testid="bid-level"') == 50
            cases = {
                "bare": (poll.BARE, {"Cookie": cookie}),
                "200": (poll.BOOK, htmx),
                "304": (poll.BOOK, {**htmx, "If-None-Match": etag}),
            }
            rates = {name: [] for name in cases}
            for _ in range(args.rounds):
                for name, (path, headers) in cases.items():
                    rate, bad, errors = load(base + path, headers, args.seconds, args.connections)
                    rates[name].append(rate)
                    if bad:
                        failures.append(f"{name} at {size:,}: {bad} responses >= 400 {errors}")
            row = {
                "size": resting,
                "cold_ms": statistics.median(cold) * 1000,
                **{name: statistics.median(values) for name, values in rates.items()},
            }
            results.append(row)
            print(
                f"{resting:>8,} resting (grown in {grown:.1f} s): cold 200 "
                f"{row['cold_ms']:6.1f} ms; 200 {row['200']:7,.0f} req/s; "
                f"304 {row['304']:7,.0f} req/s; bare {row['bare']:7,.0f} req/s",
                flush=True,
            )
        log_text = Path(log).read_text()
    if "Traceback" in log_text or "WORKER TIMEOUT" in log_text:
        failures.append("gunicorn logged errors:\n" + log_text[-3000:])

    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\nload generator: {'wrk' if use_wrk else 'python threads'}, {args.connections} "
        f"connections; gunicorn 2 sync workers; {args.rounds} rounds of {args.seconds} s per "
        f"URL and size; cold render: median of {COLD_SAMPLES}; load average: {load_avg}"
    )
    print(f"{'resting':>9} {'cold ms':>8} {'200 req/s':>10} {'304 req/s':>10} {'bare req/s':>11}")
    for row in results:
        print(
            f"{row['size']:>9,} {row['cold_ms']:>8.1f} {row['200']:>10,.0f} "
            f"{row['304']:>10,.0f} {row['bare']:>11,.0f}"
        )
    first, last = results[0], results[-1]
    print(
        f"raw, largest ÷ smallest book: 200 {last['200'] / first['200']:.2f}, "
        f"304 {last['304'] / first['304']:.2f}, bare {last['bare'] / first['bare']:.2f} "
        "(the bare view shows how the machine's pace moved between the sizes)"
    )
    # Each size's req/s as a share of the bare view's at that size: the sizes run minutes
    # apart on a shared machine, whose pace moves more than the poll does.
    flat = {
        "200 ÷ bare": (last["200"] / last["bare"]) / (first["200"] / first["bare"]),
        "304 ÷ bare": (last["304"] / last["bare"]) / (first["304"] / first["bare"]),
        "cold render": first["cold_ms"] / last["cold_ms"],
    }
    for name, value in flat.items():
        print(f"{name}: largest ÷ smallest book = {value:.2f} (1.0 = flat)")
    if failures:
        print("FAILED:\n" + "\n".join(failures))
    report_ratio("poll_flat_500k_vs_10k", min(flat.values()), 0.9)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
