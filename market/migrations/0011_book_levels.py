"""The book's price levels as rows (`BookLevel`), kept by triggers on `market_order`.

The poll showed each side's best 50 levels by summing the orders resting at them: at
500,000 resting orders that read some 20,000 index entries a side, so the render grew with
the book. Now every statement that writes orders applies its changes to their levels in
the same transaction, so the book reads at most `depth` rows a side, whatever rests there:

- PostgreSQL: one trigger per statement and event, over its transition tables, so a
  3,000-order ladder is one aggregate upsert, not 3,000. A level with no order left is
  deleted. A TRUNCATE of the orders empties the levels.
- SQLite: a trigger per row (SQLite has no statement triggers); the same arithmetic.

An order counts at its (market, side, price) while its status is OPEN or PARTIALLY_FILLED,
for its quantity less what has filled, like the sum the book used to run. Existing
resting orders are summed into their levels here, after the triggers exist: creating a
trigger locks the table against writes until this migration commits, so no write falls
between the two.

On SQLite, a later migration that rebuilds `market_order` (how Django alters a column
there) drops its triggers: such a migration must create them again. The tests would see
it: they check the levels against the orders after every kind of write.
"""

import django.db.models.deletion
from django.db import migrations, models

RESTING = "('OPEN', 'PARTIALLY_FILLED')"
KEY = "market_id, side, price"

