"""Shared set-up for the benchmarks: a throwaway PostgreSQL database, migrated."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/carbon_bench"


def report_ratio(name: str, value: float, target: float) -> None:
    """A benchmark's verdict line, always its last: `RATIO <name> <value> target <target>`
    (both measured in the same run; higher is better)."""
    print(f"RATIO {name} {value:.4g} target {target}")


def fresh_database(url: str | None = None) -> str:
    """Drop and re-create the bench database, migrate it (with the cache table), and set up
    Django against it."""
    url = url or os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    name = url.rsplit("/", 1)[1]
    server = url.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(server.replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuv")
    os.environ.setdefault("DEBUG", "False")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    # As `make migrate` does: the schema, then the request limits' counters' table
    # (config/throttle.py), without which every throttled POST would fail.
    for command in (["migrate", "--noinput", "-v0"], ["createcachetable"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, check=True, env=os.environ
        )
    import django

    django.setup()
    return url
