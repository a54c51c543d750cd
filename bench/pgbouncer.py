"""Behind PgBouncer: the soak with every app connection through PgBouncer in transaction mode.

Starts Debian's `/usr/sbin/pgbouncer` (as the `postgres` user when run as root) from an ini
and user list it writes into a temporary directory: `pool_mode = transaction`, 127.0.0.1:
`--port`, no Unix socket, `auth_type = trust`, 3 server connections per pool (fewer than
its clients, so transactions of different clients really share server sessions). The app
(`--workers` gunicorn workers) and the liquidity worker (an active program per market)
connect through it with `DB_TRANSACTION_POOLER=True` (`DB_PREPARE_THRESHOLD` 0: no
prepared statement, statements bound server-side, placements pipelined; no server-side
cursor), and two soak rounds run on the same database:

1. **direct feed**: `MARKET_LIVE_FEED_DATABASE_URL` points at PostgreSQL itself, so each
   web process keeps one LISTEN connection past the pooler (counted in pg_stat_activity by
   its application name: one per worker that served a poll);
2. **no direct feed**: unset, the feed stays off (no LISTEN connection at all) and every
   poll reads the database.

After each round a trader downloads the My trades CSV (`.iterator()`, no server-side
cursor behind the pooler). PgBouncer's own counters (`SHOW STATS`) show the transactions it
carried. Fails (exit 1) on any 5xx, traceback, broken invariant, a wrong number of
listeners or a failed export. The last line is `RATIO pgbouncer_ok_share <share of the two
rounds' requests answered without a 5xx; 0 if any check failed> target 1`.

    .venv/bin/python bench/pgbouncer.py [--seconds 30] [--workers 4] [--port 6440]
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak
from _http import Browser
from _setup import report_ratio

PGBOUNCER = "/usr/sbin/pgbouncer"
FEED_APP = "carbon-live-feed"


@contextlib.contextmanager
def pgbouncer(server_url: str, port: int):
    """PgBouncer in transaction mode in front of `server_url`'s server; yields the URL of
    the same database through it. Stopped (SIGTERM, then SIGKILL) on the way out."""
    rest = server_url.split("://", 1)[1]
    user = rest.split("@", 1)[0].split(":", 1)[0]
    host, _, port_and_name = rest.split("@", 1)[1].partition(":")
    server_port, _, name = port_and_name.partition("/")
    directory = tempfile.mkdtemp(prefix="bench-pgbouncer-")
    Path(directory, "userlist.txt").write_text(f'"{user}" ""\n')
    Path(directory, "pgbouncer.ini").write_text(
        f"""[databases]
{name} = host={host} port={server_port} dbname={name}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
admin_users = {user}
pool_mode = transaction
default_pool_size = 3
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""
    )
    command = [PGBOUNCER, f"{directory}/pgbouncer.ini"]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(directory, "postgres")
        for child in Path(directory).iterdir():
            shutil.chown(child, "postgres")
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"postgres://{user}@127.0.0.1:{port}/{name}"
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(
            ["psql", url, "-tAc", "SELECT 1"], capture_output=True, timeout=10
        ).returncode:
            if process.poll() is not None or time.monotonic() > deadline:
                log = Path(directory, "pgbouncer.log")
                raise RuntimeError(f"pgbouncer did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def pooler_transactions(url: str, name: str) -> int:
    """Transactions PgBouncer has carried for the database (its admin console)."""
    admin = url.rsplit("/", 1)[0] + "/pgbouncer"
    out = subprocess.run(
        ["psql", admin, "-tAF,", "-c", "SHOW STATS"], capture_output=True, text=True, timeout=10
    ).stdout
    for line in out.splitlines():
        fields = line.split(",")
        if fields[0] == name:
            return int(fields[1])  # total_xact_count
    return 0


def listeners(direct_url: str) -> int:
    import psycopg

    with psycopg.connect(direct_url.replace("postgres://", "postgresql://")) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [FEED_APP]
        ).fetchone()
    return count


def export_ok(base: str) -> tuple[bool, int]:
    """A trader's My trades CSV, through the pooled app: (200 and CSV?, its lines)."""
    tally = soak.Tally()
    browser = Browser(base)
    if not soak._login(tally, browser, "soak_trader0"):
        return False, 0
    status, headers, body = browser.get("/market/my-trades/export.csv")
    return status == 200 and "csv" in headers.get("content-type", ""), body.count(b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="per round")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=6440, help="PgBouncer's port")
    args = parser.parse_args()
    seconds = max(10, min(args.seconds, 1800))

    direct, token = soak.prepare(programs=True)
    name = direct.rsplit("/", 1)[1]
    failures, rounds = [], []
    with pgbouncer(direct, args.port) as pooled:
        pooled_env = {
            "DATABASE_URL": pooled,
            "DB_TRANSACTION_POOLER": "True",
            "DB_PREPARE_THRESHOLD": "0",
            "MARKET_LIVE_FEED_DATABASE_URL": "",
        }
        feeds = {
            "direct feed": f"{direct}?application_name={FEED_APP}",
            "no direct feed": "",
        }
        for label, feed_url in feeds.items():
            env = {**pooled_env, "MARKET_LIVE_FEED_DATABASE_URL": feed_url}
            before = pooler_transactions(pooled, name)
            with soak.servers(workers=args.workers, env=env, worker=True) as (running, wlog):
                (server,) = running
                found = soak.soak_round([server.base], token, seconds=seconds)
                listening = listeners(direct)
                exported, lines = export_ok(server.base)
                found.failures += soak.log_failures([server.log, wlog])
            carried = pooler_transactions(pooled, name) - before
            print(f"--- round {len(rounds) + 1}: {label} ---")
            soak.print_round(found, label)
            print(
                f"through PgBouncer: {carried:,} transactions; LISTEN connections past it: "
                f"{listening}; My trades CSV: {'200' if exported else 'FAILED'}, {lines} lines"
            )
            if feed_url and not 1 <= listening <= args.workers:
                found.failures.append(f"{listening} feed listeners for {args.workers} workers")
            if not feed_url and listening:
                found.failures.append(f"{listening} feed listeners with no direct URL")
            if not exported:
                found.failures.append("the My trades CSV failed behind the pooler")
            if carried <= 0:
                found.failures.append("PgBouncer carried no transaction")
            rounds.append(found)
            failures += found.failures
    load = os.getloadavg()
    from liquidity.models import ProgramRefresh

    refreshes = ProgramRefresh.objects.filter(worker="soak").count()
    print(
        f"pgbouncer: {args.workers} gunicorn sync workers and the liquidity worker "
        f"({refreshes} program refreshes) through PgBouncer (transaction mode, 3 server "
        f"connections); {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    failures += soak.invariant_failures()
    if not refreshes:
        failures.append("the liquidity worker refreshed no program")
    soak.print_failures(failures)
    share = soak.answered_share(rounds, failures)
    report_ratio("pgbouncer_ok_share", 0.0 if failures else share, 1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
