"""What a web process knows about the database without asking it, for the order-book poll.

Every trader's page polls the book every 2 s, and almost every poll either finds the book
unchanged (a `304`) or asks for a book version that another poll has already rendered. The
two reads such a poll still made were the book version and the session + user behind the
cookie: both are answered here from memory, kept current by PostgreSQL itself.

`LiveFeed` holds one extra connection per process that `LISTEN`s (`market.db.notifications`).
Triggers (migration `market.0003`) `NOTIFY` it, in the writing transaction, whenever

- a market's `book_version` changes (`book:<code>:<version>`);
- a session row is updated or deleted, e.g. by a logout (`session:<md5 of its key>`);
- a user row is updated or deleted: password, `is_active`, anything (`user:<id>`);
- one of those tables is truncated (`reset`).

PostgreSQL delivers notifications only once their transaction commits, and in commit
order; since every change of `book_version` happens under the market's row lock, the
versions arrive in order and the last one is the current one. The feed drains its socket
at the start of each poll (a non-blocking `select`), and a daemon thread drains it as
notifications arrive, so that an idle process never leaves them queued in PostgreSQL.

Rules that keep this safe:

- **Fail closed.** While the listener is not connected (SQLite, a dropped connection, the
  feature switched off by `MARKET_LIVE_FEED`, a database reached through a
  transaction-mode pooler with no direct `MARKET_LIVE_FEED_DATABASE_URL`: see
  `listen_params`, a session engine whose sessions the triggers cannot see), `connected`
  is False and callers read the database as before. The system check `market.E001`
  refuses that last configuration outright. Each (re)connection
  starts a new `epoch`; sessions remembered in an earlier epoch are never trusted again,
  because notifications may have been missed.
- **Only the poll** trusts the session cache, and only for `is_authenticated`: the book
  it serves is the same for every trader. Every other view authenticates against the
  database, every time.
- **Bounded staleness.** A notification travels after the commit, so a reader can be a few
  microseconds behind the database. For versions that means at worst one `304` for a
  book that has just changed (the next poll, 2 s later, gets it). For sessions, an entry
  read from the database is only kept if no session or user notification arrived while it
  was being read, and never longer than `SESSION_TTL` nor past the session's expiry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import select
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

from market.checks import FEED_SESSION_ENGINES
from market.db import notifications

log = logging.getLogger(__name__)

RECONNECT_AFTER = 5.0  # seconds between attempts while PostgreSQL cannot be reached
SESSION_TTL = 60.0  # seconds: the longest a remembered session is trusted
MAX_SESSIONS = 10_000


def session_digest(session_key: str) -> str:
    """How notifications name a session (the md5 the trigger computes), so that the key
    itself, a bearer credential, never travels through `NOTIFY`."""
    return hashlib.md5(session_key.encode(), usedforsecurity=False).hexdigest()


@functools.cache
def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def listen_params() -> dict | None:
    """The psycopg parameters of the feed's LISTEN connection, or None: no feed.

    `MARKET_LIVE_FEED_DATABASE_URL` when set (a direct connection to the same database,
    past a connection pooler); otherwise the default database's own parameters, unless
    those go through a transaction-mode pooler (`DB_TRANSACTION_POOLER`). There a LISTEN
    would register on whichever server session ran it, and its notifications would reach
    that session's next client, not the feed: the feed would silently miss changes, so it
    stays off and polls read the database."""
    direct = getattr(settings, "MARKET_LIVE_FEED_DATABASE", None)
    if direct:
        default = connections[DEFAULT_DB_ALIAS]
        wrapper = type(default)(
            {
                **default.settings_dict,
                **{key: direct.get(key, "") for key in ("NAME", "USER", "PASSWORD", "HOST")},
                "PORT": str(direct.get("PORT") or ""),
                "OPTIONS": {
                    **default.settings_dict.get("OPTIONS", {}),
                    **direct.get("OPTIONS", {}),
                },
            }
        )
        params = wrapper.get_connection_params()
    elif getattr(settings, "DB_TRANSACTION_POOLER", False):
        return None
    else:
        params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    return params


def _may_listen() -> bool:
    """Whether `listen_params` has a connection to offer (cheap: asked on every poll)."""
    return bool(getattr(settings, "MARKET_LIVE_FEED_DATABASE", None)) or not getattr(
        settings, "DB_TRANSACTION_POOLER", False
    )


@dataclass(frozen=True, slots=True)
class _Session:
    user: object
    user_id: int
    epoch: int
    valid_until: float  # time.monotonic()


class LiveFeed:
    """One process's listener: current book versions and a session → user cache."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_state()

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._conn = None
        self._next_attempt = 0.0
        self.epoch = 0  # 0: not connected
        self.versions: dict[str, int] = {}
        self.auth_events = 0  # session/user notifications applied so far
        self._resync = False
        self._sessions: dict[str, _Session] = {}
        self._pump_thread: threading.Thread | None = None
        self._stopped = False

    # --- connection -----------------------------------------------------------------

    @staticmethod
    def enabled() -> bool:
        return (
            bool(getattr(settings, "MARKET_LIVE_FEED", False))
            and _on_postgresql()
            and settings.SESSION_ENGINE in FEED_SESSION_ENGINES
            and _may_listen()
        )

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def refresh(self) -> bool:
        """Apply every notification already received; connect first if needed (at most
        every `RECONNECT_AFTER` seconds). True when the feed is connected, i.e. when its
        versions and sessions may be trusted."""
        if not self.enabled() or self._stopped:
            return False
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's socket is not ours
                self._reset_state()
            if self._conn is None:
                self._connect()
            else:
                self._drain()
            return self._conn is not None

    def close(self) -> None:
        """Stop listening for good (tests; a process that shuts down)."""
        with self._lock:
            self._stopped = True
            self._disconnect()

    def _connect(self) -> None:
        if time.monotonic() < self._next_attempt:
            return
        import psycopg

        try:
            # Built here, inside the try: a feed URL Django cannot use (no database name,
            # say) keeps the feed off, as an unreachable server does, and polls read the
            # database instead of failing.
            params = listen_params()
            if params is None:
                return
            conn = psycopg.connect(**params, autocommit=True, connect_timeout=2)
            # Notifications that arrive while psycopg itself reads results (the SELECT
            # below) are handed to this handler; the rest are drained by `_drain`.
            self.versions = {}
            conn.add_notify_handler(lambda notify: self._apply(notify.payload))
            notifications.listen(conn)
            # Read after LISTEN: a change committed in between is both read and notified.
            rows = self._read_versions(conn).items()
        except Exception:
            log.warning("live feed: cannot listen, polls read the database", exc_info=True)
            self._next_attempt = time.monotonic() + RECONNECT_AFTER
            return
        # A change notified while the SELECT ran may be newer than what it read.
        notified, self.versions = self.versions, {}
        for code, version in rows:
            self.versions[code] = max(int(version), notified.get(code, 0))
        self._conn = conn
        self._sessions.clear()
        self.epoch += 1
        if self._pump_thread is None:
            self._pump_thread = threading.Thread(
                target=self._pump, name="market-live-feed", daemon=True
            )
            self._pump_thread.start()

    def _pump(self) -> None:
        """Drain notifications as they arrive, even while no poll comes in: a listener
        that stops reading makes PostgreSQL keep its notifications queued for everyone.
        Requests drain too (`refresh`), so they never wait for this thread."""
        while not self._stopped and self._pid == os.getpid():
            conn = self._conn
            if conn is None:
                time.sleep(1.0)
                continue
            try:
                select.select([conn.pgconn.socket], [], [], 5.0)
            except Exception:  # closed under us: the next turn sees it
                time.sleep(0.1)
                continue
            with self._lock:
                if self._conn is conn:
                    self._drain()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self.versions = {}
        self._sessions.clear()
        self._next_attempt = time.monotonic() + RECONNECT_AFTER
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                conn.close()

    def _drain(self) -> None:
        pgconn = self._conn.pgconn
        try:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
            if readable:
                pgconn.consume_input()  # raises OperationalError once the server has gone
                while (notify := pgconn.notifies()) is not None:
                    self._apply(notify.extra.decode())
            while self._resync:
                self._resync = False
                self.versions = self._read_versions(self._conn)
        except Exception:
            log.warning("live feed: listener lost, polls read the database", exc_info=True)
            self._disconnect()

    def _apply(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind == "book":
            code, _, version = rest.rpartition(":")
            self.versions[code] = int(version)
        elif kind == "session":
            self.auth_events += 1
            self._sessions.pop(rest, None)
        elif kind == "user":
            self.auth_events += 1
            user_id = int(rest)
            for digest in [d for d, s in self._sessions.items() if s.user_id == user_id]:
                del self._sessions[digest]
        elif kind == "reset":
            # A table was truncated (test databases): forget everything, and read the
            # versions again once the notifications in hand are applied (`_drain`).
            self.auth_events += 1
            self._sessions.clear()
            self.versions = {}
            self._resync = True

    @staticmethod
    def _read_versions(conn) -> dict[str, int]:
        return notifications.book_versions(conn)

    # --- book versions --------------------------------------------------------------

    def book_version(self, code: str) -> int | None:
        """The market's current `book_version` if the feed is connected and knows the
        market; None means "ask the database"."""
        if not self.refresh():
            return None
        return self.versions.get(code)

    # --- sessions -------------------------------------------------------------------

    def session_user(self, session_key: str | None):
        """The user a session was last verified for, or None ("authenticate against the
        database"). Only for views that show every trader the same thing."""
        if not session_key or not self.refresh():
            return None
        entry = self._sessions.get(session_digest(session_key))
        if entry is None or entry.epoch != self.epoch or time.monotonic() >= entry.valid_until:
            return None
        return entry.user

    def remember_session(self, session_key: str, user, *, expires_in: float, since: tuple):
        """Remember that `session_key` authenticated `user`, as read from the database
        after `since = feed.mark()`. Kept only if nothing about sessions or users was
        notified in between (the entry might be stale) and for at most `SESSION_TTL`."""
        if not self.refresh():
            return
        with self._lock:  # the feed's thread applies notifications meanwhile
            if since != self.mark():
                return
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.clear()
            self._sessions[session_digest(session_key)] = _Session(
                user=user,
                user_id=user.pk,
                epoch=self.epoch,
                valid_until=time.monotonic() + max(0.0, min(SESSION_TTL, expires_in)),
            )

    def mark(self) -> tuple:
        """The feed's position: what `remember_session` compares to."""
        return (self.epoch, self.auth_events)


feed = LiveFeed()
