"""Liquidity program workers racing each other, dying mid-refresh, and racing the kill
switch, on PostgreSQL (`liquidity/programs.py`: SKIP LOCKED claims, one transaction per
refresh).

Two kinds of worker: `programs_refresh_due` in threads (each thread its own database
connection, released at once by a barrier: `market.tests.helpers.run_together`), and real
`manage.py liquidity_worker` processes against the test database, which they can see
because these tests commit (`transaction=True`). A worker is stopped in the middle of a
refresh by a lock the test holds on its own connection: `LOCK TABLE
liquidity_liquidityoperation IN SHARE MODE` lets the worker claim the program and cancel
the old ladder's orders, then blocks its UPDATE marking the old operation withdrawn, the
first write to that table, inside the refresh's transaction.

Skipped on other databases outside CI; under CI (`CI=true`) these tests always run and
fail when the database is not PostgreSQL.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from liquidity import programs
from liquidity.models import LiquidityOperation, LiquidityProgram, ProgramRefresh
from market.models import MarketMakerClient, Order
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants, race_behind_a_lock, run_together

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
Outcome = ProgramRefresh.Outcome
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30  # seconds any condition below may take to come true

pytestmark = [
    pytest.mark.postgres,  # row locks, SKIP LOCKED, killed sessions
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("migrated_rows"),
]


# --- Set-up ------------------------------------------------------------------------------


@pytest.fixture
def staff():
    return factories.StaffFactory()


@pytest.fixture
def makers():
    return [
        factories.market_maker(LP, EUR="200000"),
        factories.market_maker(LP, EUR="200000"),
        factories.market_maker(AH, CEA=20000, EUA=20000),
    ]


def started(staff, market="CEA", **settings):
    data = {
        "name": f"{market} standing",
        "certificate_type": market,
        "bid_target_eur": "10000",
        "ask_target_eur": "10000",
        "refresh_interval_seconds": 60,
        "refresh_tolerance_pct": "0.3",
        "replenish_threshold_pct": "100",
        **settings,
    }
    program = programs.program_create(user=staff, data=data)
    programs.program_activate(program_id=program.pk, user=staff)
    return program


def retarget(program, staff, bid: str):
    """A settings change: the program is due at once and its next tick re-centres."""
    programs.program_update(program_id=program.pk, user=staff, data={"bid_target_eur": bid})


def resting(program=None):
    orders = Order.objects.filter(status__in=Order.RESTING)
    if program is None:
        return orders.filter(ticket__liquidity_operation__program__isnull=False)
    return orders.filter(ticket__liquidity_operation__program=program)


def resting_ids(program) -> set[int]:
    return set(resting(program).values_list("pk", flat=True))


def ladders_resting() -> dict[int, int]:
    """Per program, how many of its operations have orders resting: one statement, so one
    snapshot even while workers commit."""
    rows = (
        resting()
        .values("ticket__liquidity_operation__program")
        .annotate(operations=Count("ticket", distinct=True))
    )
    return {row["ticket__liquidity_operation__program"]: row["operations"] for row in rows}


def assert_one_ladder(program):
    """Exactly the program's current operation rests, whole (nothing filled here)."""
    program.refresh_from_db()
    operation = program.operation
    assert operation is not None and operation.withdrawn_at is None
    assert set(resting(program).values_list("ticket_id", flat=True)) == {operation.ticket_id}
    assert resting(program).count() == operation.orders_created > 0
    older = LiquidityOperation.objects.filter(program=program).exclude(pk=operation.pk)
    assert not older.filter(withdrawn_at__isnull=True).exists()


def refreshes_by_program() -> Counter:
    return Counter(ProgramRefresh.objects.values_list("program_id", flat=True))


def operations_by_program() -> Counter:
    return Counter(LiquidityOperation.objects.values_list("program_id", flat=True))


def move_reference(market: str):
    """A buyer takes the first ask level and one certificate of the second: the last trade,
    the program's reference (its own orders left out), moves 0.4 %, past the 0.3 %
    tolerance."""
    asks = resting().filter(market__code=market, side="SELL").order_by("price")
    first = asks.first().price
    quantity = sum(asks.filter(price=first).values_list("quantity", flat=True)) + 1
    buyer = factories.trader(EUR="100000")
    request = order_request_parse(
        market_code=market, side="BUY", order_type="MARKET", quantity=str(quantity)
    )
    order_place(owner=buyer, request=request)


class Watcher:
    """Samples, on its own connection, how many ladders each program has resting while
    the workers run; `most` is the largest number seen."""

    def __init__(self):
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self._stop.is_set():
                self.most = max([self.most, *ladders_resting().values()])
                self.samples += 1
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(TIMEOUT)


