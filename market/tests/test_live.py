"""The live feed (market/live.py): the order-book poll answered from memory on PostgreSQL,
kept current by the notifications of migration market.0004, and never trusted when it may
have missed one.

These tests commit for real (a LISTEN connection sees only committed changes) and wait for
each notification to arrive, as a web process would see it on its next poll. Skipped on
SQLite outside CI; under CI they always run and fail if the database is not PostgreSQL.
"""

import time
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from market import live
from market.models import Market, MarketMakerClient
from market.services.orders import order_place, order_request_parse
from market.tests import factories

D = Decimal
HTMX = {"HX-Request": "true"}
BOOK = "/market/CEA/book/"
pytestmark = [
    pytest.mark.postgres,  # LISTEN/NOTIFY
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("migrated_rows"),
]


@pytest.fixture
def feed(settings, monkeypatch):
    """A fresh feed for this process, switched on (the test settings switch it off)."""
    settings.MARKET_LIVE_FEED = True
    fresh = live.LiveFeed()
    monkeypatch.setattr(live, "feed", fresh)
    yield fresh
    fresh.close()


def eventually(condition, timeout: float = 5.0):
    """Wait for a notification to reach the feed (it travels after the commit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the feed never saw the change")


def place(holder, side, **fields):
    request = order_request_parse(market_code="CEA", side=side, order_type="LIMIT", **fields)
    return order_place(owner=holder, request=request)


def db_version(code: str = "CEA") -> int:
    return Market.objects.get(code=code).book_version


@pytest.fixture
def book():
    maker = factories.market_maker(MarketMakerClient.Type.LIQUIDITY_PROVIDER, EUR="100000")
    place(maker.holder, "BUY", price=D("13.90"), quantity=10)
    return maker.holder


@pytest.fixture
def alice():
    return factories.trader("alice", EUR="1000", CEA=50)


def logged_in(holder) -> Client:
    client = Client()
    client.force_login(holder.user)
    return client


def poll(client, etag=None):
    headers = {**HTMX, **({"If-None-Match": etag} if etag else {})}
    with CaptureQueriesContext(connection) as queries:
        response = client.get(BOOK, headers=headers)
    return response, len(queries.captured_queries)


def status_and_queries(client, etag=None) -> tuple[int, int]:
    response, queries = poll(client, etag)
    return response.status_code, queries


def test_the_feed_is_off_unless_switched_on_and_on_postgresql(settings):
    settings.MARKET_LIVE_FEED = False
    quiet = live.LiveFeed()
    assert quiet.refresh() is False
    assert quiet.book_version("CEA") is None
    assert quiet.session_user("any-session-key") is None


def test_versions_follow_every_committed_change_without_reading_the_database(feed, book):
    assert feed.refresh()
    assert feed.versions == {m.code: m.book_version for m in Market.objects.all()}
    before = feed.book_version("CEA")

    place(book, "BUY", price=D("13.80"), quantity=5)
    # Applied by the feed's own thread, before any request asks.
    eventually(lambda: feed.versions.get("CEA") == before + 1)
    assert feed.book_version("CEA") == db_version()
    with CaptureQueriesContext(connection) as queries:
        feed.book_version("CEA")
    assert queries.captured_queries == []


def test_a_known_session_polls_without_any_query_and_still_sees_every_change(feed, book, alice):
    client = logged_in(alice)
    first, queries = poll(client)
    assert first.status_code == 200
    assert queries > 0  # the session was read from the database once, and remembered

    unchanged, queries = poll(client, first["ETag"])
    assert (unchanged.status_code, queries) == (304, 0)
    again, queries = poll(client)
    assert (again.status_code, queries) == (200, 0)
    assert again.content == first.content  # the body is cached per book version

    # The whole page, with the trader's own balances and orders, is never served on the
    # strength of the feed's memory.
    with CaptureQueriesContext(connection) as page_queries:
        page = client.get(BOOK)
    assert page.status_code == 200 and "django_session" in str(page_queries.captured_queries)

    place(book, "BUY", price=D("13.85"), quantity=7)
    eventually(lambda: feed.book_version("CEA") == db_version())
    changed, _ = poll(client, first["ETag"])
    assert changed.status_code == 200
    assert changed["ETag"] == f'"book-{db_version()}-50"' != first["ETag"]
    assert 'data-book-price="13.85"' in changed.content.decode()
    assert status_and_queries(client, changed["ETag"]) == (304, 0)


def test_logging_out_ends_the_remembered_session_at_once(feed, book, alice):
    client = logged_in(alice)
    cookie = client.cookies["sessionid"].value
    assert poll(client)[0].status_code == 200
    assert feed.session_user(cookie) is not None

    client.logout()  # deletes the session row: the trigger notifies every process
    eventually(lambda: feed.session_user(cookie) is None)
    stolen = Client()
    stolen.cookies["sessionid"] = cookie
    response, _ = poll(stolen)
    assert response.status_code == 200 and response["HX-Redirect"].startswith("/accounts/login/")
    assert "order-book" not in response.content.decode()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda user: get_user_model().objects.filter(pk=user.pk).update(is_active=False),
            id="deactivated-by-a-bulk-update",
        ),
        pytest.param(
            lambda user: (user.set_password("a-new-password-0"), user.save()),
            id="password-changed",
        ),
    ],
)
def test_a_change_to_the_user_ends_their_remembered_sessions(feed, book, alice, change):
    client = logged_in(alice)
    cookie = client.cookies["sessionid"].value
    assert poll(client)[0].status_code == 200
    assert feed.session_user(cookie) is not None

    change(get_user_model().objects.get(pk=alice.user.pk))
    eventually(lambda: feed.session_user(cookie) is None)
    response, queries = poll(client)
    assert queries > 0  # authenticated against the database again, and refused
    assert response["HX-Redirect"].startswith("/accounts/login/")


def test_a_session_read_while_a_user_changed_is_not_remembered(feed, alice):
    client = logged_in(alice)
    cookie = client.cookies["sessionid"].value
    assert feed.refresh()
    since = feed.mark()
    get_user_model().objects.filter(pk=alice.user.pk).update(last_name="changed")
    eventually(lambda: feed.refresh() and feed.mark() != since)
    feed.remember_session(cookie, alice.user, expires_in=3600, since=since)
    assert feed.session_user(cookie) is None

    feed.remember_session(cookie, alice.user, expires_in=3600, since=feed.mark())
    assert feed.session_user(cookie) == alice.user


def test_sessions_are_never_trusted_past_their_expiry_or_the_ttl(feed, alice, monkeypatch):
    client = logged_in(alice)
    cookie = client.cookies["sessionid"].value
    assert feed.refresh()
    feed.remember_session(cookie, alice.user, expires_in=0, since=feed.mark())
    assert feed.session_user(cookie) is None
    monkeypatch.setattr(live, "SESSION_TTL", 0.0)
    feed.remember_session(cookie, alice.user, expires_in=3600, since=feed.mark())
    assert feed.session_user(cookie) is None


def test_a_lost_listener_falls_back_to_the_database_and_forgets_every_session(
    feed, book, alice, monkeypatch
):
    client = logged_in(alice)
    first, _ = poll(client)
    etag = first["ETag"]
    assert status_and_queries(client, etag) == (304, 0)
    epoch = feed.epoch
    listener_pid = feed._conn.info.backend_pid

    monkeypatch.setattr(live, "RECONNECT_AFTER", 3600.0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [listener_pid])
    eventually(lambda: not feed.refresh())
    assert feed.session_user(client.cookies["sessionid"].value) is None
    place(book, "BUY", price=D("13.75"), quantity=1)  # nobody is listening for this one

    # Disconnected: the poll reads the session, the user and the version itself.
    changed, queries = poll(client, etag)
    assert changed.status_code == 200 and queries >= 3
    assert changed["ETag"] == f'"book-{db_version()}-50"'

    monkeypatch.setattr(live, "RECONNECT_AFTER", 0.0)
    feed._next_attempt = 0.0
    assert feed.refresh() and feed.epoch == epoch + 1
    assert feed.book_version("CEA") == db_version()  # re-read on connecting
    _, queries = poll(client, changed["ETag"])
    assert queries > 0  # sessions of the old epoch are not trusted
    assert status_and_queries(client, changed["ETag"]) == (304, 0)


def test_the_feed_listens_on_its_own_database_url_when_one_is_set(settings, feed, book):
    """`MARKET_LIVE_FEED_DATABASE_URL`: the direct connection past a pooler. Here the same
    database by another host name and with an application name, to tell them apart."""
    default = connection.settings_dict
    settings.MARKET_LIVE_FEED_DATABASE = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": default["NAME"],
        "USER": default["USER"],
        "PASSWORD": default["PASSWORD"],
        "HOST": "localhost",
        "PORT": default["PORT"] or 5432,
        "OPTIONS": {"application_name": "carbon-live-feed-test"},
    }
    settings.DB_TRANSACTION_POOLER = True  # the default database is not listened on
    assert feed.refresh()
    assert feed._conn.info.host == "localhost"
    assert feed._conn.info.dbname == default["NAME"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = %s",
            [feed._conn.info.backend_pid],
        )
        assert cursor.fetchone() == ("carbon-live-feed-test",)
    before = feed.book_version("CEA")
    place(book, "BUY", price=D("13.70"), quantity=2)
    eventually(lambda: feed.versions.get("CEA") == before + 1 == db_version())


def test_behind_a_transaction_pooler_without_a_direct_url_polls_read_the_database(
    settings, feed, book, alice
):
    """A LISTEN through a transaction-mode pooler would land on a server session the feed
    does not keep: the feed stays off, and every poll reads the session and the version."""
    settings.DB_TRANSACTION_POOLER = True
    settings.MARKET_LIVE_FEED_DATABASE = None
    assert live.listen_params() is None
    assert not live.LiveFeed.enabled() and not feed.refresh()
    assert feed.book_version("CEA") is None

    client = logged_in(alice)
    first, queries = poll(client)
    assert first.status_code == 200 and queries > 0
    status, queries = status_and_queries(client, first["ETag"])
    assert status == 304 and queries >= 2  # the session and the version, from the database
    place(book, "BUY", price=D("13.65"), quantity=3)
    changed, _ = poll(client, first["ETag"])
    assert changed.status_code == 200
    assert changed["ETag"] == f'"book-{db_version()}-50"'


def test_a_feed_url_django_cannot_use_keeps_the_feed_off_and_polls_working(
    settings, feed, book, alice
):
    """A direct URL without a database name: the feed cannot connect, says so in the log,
    and the polls read the database instead of failing."""
    settings.MARKET_LIVE_FEED_DATABASE = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "",
        "HOST": "127.0.0.1",
        "USER": "postgres",
    }
    assert not feed.refresh()
    client = logged_in(alice)
    first, queries = poll(client)
    assert first.status_code == 200 and queries > 0
    place(book, "BUY", price=D("13.60"), quantity=1)
    changed, _ = poll(client, first["ETag"])
    assert changed["ETag"] == f'"book-{db_version()}-50"'


def test_without_a_pooler_the_feed_listens_on_the_default_database(settings):
    settings.DB_TRANSACTION_POOLER = False
    settings.MARKET_LIVE_FEED_DATABASE = None
    params = live.listen_params()
    assert params["dbname"] == connection.settings_dict["NAME"]
    assert "cursor_factory" not in params


@pytest.mark.browser
def test_chromium_polls_through_the_feed_and_sees_another_traders_order(
    feed, page, browser_login, live_server
):
    from market.tests.views.test_cash_market_browser import open_market, seed_book, wait_for_js

    provider, _ = seed_book(levels=4)
    trader = factories.trader("carol", EUR="20000", CEA=300)
    open_market(page, browser_login, live_server, trader)
    with page.expect_response(lambda r: "/book/" in r.url and r.status == 304):
        pass
    assert feed.connected and feed._sessions  # the page's session is answered from memory

    place(provider.holder, "BUY", price=D("14.00"), quantity=77)
    wait_for_js(
        page, "document.querySelector('[data-testid=bid-level]').dataset.bookPrice === '14.00'"
    )
    assert page.get_by_test_id("stat-best-bid").inner_text() == "€14.00"
