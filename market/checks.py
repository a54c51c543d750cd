"""System checks of what the market's database code relies on."""

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import connections

# Session engines that keep every session in the `django_session` table, whose triggers
# (migration `market.0003`) tell the live feed when a session changes or ends.
FEED_SESSION_ENGINES = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


@register()
def check_live_feed_sessions(app_configs=None, **kwargs):
    """The order-book poll trusts the live feed's memory of sessions only because
    PostgreSQL notifies every change of a session row: with any other session engine a
    logout would go unnoticed, so that combination is refused."""
    if not getattr(settings, "MARKET_LIVE_FEED", False):
        return []
    if connections["default"].vendor != "postgresql":
        return []
    if settings.SESSION_ENGINE in FEED_SESSION_ENGINES:
        return []
    return [
        Error(
            f"MARKET_LIVE_FEED needs sessions stored in the database; SESSION_ENGINE is "
            f"{settings.SESSION_ENGINE!r}.",
            hint=f"Use one of {', '.join(FEED_SESSION_ENGINES)}, or set MARKET_LIVE_FEED=False.",
            id="market.E001",
        )
    ]


@register()
def check_server_side_binding(app_configs=None, **kwargs):
    """The database layer's set-based writes send typed arrays as bound parameters."""
    connection = connections["default"]
    if connection.vendor != "postgresql" or connection.settings_dict.get("OPTIONS", {}).get(
        "server_side_binding"
    ):
        return []
    return [
        Error(
            "The market's database layer needs PostgreSQL parameters bound server-side.",
            hint="Set OPTIONS['server_side_binding'] = True for the default database "
            "(config/settings.py does).",
            id="market.E002",
        )
    ]


@register()
def check_live_feed_database(app_configs=None, **kwargs):
    """The live feed's direct connection (`MARKET_LIVE_FEED_DATABASE_URL`) must reach
    PostgreSQL: it LISTENs to the triggers of the default database."""
    direct = getattr(settings, "MARKET_LIVE_FEED_DATABASE", None)
    if not direct:
        return []
    named = direct.get("NAME") or direct.get("OPTIONS", {}).get("service")
    if direct.get("ENGINE") == "django.db.backends.postgresql" and named:
        return []
    return [
        Error(
            "MARKET_LIVE_FEED_DATABASE_URL must be a PostgreSQL URL naming the database "
            "(postgres://user@host:port/name).",
            hint="Point it at the same database as DATABASE_URL, past the connection "
            "pooler, or leave it unset.",
            id="market.E003",
        )
    ]


@register()
def check_pooler_prepared_statements(app_configs=None, **kwargs):
    """Behind a transaction-mode pooler, prepared statements need one that tracks them
    (PgBouncer 1.21+ with `max_prepared_statements` above 0)."""
    options = connections.databases.get("default", {}).get("OPTIONS", {})
    if not getattr(settings, "DB_TRANSACTION_POOLER", False) or not options.get(
        "prepare_threshold"
    ):
        return []
    return [
        Warning(
            "DB_PREPARE_THRESHOLD is above 0 behind a transaction-mode pooler "
            "(DB_TRANSACTION_POOLER).",
            hint="Set DB_PREPARE_THRESHOLD=0, unless the pooler tracks prepared statements "
            "(PgBouncer 1.21 or newer with max_prepared_statements above 0).",
            id="market.W004",
        )
    ]
