"""System checks of the project's own assumptions, run by `manage.py check` and before
`migrate`."""

from django.core.checks import Error, Tags, register
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

# Migrations that existed before the apps were made to depend one way (2026-12-01, before
# the first release): a database that applied them has the old schema.
REPLACED_MIGRATIONS = {
    ("market", "0001_initial"),
    ("market", "0005_lean_indexes"),
    ("liquidity", "0003_api_token_and_permission"),
}


@register(Tags.database)
def check_migration_history(app_configs=None, databases=None, **kwargs):
    """A database created by the replaced migrations cannot be migrated forward: say so,
    and how to start afresh, instead of failing half-way with "table already exists"."""
    errors = []
    for alias in databases or ():
        recorder = MigrationRecorder(connections[alias])
        if not recorder.has_table():
            continue
        old = REPLACED_MIGRATIONS & set(recorder.applied_migrations())
        if old:
            errors.append(
                Error(
                    f"The database {alias!r} was created by migrations that were replaced "
                    "before the first release (the market and liquidity apps' first "
                    "migrations were rewritten so that the apps depend one way).",
                    hint="Create the database afresh: delete db.sqlite3 (or drop and "
                    "create the PostgreSQL database), then run `make run` again.",
                    id="config.E001",
                )
            )
    return errors
