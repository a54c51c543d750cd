"""What config/settings.py makes of the database variables: behind a transaction-mode pooler
(DB_TRANSACTION_POOLER) nothing may outlive a transaction, and the live feed's LISTEN
connection goes where MARKET_LIVE_FEED_DATABASE_URL says."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The checkout's own .env is not read: what counts is the environment given.
SHOW = (
    "import environ; environ.Env.read_env = classmethod(lambda *args, **kwargs: None); "
    "import django, json; django.setup(); from django.conf import settings as s; "
    "db = s.DATABASES['default']; print(json.dumps({"
    "'prepare_threshold': db['OPTIONS'].get('prepare_threshold', 'unset'), "
    "'server_side_binding': db['OPTIONS'].get('server_side_binding'), "
    "'server_side_cursors_off': db.get('DISABLE_SERVER_SIDE_CURSORS', False), "
    "'pooler': s.DB_TRANSACTION_POOLER, 'feed_db': s.MARKET_LIVE_FEED_DATABASE}))"
)
POSTGRES = "postgres://app@127.0.0.1:6432/carbon"


def database_settings(**variables) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DJANGO_SETTINGS_MODULE",
            "DATABASE_URL",
            "DB_TRANSACTION_POOLER",
            "DB_PREPARE_THRESHOLD",
            "MARKET_LIVE_FEED_DATABASE_URL",
        }
    }
    env.update(DJANGO_SETTINGS_MODULE="config.settings", SECRET_KEY="x" * 60, **variables)
    result = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgresql_prepares_statements_and_streams_by_default():
    found = database_settings(DATABASE_URL=POSTGRES)
    assert found == {
        "prepare_threshold": 5,
        "server_side_binding": True,
        "server_side_cursors_off": False,
        "pooler": False,
        "feed_db": None,
    }


def test_behind_a_transaction_pooler_nothing_outlives_a_transaction():
    found = database_settings(DATABASE_URL=POSTGRES, DB_TRANSACTION_POOLER="True")
    assert found["pooler"] is True
    assert found["prepare_threshold"] is None  # psycopg: never prepare
    assert found["server_side_binding"] is True  # unnamed statements are fine
    assert found["server_side_cursors_off"] is True  # no WITH HOLD cursors
    # A pooler that keeps prepared statements per client (PgBouncer 1.21+) may allow them.
    again = database_settings(
        DATABASE_URL=POSTGRES, DB_TRANSACTION_POOLER="True", DB_PREPARE_THRESHOLD="5"
    )
    assert again["prepare_threshold"] == 5


def test_the_threshold_zero_turns_preparing_off():
    assert (
        database_settings(DATABASE_URL=POSTGRES, DB_PREPARE_THRESHOLD="0")["prepare_threshold"]
        is None
    )


def test_the_live_feed_database_url_is_parsed():
    found = database_settings(
        DATABASE_URL=POSTGRES,
        DB_TRANSACTION_POOLER="True",
        MARKET_LIVE_FEED_DATABASE_URL="postgres://app:secret@db.internal:5432/carbon",
    )
    feed = found["feed_db"]
    assert feed["ENGINE"] == "django.db.backends.postgresql"
    assert (feed["NAME"], feed["USER"], feed["PASSWORD"], feed["HOST"], feed["PORT"]) == (
        "carbon",
        "app",
        "secret",
        "db.internal",
        5432,
    )
