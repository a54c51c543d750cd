"""The shape the code keeps: apps that depend one way, one database layer that owns every
SQL statement, a pure core, and markets that are data. Read from the source (the AST) and
from Django's migration graph, so a change that breaks a rule fails here."""

import ast
import re
from pathlib import Path

import pytest
from django.db.migrations.loader import MigrationLoader

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "market", "liquidity", "demo", "config")
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|TRIGGER)"
    r"|DROP\s+(TABLE|INDEX)|LISTEN\s|NOTIFY\s|LOCK\s+TABLE|ANALYZE\s|TRUNCATE\s)",
    re.IGNORECASE | re.DOTALL,
)


def product_files(*apps: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    """The product's own modules: no tests, no migrations, no benchmarks."""
    files = []
    for app in apps:
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts or "node_modules" in parts:
                continue
            if any(path.relative_to(ROOT).as_posix().startswith(prefix) for prefix in exclude):
                continue
            files.append(path)
    return sorted(files)


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module (f-strings' literal parts joined with a
    placeholder), but docstrings."""
    module = tree(path)
    docstrings = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                part.value if isinstance(part, ast.Constant) else "{}" for part in node.values
            )
            found.append((node.lineno, text))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            found.append((node.lineno, node.value))
    return found


def test_market_never_imports_liquidity_nor_the_apps_that_use_it():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in product_files("market")
        for name in imported_modules(path)
        if name.split(".")[0] in ("liquidity", "demo")
    ]
    assert not offenders, offenders


def test_the_migration_graph_has_no_cycle_between_apps():
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    depends: dict[str, set[str]] = {}
    for (app, _), node in graph.node_map.items():
        for parent in node.parents:
            if parent.key[0] != app:
                depends.setdefault(app, set()).add(parent.key[0])
    assert "liquidity" not in depends.get("market", set())
    assert "market" in depends["liquidity"]
    for app, parents in depends.items():
        for parent in parents:
            assert app not in depends.get(parent, set()), (
                f"{app} and {parent} depend on each other"
            )


def test_no_sql_outside_the_database_layer_and_migrations():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}"
        for path in product_files(*APPS, exclude=("market/db/",))
        for line, text in strings(path)
        if SQL.search(text)
    ]
    assert not offenders, offenders
    # The layer does hold the statements (the check above can see them).
    assert any(SQL.search(text) for _, text in strings(ROOT / "market/db/orders.py"))


CORE_MAY_IMPORT = {"django.core.exceptions"}


@pytest.mark.parametrize("path", sorted((ROOT / "market/core").glob("*.py")), ids=lambda p: p.name)
def test_the_core_is_pure(path):
    """No ORM, no settings, no I/O in the rules: the standard library, the core itself,
    and Django's ValidationError (the project's one error type for fixable input)."""
    for name in imported_modules(path):
        top = name.split(".")[0]
        assert name in CORE_MAY_IMPORT or name.startswith("market.core") or top in STANDARD, (
            f"{path.name} imports {name}"
        )


STANDARD = {
    "collections",
    "dataclasses",
    "datetime",  # the date type: the day is passed in, the core never reads a clock
    "decimal",
    "re",
    "typing",
    "fractions",
    "itertools",
    "functools",
    "__future__",
    "bisect",
}


def test_markets_are_data_no_market_is_named_in_product_code():
    """CEA and EUA appear in seeds (migrations, the demo data) and tests, and as examples
    in the API schema and help texts, but no code branches on a market."""
    offenders = []
    for path in product_files("accounts", "market", "liquidity", "config"):
        module = tree(path)
        examples = {
            id(constant)
            for node in ast.walk(module)
            if isinstance(node, ast.keyword) and node.arg == "examples"
            for constant in ast.walk(node.value)
        }
        for node in ast.walk(module):
            if (
                isinstance(node, ast.Constant)
                and node.value in ("CEA", "EUA")
                and id(node) not in examples
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