def wait_for(condition, *, timeout=TIMEOUT, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- Worker processes --------------------------------------------------------------------


def conninfo() -> dict:
    """The test database's connection settings, for a process or a raw connection."""
    settings = connection.settings_dict
    return {
        "dbname": settings["NAME"],
        "user": settings["USER"] or "",
        "password": settings["PASSWORD"] or "",
        "host": settings["HOST"] or "",
        "port": str(settings["PORT"] or ""),
    }


def database_url() -> str:
    from urllib.parse import quote

    info = conninfo()
    credentials = quote(info["user"])
    if info["password"]:
        credentials += ":" + quote(info["password"])
    host = info["host"] or "127.0.0.1"
    port = f":{info['port']}" if info["port"] else ""
    return f"postgres://{credentials}@{host}{port}/{info['dbname']}"


class WorkerProcess:
    """`manage.py liquidity_worker --poll 0.2` on the test database; its database session
    is named `cm-worker-<name>` (libpq's PGAPPNAME) so the tests can find it."""

    def __init__(self, name: str, directory: Path):
        self.name = name
        self.application = f"cm-worker-{name}"
        self.log = directory / f"worker-{name}.log"
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "PGAPPNAME": self.application,
            "PYTHONUNBUFFERED": "1",
            "CONN_MAX_AGE": "0",
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "liquidity_worker", "--poll", "0.2", "--name", name],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self):
        wait_for(
            lambda: "started" in self.output() or self.process.poll() is not None,
            what=f"worker {self.name} to start",
        )
        assert self.process.poll() is None, self.output()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(TIMEOUT)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(TIMEOUT)


@pytest.fixture
def workers(migrated_rows):
    """`workers("a")` starts a worker process; all are stopped (and their sessions gone)
    before the test database is flushed."""
    started_here: list[WorkerProcess] = []
    with tempfile.TemporaryDirectory(prefix="cm-workers-") as directory:

        def start(name: str) -> WorkerProcess:
            worker = WorkerProcess(name, Path(directory))
            started_here.append(worker)
            return worker

        try:
            yield start
        finally:
            for worker in started_here:
                worker.stop()
            wait_for(
                lambda: not sessions_of([w.application for w in started_here]),
                what="the workers' database sessions to end",
            )


def sessions_of(applications: list[str]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            # This test database's only: pytest-xdist runs other tests' workers beside.
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = ANY(%s) AND datname = current_database()",
            [applications],
        )
        return [row[0] for row in cursor.fetchall()]


class TableLock:
    """`LOCK TABLE … IN SHARE MODE` held on a connection of its own until `release()`."""

    def __init__(self, table: str):
        import psycopg

        self.db = psycopg.connect(**conninfo(), application_name="cm-test-lock")
        self.db.execute(f"LOCK TABLE {table} IN SHARE MODE")

    def release(self):
        self.db.rollback()
        self.db.close()