POSTGRESQL = [
    f"""
    CREATE FUNCTION market_book_levels_apply() RETURNS trigger AS $$
    DECLARE
        emptied bigint[];
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO market_booklevel AS level ({KEY}, quantity, order_count)
            SELECT {KEY}, SUM(quantity - filled_quantity), COUNT(*)
            FROM new_rows WHERE status IN {RESTING}
            GROUP BY {KEY} ORDER BY {KEY}
            ON CONFLICT ({KEY}) DO UPDATE
            SET quantity = level.quantity + EXCLUDED.quantity,
                order_count = level.order_count + EXCLUDED.order_count;
            RETURN NULL;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            -- What each level gains and loses (most updates of a fill or a reservation
            -- change nothing here, and write nothing). Levels that exist take their
            -- change; a level that does not is inserted. Not one upsert: PostgreSQL
            -- checks the row it would insert against the CHECK constraint before it
            -- finds the conflict, and a level's change may be negative.
            WITH change AS (
                SELECT {KEY}, SUM(quantity) AS quantity, SUM(order_count) AS order_count
                FROM (
                    SELECT {KEY}, quantity - filled_quantity AS quantity, 1 AS order_count
                    FROM new_rows WHERE status IN {RESTING}
                    UNION ALL
                    SELECT {KEY}, filled_quantity - quantity, -1
                    FROM old_rows WHERE status IN {RESTING}
                ) AS row_change
                GROUP BY {KEY}
                HAVING SUM(quantity) <> 0 OR SUM(order_count) <> 0
            ), changed AS (
                UPDATE market_booklevel AS level
                SET quantity = level.quantity + change.quantity,
                    order_count = level.order_count + change.order_count
                FROM change
                WHERE (level.market_id, level.side, level.price)
                    = (change.market_id, change.side, change.price)
                RETURNING level.id, level.market_id, level.side, level.price, level.order_count
            ), added AS (
                INSERT INTO market_booklevel AS level ({KEY}, quantity, order_count)
                SELECT {KEY}, quantity, order_count FROM change
                WHERE ({KEY}) NOT IN (SELECT {KEY} FROM changed)
                ORDER BY {KEY}
                ON CONFLICT ({KEY}) DO UPDATE
                SET quantity = level.quantity + EXCLUDED.quantity,
                    order_count = level.order_count + EXCLUDED.order_count
            )
            SELECT array_agg(id) INTO emptied FROM changed WHERE order_count = 0;
        ELSE
            WITH changed AS (
                UPDATE market_booklevel AS level
                SET quantity = level.quantity - gone.quantity,
                    order_count = level.order_count - gone.order_count
                FROM (
                    SELECT {KEY}, SUM(quantity - filled_quantity) AS quantity,
                        COUNT(*) AS order_count
                    FROM old_rows WHERE status IN {RESTING} GROUP BY {KEY}
                ) AS gone
                WHERE (level.market_id, level.side, level.price)
                    = (gone.market_id, gone.side, gone.price)
                RETURNING level.id, level.order_count
            )
            SELECT array_agg(id) INTO emptied FROM changed WHERE order_count = 0;
        END IF;
        -- The levels whose last order left, in a statement of its own: one that sees the
        -- change above (a statement's CTEs all see the same snapshot). None, mostly.
        IF emptied IS NOT NULL THEN
            DELETE FROM market_booklevel WHERE id = ANY(emptied);
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """
    CREATE FUNCTION market_book_levels_clear() RETURNS trigger AS $$
    BEGIN
        DELETE FROM market_booklevel;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER market_book_levels_insert AFTER INSERT ON market_order
       REFERENCING NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION market_book_levels_apply()""",
    """CREATE TRIGGER market_book_levels_update AFTER UPDATE ON market_order
       REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION market_book_levels_apply()""",
    """CREATE TRIGGER market_book_levels_delete AFTER DELETE ON market_order
       REFERENCING OLD TABLE AS old_rows
       FOR EACH STATEMENT EXECUTE FUNCTION market_book_levels_apply()""",
    """CREATE TRIGGER market_book_levels_truncate AFTER TRUNCATE ON market_order
       FOR EACH STATEMENT EXECUTE FUNCTION market_book_levels_clear()""",
]
POSTGRESQL_REVERSE = [
    *(
        f"DROP TRIGGER IF EXISTS market_book_levels_{event} ON market_order"
        for event in ("insert", "update", "delete", "truncate")
    ),
    "DROP FUNCTION IF EXISTS market_book_levels_apply()",
    "DROP FUNCTION IF EXISTS market_book_levels_clear()",
]

_SQLITE_ADD = f"""
    INSERT INTO market_booklevel ({KEY}, quantity, order_count)
    SELECT NEW.market_id, NEW.side, NEW.price, NEW.quantity - NEW.filled_quantity, 1
    WHERE NEW.status IN {RESTING}
    ON CONFLICT ({KEY}) DO UPDATE
    SET quantity = quantity + excluded.quantity, order_count = order_count + 1;"""
_SQLITE_REMOVE = f"""
    UPDATE market_booklevel
    SET quantity = quantity - (OLD.quantity - OLD.filled_quantity),
        order_count = order_count - 1
    WHERE OLD.status IN {RESTING}
      AND market_id = OLD.market_id AND side = OLD.side AND price = OLD.price;
    DELETE FROM market_booklevel
    WHERE order_count = 0
      AND market_id = OLD.market_id AND side = OLD.side AND price = OLD.price;"""
SQLITE = [
    f"""CREATE TRIGGER market_book_levels_insert AFTER INSERT ON market_order
        WHEN NEW.status IN {RESTING}
        BEGIN {_SQLITE_ADD} END""",
    # Add before removing: a level an order stays at never dips below zero on the way.
    f"""CREATE TRIGGER market_book_levels_update AFTER UPDATE ON market_order
        WHEN NEW.status IN {RESTING} OR OLD.status IN {RESTING}
        BEGIN {_SQLITE_ADD} {_SQLITE_REMOVE} END""",
    f"""CREATE TRIGGER market_book_levels_delete AFTER DELETE ON market_order
        WHEN OLD.status IN {RESTING}
        BEGIN {_SQLITE_REMOVE} END""",
]
SQLITE_REVERSE = [
    f"DROP TRIGGER IF EXISTS market_book_levels_{event}"
    for event in ("insert", "update", "delete")
]

BACKFILL = f"""
    INSERT INTO market_booklevel ({KEY}, quantity, order_count)
    SELECT {KEY}, SUM(quantity - filled_quantity), COUNT(*)
    FROM market_order WHERE status IN {RESTING}
    GROUP BY {KEY}"""


def _create_triggers(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        schema_editor.execute(statement)
    schema_editor.execute(BACKFILL)


def _drop_triggers(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL_REVERSE if postgresql else SQLITE_REVERSE:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("market", "0010_balance_fillfactor")]

    operations = [
        migrations.CreateModel(
            name="BookLevel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "side",
                    models.CharField(choices=[("BUY", "Buy"), ("SELL", "Sell")], max_length=4),
                ),
                ("price", models.DecimalField(decimal_places=2, max_digits=12)),
                (
                    "quantity",
                    models.BigIntegerField(help_text="Certificates still open at the price"),
                ),
                ("order_count", models.IntegerField()),
                (
                    "market",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="book_levels",
                        to="market.market",
                    ),
                ),
            ],
            options={
                "ordering": ["market", "side", "price"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("market", "side", "price"), name="book_level_key"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("order_count__gte", 0), ("quantity__gte", 0)),
                        name="book_level_non_negative",
                    ),
                ],
            },
        ),
        migrations.RunPython(_create_triggers, _drop_triggers, elidable=False),
    ]
