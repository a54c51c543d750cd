"""Balance rows leave room on their pages for their next versions (fillfactor 70).

Every trade rewrites four or five balance rows and every liquidity operation a thousand;
an update changes only `available` and `locked`, which no index holds, so PostgreSQL can
write the new version on the same page without touching an index (a HOT update) whenever
the page has room, and prunes the dead versions there as it goes. Full pages (the default
fillfactor, 100) sent about half the updates to other pages with new index entries, and
the dead versions piled up until a vacuum: after a few thousand updates the makers'
locked read visited 13 heap pages per balance row. Existing pages keep their rows until
they are rewritten; new rows follow the setting. PostgreSQL only.
"""

from django.db import migrations


def _fillfactor(percent: int | None):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name(apps.get_model("market", "Balance")._meta.db_table)
        if percent is None:
            schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")
        else:
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {percent})")

    return run


class Migration(migrations.Migration):
    dependencies = [("market", "0009_order_book_idx_covers_levels")]

    operations = [migrations.RunPython(_fillfactor(70), _fillfactor(None), elidable=False)]
