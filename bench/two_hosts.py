"""Two hosts: the soak through two app servers and the liquidity worker on one PostgreSQL.

Two gunicorn servers on their own ports (each with `--workers` sync workers, standing for
two hosts: nothing is shared between them but the database) and `manage.py
liquidity_worker` with an active liquidity program per market (refreshing every 5 s, re-
centring on a 0.1 % move), against one fresh database. The soak's 6 traders and 2 staff
(bench/soak.py) are split over the two hosts, and a probe trader alternates: a market order
through one host, then the other host's order-book poll (HTMX, as the page polls it) until
its ETag names a book version at least the database's after that trade: the time from one
host's answer to the other host showing the trade, against the page's poll interval.

Fails (exit 1) on any 5xx, failed connection, traceback, broken invariant, a refresh pass
the worker could not make, no refresh at all, or a visibility latency over the interval.
Prints two ratios: `two_hosts_visibility` (poll interval ÷ the worst latency, target 1),
then `two_hosts_ok_share` (the share of requests answered without a 5xx; 0 if an invariant
broke, a latency exceeded the interval or the worker failed; target 1).

    .venv/bin/python bench/two_hosts.py [--seconds 60] [--workers 2]
"""

import argparse
import os
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak
from _setup import report_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per host")
    args = parser.parse_args()
    seconds = max(10, min(args.seconds, 3600))
    interval = soak.poll_interval()

    url, token = soak.prepare(programs=True)
    with soak.servers(hosts=2, workers=args.workers, worker=True) as (running, worker_log):
        bases = [server.base for server in running]
        found = soak.soak_round(bases, token, seconds=seconds, probe_url=url)
        found.failures += soak.log_failures([s.log for s in running] + [worker_log])
    load = os.getloadavg()

    from liquidity.models import ProgramRefresh

    print(
        f"two hosts: {', '.join(bases)}, {args.workers} gunicorn sync workers each, the "
        f"liquidity worker; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        "clients: traders 0, 2, 4 and staff 0 on host A; traders 1, 3, 5 and staff 1 on "
        "host B; the probe alternates"
    )
    soak.print_round(found, "soak")
    failures = found.failures + soak.invariant_failures()
    refreshes = Counter(
        ProgramRefresh.objects.filter(worker="soak").values_list("outcome", flat=True)
    )
    print(
        f"liquidity worker: {sum(refreshes.values())} program refreshes "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(refreshes.items())) or 'none'})"
    )
    if not refreshes:
        failures.append("the liquidity worker refreshed no program during the soak")
    latencies = sorted(found.latencies)
    worst = latencies[-1] if latencies else float("inf")
    if latencies:
        print(
            f"cross-host visibility: {len(latencies)} trades through one host "
            f"({found.counts['probe orders refused']} probe orders refused), seen in the "
            f"other host's poll after median {statistics.median(latencies) * 1000:.0f} ms, "
            f"max {worst * 1000:.0f} ms (poll interval {interval:g} s)"
        )
    else:
        failures.append("the probe measured no cross-host visibility")
    if worst > interval:
        failures.append(f"a trade took {worst:.2f} s to show on the other host (> {interval} s)")
    soak.print_failures(failures)
    share = soak.answered_share([found], failures)
    if worst > interval or not refreshes:
        share = 0.0
    report_ratio("two_hosts_visibility", interval / worst if latencies else 0.0, 1)
    report_ratio("two_hosts_ok_share", share, 1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
