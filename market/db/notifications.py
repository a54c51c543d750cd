"""The statements of the live feed (`market.live`): it listens on its own connection, for
the notifications that the triggers of migration `market.0003` send."""

from market.models import Market

CHANNEL = "carbon_live"


def listen(conn) -> None:
    """Start receiving the feed's notifications on `conn` (a psycopg connection)."""
    conn.execute(f"LISTEN {CHANNEL}")


def book_versions(conn) -> dict[str, int]:
    """Every market's current book version, read on `conn`."""
    rows = conn.execute(f"SELECT code, book_version FROM {Market._meta.db_table}").fetchall()
    return {code: int(version) for code, version in rows}
