"""The market's system checks: what its database code relies on, refused when missing."""

from types import SimpleNamespace

import pytest

from market import checks, live


@pytest.fixture
def on_postgresql(monkeypatch):
    connection = SimpleNamespace(vendor="postgresql", settings_dict={"OPTIONS": {}})
    monkeypatch.setattr(checks, "connections", {"default": connection})
    return connection


@pytest.mark.parametrize(
    "engine",
    ["django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"],
)
def test_the_live_feed_accepts_sessions_kept_in_the_database(settings, on_postgresql, engine):
    settings.MARKET_LIVE_FEED, settings.SESSION_ENGINE = True, engine
    assert checks.check_live_feed_sessions() == []


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.signed_cookies",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.file",
    ],
)
def test_the_live_feed_refuses_sessions_its_triggers_cannot_see(settings, on_postgresql, engine):
    """A logout under these engines touches no `django_session` row: the feed would keep
    trusting the session, so the configuration is refused, and the feed stays off."""
    settings.MARKET_LIVE_FEED, settings.SESSION_ENGINE = True, engine
    (error,) = checks.check_live_feed_sessions()
    assert error.id == "market.E001" and engine in error.msg
    assert "MARKET_LIVE_FEED=False" in error.hint
    live._on_postgresql.cache_clear()
    try:
        assert not live.LiveFeed.enabled()
    finally:
        live._on_postgresql.cache_clear()
    settings.MARKET_LIVE_FEED = False
    assert checks.check_live_feed_sessions() == []


def test_server_side_binding_is_required_on_postgresql(on_postgresql):
    (error,) = checks.check_server_side_binding()
    assert error.id == "market.E002"
    on_postgresql.settings_dict["OPTIONS"]["server_side_binding"] = True
    assert checks.check_server_side_binding() == []


def test_the_live_feed_database_url_must_be_postgresql(settings):
    settings.MARKET_LIVE_FEED_DATABASE = None
    assert checks.check_live_feed_database() == []
    postgresql = {"ENGINE": "django.db.backends.postgresql"}
    settings.MARKET_LIVE_FEED_DATABASE = {**postgresql, "NAME": "market"}
    assert checks.check_live_feed_database() == []
    settings.MARKET_LIVE_FEED_DATABASE = {**postgresql, "OPTIONS": {"service": "feed"}}
    assert checks.check_live_feed_database() == []
    for wrong in (
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"},
        {**postgresql, "NAME": ""},  # postgres://host:5432 names no database
    ):
        settings.MARKET_LIVE_FEED_DATABASE = wrong
        (error,) = checks.check_live_feed_database()
        assert error.id == "market.E003"


def test_prepared_statements_behind_a_transaction_pooler_are_warned_about(settings):
    from django.db import connections

    options = connections.databases["default"].setdefault("OPTIONS", {})
    before = options.get("prepare_threshold")
    try:
        settings.DB_TRANSACTION_POOLER = False
        options["prepare_threshold"] = 5
        assert checks.check_pooler_prepared_statements() == []
        settings.DB_TRANSACTION_POOLER = True
        (warning,) = checks.check_pooler_prepared_statements()
        assert warning.id == "market.W004"
        options["prepare_threshold"] = None
        assert checks.check_pooler_prepared_statements() == []
    finally:
        options["prepare_threshold"] = before
