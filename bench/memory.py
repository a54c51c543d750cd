"""Memory: the resident memory of each gunicorn worker after each of two soak rounds.

One gunicorn server (`--workers` sync workers) is kept running for `--rounds` soak rounds
of `--seconds` each (bench/soak.py's 6 traders and 2 staff, new client processes each
round, the same database). Each worker's RSS (VmRSS from /proc; the workers are the
master's children) is printed after start-up and after every round, with the growth from
one round to the next. The rounds must also pass the soak's checks (zero 5xx, every
invariant), and the workers must be the same processes throughout (none restarted).

The last line is `RATIO memory_rss_round1_over_last <total RSS of the workers after round
1 ÷ after the last round> target 0.95`: at least 0.95 means they grew by at most ~5 %
between the rounds, which we read as noise (the first round already paid for warming up:
imports, templates, the cached poll bodies); a leak per request would show as steady
growth. 0 if a check failed.

    .venv/bin/python bench/memory.py [--seconds 45] [--rounds 2] [--workers 4]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak
from _http import children, rss_kib
from _setup import report_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=45)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    args = parser.parse_args()
    seconds = max(5, min(args.seconds, 1800))
    rounds = max(2, min(args.rounds, 10))

    _, token = soak.prepare()
    found, samples = [], []
    with soak.servers(workers=args.workers) as (running, _):
        (server,) = running
        workers = children(server.pid)
        samples.append({pid: rss_kib(pid) for pid in workers})
        for _ in range(rounds):
            result = soak.soak_round([server.base], token, seconds=seconds)
            found.append(result)
            samples.append({pid: rss_kib(pid) for pid in children(server.pid)})
        log_failures = soak.log_failures([server.log])
    load = os.getloadavg()

    print(
        f"memory: one gunicorn server, {args.workers} sync workers, {rounds} soak rounds of "
        f"{seconds} s; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    failures = list(log_failures)
    for number, result in enumerate(found, 1):
        soak.print_round(result, f"round {number}")
        failures += result.failures
    failures += soak.invariant_failures()
    if any(set(sample) != set(workers) for sample in samples):
        failures.append(f"the workers changed: {[sorted(s) for s in samples]}")
    labels = ["start"] + [f"round {n}" for n in range(1, rounds + 1)]
    print("RSS per worker, MiB: " + " | ".join(f"{label:>8}" for label in labels))
    for pid in workers:
        values = [sample.get(pid, 0) / 1024 for sample in samples]
        print(f"  worker {pid:>7}:      " + " | ".join(f"{v:8.1f}" for v in values))
    totals = [sum(sample.values()) / 1024 for sample in samples]
    print("  all workers:        " + " | ".join(f"{v:8.1f}" for v in totals))
    for number in range(2, rounds + 1):
        growth = totals[number] - totals[number - 1]
        print(
            f"growth from round {number - 1} to round {number}: {growth:+.1f} MiB in all "
            f"({growth / totals[number - 1] * 100:+.1f} %), "
            f"max worker {max(samples[number].values()) / 1024:.1f} MiB"
        )
    soak.print_failures(failures)
    ratio = totals[1] / totals[-1] if totals[-1] else 0.0
    report_ratio("memory_rss_round1_over_last", 0.0 if failures else ratio, 0.95)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