def blocked_in_refresh(application: str):
    """The worker's session if it waits on the operations table lock inside a refresh
    that has already written (a transaction id; the orders table locked for writing)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.pid, a.state, a.backend_xid IS NOT NULL, a.query FROM pg_stat_activity a "
            "JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted "
            "WHERE a.application_name = %s AND a.wait_event_type = 'Lock' "
            "AND a.datname = current_database() "
            "AND l.relation = 'liquidity_liquidityoperation'::regclass",
            [application],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        pid, state, has_written, query = row
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND granted "
            "AND relation = 'market_order'::regclass AND mode = 'RowExclusiveLock'",
            [pid],
        )
        orders_written = cursor.fetchone()[0] == 1
    assert state == "active" and has_written and orders_written, (state, has_written)
    assert query.startswith('UPDATE "liquidity_liquidityoperation"'), query
    return pid


# --- 1. Two workers never refresh one program at once ------------------------------------


def test_workers_in_threads_refresh_each_due_program_once_per_tick(staff, makers):
    cea, eua = started(staff, "CEA"), started(staff, "EUA")
    both = [cea, eua]
    now = timezone.now()
    ticks = [
        ("first placement", lambda: None, Outcome.PLACED),
        (
            "settings changed",
            lambda: [retarget(p, staff, "12000") for p in both],
            Outcome.RECENTRED,
        ),
        (
            "reference moved",
            lambda: [move_reference(m) for m in ("CEA", "EUA")],
            Outcome.RECENTRED,
        ),
        ("nothing changed", lambda: None, None),
        (
            "settings changed again",
            lambda: [retarget(p, staff, "9000") for p in both],
            Outcome.RECENTRED,
        ),
    ]
    with Watcher() as watcher:
        for number, (what, change, outcome) in enumerate(ticks):
            change()
            at = now + timedelta(seconds=61 * number)  # every program is due
            refreshes, operations = refreshes_by_program(), operations_by_program()

            def worker(index, at=at):
                return programs.programs_refresh_due(worker=f"thread-{index}", now=at)

            results = run_together(*(lambda i=i: worker(i) for i in range(4)))
            assert not [r for r in results if isinstance(r, BaseException)], (what, results)
            done = [refresh for result in results for refresh in result]
            expected = [] if outcome is None else sorted(p.pk for p in both)
            assert sorted(r.program_id for r in done) == expected, what
            assert {r.outcome for r in done} <= {outcome}, what
            # In the database too: one refresh and one operation per program and tick.
            assert refreshes_by_program() - refreshes == Counter(expected), what
            assert operations_by_program() - operations == Counter(expected), what
            for program in both:
                assert_one_ladder(program)
            assert_all_invariants()
    assert watcher.samples > 0 and watcher.most == 1


def test_two_worker_processes_refresh_each_forced_tick_exactly_once(staff, makers, workers):
    cea = started(staff, "CEA", refresh_interval_seconds=5)
    eua = started(staff, "EUA", refresh_interval_seconds=5)
    both = [cea, eua]
    a, b = workers("a"), workers("b")
    a.wait_started()
    b.wait_started()
    with Watcher() as watcher:
        wait_for(lambda: len(refreshes_by_program()) == 2, what="both ladders placed")
        for ticks, bid in enumerate(("12000", "11000", "9000", "10500"), start=2):
            if ticks == 3:
                move_reference("CEA")
                move_reference("EUA")
            else:
                for program in both:
                    retarget(program, staff, bid)
            wait_for(
                lambda ticks=ticks: set(refreshes_by_program().values()) == {ticks},
                what=f"refresh {ticks} of each program",
            )
            time.sleep(0.5)  # room for a duplicate refresh of this tick to show up
            assert refreshes_by_program() == Counter({cea.pk: ticks, eua.pk: ticks})
    assert a.process.poll() is None and b.process.poll() is None, a.output() + b.output()
    a.stop()
    b.stop()
    assert watcher.samples > 0 and watcher.most == 1
    # One refresh and one operation per tick, whichever worker ran it.
    assert refreshes_by_program() == operations_by_program() == Counter({cea.pk: 5, eua.pk: 5})
    assert set(ProgramRefresh.objects.values_list("outcome", flat=True)) == {
        Outcome.PLACED,
        Outcome.RECENTRED,
    }
    assert set(ProgramRefresh.objects.values_list("worker", flat=True)) <= {"a", "b"}
    for program in both:
        assert_one_ladder(program)
    assert_all_invariants()


# --- 2. A worker killed mid-refresh ------------------------------------------------------


def test_a_worker_killed_mid_refresh_leaves_the_old_ladder_and_another_takes_over(
    staff, makers, workers
):
    program = started(staff, "CEA", refresh_interval_seconds=10)
    first = programs.program_refresh(program_id=program.pk, worker="test")
    assert first.outcome == Outcome.PLACED
    old_ladder = resting_ids(program)
    assert_all_invariants()

    a = workers("a")
    a.wait_started()
    lock = TableLock("liquidity_liquidityoperation")
    try:
        retarget(program, staff, "12000")  # due now: A claims it, withdraws, and blocks
        pid = wait_for(lambda: blocked_in_refresh(a.application), what="A to block mid-refresh")
        # B starts while A holds the program: it skips it (SKIP LOCKED), not waits.
        b = workers("b")
        b.wait_started()
        a.kill()
        # A's session still waits on the lock (PostgreSQL sees the dead client when it next
        # talks to it), with its withdrawal uncommitted: the old ladder rests, whole.
        assert sessions_of([a.application]) == [pid]
        assert resting_ids(program) == old_ladder
        assert_all_invariants()
    finally:
        lock.release()
    released = time.monotonic()
    wait_for(lambda: not sessions_of([a.application]), what="A's session to end")
    assert resting_ids(program) == old_ladder  # rolled back, not committed
    refresh = wait_for(
        lambda: ProgramRefresh.objects.filter(program=program, worker="b").first(),
        timeout=program.refresh_interval_seconds,
        what="B to refresh the program",
    )
    assert time.monotonic() - released < program.refresh_interval_seconds
    assert refresh.outcome == Outcome.RECENTRED
    assert refresh.orders_withdrawn == len(old_ladder)
    # A left nothing: no refresh, operation or ticket of its own; one ladder rests, B's.
    assert ProgramRefresh.objects.filter(program=program).count() == 2
    assert not ProgramRefresh.objects.filter(worker="a").exists()
    assert LiquidityOperation.objects.filter(program=program).count() == 2
    assert_one_ladder(program)
    program.refresh_from_db()
    assert program.operation_id == refresh.operation_id
    assert not resting_ids(program) & old_ladder
    assert b.process.poll() is None, b.output()
    assert_all_invariants()


# --- 3. The kill switch racing a worker --------------------------------------------------


def assert_nothing_of_programs_rests():
    assert not resting().exists()
    assert set(LiquidityProgram.objects.values_list("state", flat=True)) == {"stopped"}
    assert not LiquidityOperation.objects.filter(withdrawn_at__isnull=True).exists()
    assert_all_invariants()


def refresh_and_kill_switch(staff):
    """A CEA program whose next refresh re-centres, and the two calls to race: its
    refresh and the kill switch."""
    program = started(staff, "CEA")
    programs.program_refresh(program_id=program.pk, worker="test")
    retarget(program, staff, "12000")

    def refresh():
        return programs.program_refresh(program_id=program.pk, worker="racing")

    def kill():
        return programs.programs_kill(user=staff)

    return refresh, kill


def test_the_kill_switch_waits_for_a_refresh_in_progress_then_withdraws_its_ladder(staff, makers):
    refresh, kill = refresh_and_kill_switch(staff)
    refreshed, killed, waited = race_behind_a_lock(refresh, kill)
    assert waited is True
    assert not isinstance(refreshed, BaseException), refreshed
    assert not isinstance(killed, BaseException), killed
    assert refreshed.outcome == Outcome.RECENTRED
    assert killed.orders_withdrawn == refreshed.orders_placed > 0
    assert_nothing_of_programs_rests()


def test_a_refresh_waiting_for_the_kill_switch_places_nothing(staff, makers):
    refresh, kill = refresh_and_kill_switch(staff)
    killed, refreshed, waited = race_behind_a_lock(kill, refresh)
    assert waited is True
    assert not isinstance(killed, BaseException), killed
    assert refreshed is None  # the program it waited for was stopped meanwhile
    assert not ProgramRefresh.objects.filter(worker="racing").exists()
    assert_nothing_of_programs_rests()


def test_the_kill_switch_and_workers_at_once_leave_no_program_order(staff, makers):
    cea, eua = started(staff, "CEA"), started(staff, "EUA")
    for round_ in range(4):
        at = timezone.now()
        for program in (cea, eua):
            if round_:
                programs.program_activate(program_id=program.pk, user=staff)
            programs.program_refresh(program_id=program.pk, worker="test", now=at)
            retarget(program, staff, f"{11000 + round_}")  # due again, to re-centre

        def worker(index):
            return programs.programs_refresh_due(worker=f"thread-{index}")

        results = run_together(
            lambda: worker(1), lambda: programs.programs_kill(user=staff), lambda: worker(2)
        )
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert_nothing_of_programs_rests()


def test_the_kill_switch_pulled_while_a_worker_process_refreshes(staff, makers, workers):
    program = started(staff, "CEA")
    programs.program_refresh(program_id=program.pk, worker="test")
    a = workers("a")
    a.wait_started()
    outcome = {}

    def kill():
        try:
            outcome["stopped"] = programs.programs_kill(user=staff)
        except BaseException as error:  # reported to the test
            outcome["error"] = error
        finally:
            connection.close()

    lock = TableLock("liquidity_liquidityoperation")
    killing = threading.Thread(target=kill, daemon=True)
    try:
        retarget(program, staff, "12000")
        wait_for(lambda: blocked_in_refresh(a.application), what="A to block mid-refresh")
        killing.start()
        # The kill switch queues behind A's lock on the program row.
        wait_for(lambda: waiting_on_the_program(), what="the kill switch to wait for A")
    finally:
        lock.release()
    killing.join(TIMEOUT)
    assert not killing.is_alive() and "error" not in outcome, outcome
    refresh = ProgramRefresh.objects.get(program=program, worker="a")
    assert refresh.outcome == Outcome.RECENTRED  # A committed first …
    assert outcome["stopped"].orders_withdrawn == refresh.orders_placed  # … then was undone
    a.stop()
    assert "Traceback" not in a.output(), a.output()
    assert_nothing_of_programs_rests()


def waiting_on_the_program() -> bool:
    """A session other than the workers' waits for a lock on a program row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name, a.query FROM pg_stat_activity a "
            "JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted "
            "WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'"
        )
        rows = cursor.fetchall()
    # (The query text may be cut short: PostgreSQL keeps its first 1 kB.)
    return any(
        not name.startswith("cm-worker-")
        and query.startswith('SELECT "liquidity_liquidityprogram"."id"')
        for name, query in rows
    )
