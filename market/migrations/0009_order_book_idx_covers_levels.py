"""`order_book_idx` includes the quantities the book's levels sum, so PostgreSQL reads them
from the index alone (an index-only scan), not from every resting order's row.

On PostgreSQL the new index is built CONCURRENTLY under a temporary name, the old one
dropped CONCURRENTLY, and the new one renamed: placements and polls go on while it
builds, where a plain DROP and CREATE in one transaction would hold the order table's
ACCESS EXCLUSIVE lock for the whole build. Elsewhere (SQLite, which has no INCLUDE and
builds the plain partial index), the schema editor's own operations.
"""

from django.db import migrations, models

RESTING = models.Q(("status__in", ["OPEN", "PARTIALLY_FILLED"]))
FIELDS = ["market", "side", "price", "id"]
WITHOUT = models.Index(condition=RESTING, fields=FIELDS, name="order_book_idx")
WITH = models.Index(
    condition=RESTING,
    fields=FIELDS,
    include=("quantity", "filled_quantity"),
    name="order_book_idx",
)


def _replace(schema_editor, order, old: models.Index, new: models.Index) -> None:
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(order, old)
        schema_editor.add_index(order, new)
        return
    building = models.Index(
        condition=new.condition,
        fields=new.fields,
        include=new.include,
        name="order_book_idx_new",
    )
    # A concurrent build that was interrupted leaves its index behind, invalid: a run
    # again starts from scratch.
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {building.name}")
    schema_editor.add_index(order, building, concurrently=True)
    schema_editor.remove_index(order, old, concurrently=True)
    schema_editor.rename_index(order, building, new)


def cover_levels(apps, schema_editor):
    _replace(schema_editor, apps.get_model("market", "Order"), WITHOUT, WITH)


def uncover_levels(apps, schema_editor):
    _replace(schema_editor, apps.get_model("market", "Order"), WITH, WITHOUT)


class Migration(migrations.Migration):
    atomic = False  # CREATE and DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("market", "0008_order_time_in_force_post_only"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="order", name="order_book_idx"),
                migrations.AddIndex(model_name="order", index=WITH),
            ],
            database_operations=[migrations.RunPython(cover_levels, uncover_levels)],
        ),
    ]
