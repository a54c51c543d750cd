"""PostgreSQL triggers that tell each web process's live feed (market/live.py) what
changed: book versions, sessions (of the database session engine, which `market.checks`
requires wherever the feed is on), users. On SQLite there is no LISTEN, the feed stays off
and this migration does nothing."""

from django.conf import settings
from django.db import migrations

CHANNEL = "carbon_live"  # market.db.notifications.CHANNEL, fixed here as migrations must be


def _sql(user_table: str) -> list[str]:
    return [
        f"""
        CREATE OR REPLACE FUNCTION market_live_notify_book() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'INSERT' OR NEW.book_version IS DISTINCT FROM OLD.book_version THEN
                PERFORM pg_notify('{CHANNEL}', 'book:' || NEW.code || ':' || NEW.book_version);
            END IF;
            RETURN NULL;
        END $$ LANGUAGE plpgsql""",
        f"""
        CREATE OR REPLACE FUNCTION market_live_notify_session() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', 'session:' || md5(OLD.session_key));
            RETURN NULL;
        END $$ LANGUAGE plpgsql""",
        f"""
        CREATE OR REPLACE FUNCTION market_live_notify_user() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', 'user:' || OLD.id);
            RETURN NULL;
        END $$ LANGUAGE plpgsql""",
        f"""
        CREATE OR REPLACE FUNCTION market_live_notify_reset() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', 'reset');
            RETURN NULL;
        END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER market_live_book AFTER INSERT OR UPDATE OF book_version
           ON market_market FOR EACH ROW EXECUTE FUNCTION market_live_notify_book()""",
        """CREATE TRIGGER market_live_session AFTER UPDATE OR DELETE
           ON django_session FOR EACH ROW EXECUTE FUNCTION market_live_notify_session()""",
        f"""CREATE TRIGGER market_live_user AFTER UPDATE OR DELETE
           ON {user_table} FOR EACH ROW EXECUTE FUNCTION market_live_notify_user()""",
        *(
            f"""CREATE TRIGGER market_live_reset AFTER TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION market_live_notify_reset()"""
            for table in ("market_market", "django_session", user_table)
        ),
    ]


def _reverse_sql(user_table: str) -> list[str]:
    return [
        "DROP TRIGGER IF EXISTS market_live_book ON market_market",
        "DROP TRIGGER IF EXISTS market_live_session ON django_session",
        f"DROP TRIGGER IF EXISTS market_live_user ON {user_table}",
        *(
            f"DROP TRIGGER IF EXISTS market_live_reset ON {table}"
            for table in ("market_market", "django_session", user_table)
        ),
        "DROP FUNCTION IF EXISTS market_live_notify_book()",
        "DROP FUNCTION IF EXISTS market_live_notify_session()",
        "DROP FUNCTION IF EXISTS market_live_notify_user()",
        "DROP FUNCTION IF EXISTS market_live_notify_reset()",
    ]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        user_table = apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table
        for statement in statements(schema_editor.quote_name(user_table)):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0002_seed_cea_eua_and_house"),
        ("sessions", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(_run(_sql), _run(_reverse_sql))]
