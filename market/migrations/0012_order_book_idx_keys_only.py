"""`order_book_idx` goes back to its keys alone, without the quantities 0009 added to it.

Those columns were there for the book's levels, summed from the orders; the levels are now
rows of their own (0011), and nothing else reads the quantities from the index (the walk
reads each order's row, which it locks), so every insert of an order carried them for
nothing. Swapped the way 0009 did, concurrently on PostgreSQL.
"""

import importlib

from django.db import migrations

covering = importlib.import_module("market.migrations.0009_order_book_idx_covers_levels")


class Migration(migrations.Migration):
    atomic = False  # CREATE and DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [("market", "0011_book_levels")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="order", name="order_book_idx"),
                migrations.AddIndex(model_name="order", index=covering.WITHOUT),
            ],
            database_operations=[
                migrations.RunPython(covering.uncover_levels, covering.cover_levels)
            ],
        ),
    ]
