"""Keep liquidity programs placed: refresh every active program when it is due.

Run as many as you like, on as many hosts as you like, against one database: each pass
claims due programs with SKIP LOCKED (`liquidity.programs.programs_refresh_due`), so a
program is refreshed by one worker at a time, and a worker that dies mid-refresh leaves
nothing behind (its transaction is rolled back) and the program to the next worker.
SIGTERM or SIGINT stops it after the refresh in progress.
"""

import os
import signal
import socket
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connection

from liquidity.programs import programs_refresh_due


class Command(BaseCommand):
    help = (
        "Refresh active liquidity programs when they are due (re-centre, replenish, "
        "withdraw outside active hours). Runs until stopped; safe to run several at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--poll",
            type=float,
            default=1.0,
            help="Seconds to sleep when no program is due (default 1).",
        )
        parser.add_argument(
            "--once", action="store_true", help="One pass over the due programs, then exit."
        )
        parser.add_argument(
            "--name", default="", help="Worker name on refresh records (default host:pid)."
        )
        parser.add_argument(
            "--limit", type=int, default=20, help="Programs per pass (default 20)."
        )

    def handle(self, *args, poll, once, name, limit, **options):
        if not poll > 0:
            raise CommandError("--poll is the seconds to sleep between passes: more than 0.")
        if limit < 1:
            raise CommandError("--limit is the programs per pass: at least 1.")
        name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = False

        def stop(signum, frame):
            self.stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._run(name, poll=poll, once=once, limit=limit)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, name: str, *, poll: float, once: bool, limit: int) -> None:
        self.stdout.write(f"Liquidity worker {name} started (poll {poll:g} s).")
        while not self.stopping:
            if not connection.in_atomic_block:  # (never, but when a test calls it)
                close_old_connections()  # a connection the database dropped is reopened
            try:
                refreshes = programs_refresh_due(worker=name, limit=limit)
            except Exception as error:  # the database restarting: log, wait, go on
                if once:
                    raise
                self.stderr.write(f"Pass failed, retrying: {error}")
                time.sleep(poll)
                continue
            for refresh in refreshes:
                self.stdout.write(
                    f"#{refresh.program_id} {refresh.get_outcome_display()}: {refresh.reason}"
                )
            if once:
                break
            if len(refreshes) < limit:
                self._sleep(poll)
        self.stdout.write(f"Liquidity worker {name} stopped.")

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))
