"""The project's database check: a database made by the replaced migrations is named,
with the way out, before `migrate` fails half-way."""

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from config.checks import check_migration_history


@pytest.mark.django_db
def test_a_database_of_the_replaced_migrations_is_refused_with_the_way_out():
    assert check_migration_history(databases=["default"]) == []
    MigrationRecorder(connection).record_applied("market", "0005_lean_indexes")
    (error,) = check_migration_history(databases=["default"])
    assert error.id == "config.E001" and "replaced before the first release" in error.msg
    assert "delete db.sqlite3" in error.hint
    assert check_migration_history(databases=None) == []
