from django.db import migrations, models
from django.db.models import Max


def notified_up_to_now(apps, schema_editor):
    """Holders that exist already have been trading without fill toasts: they start
    with everything traded so far counted as notified (no toast for old fills)."""
    Holder = apps.get_model("market", "Holder")
    Trade = apps.get_model("market", "Trade")
    latest = Trade.objects.aggregate(latest=Max("id"))["latest"]
    if latest:
        Holder.objects.update(fills_notified_through=latest)


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0006_ticket_idempotency_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="holder",
            name="fills_notified_through",
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(notified_up_to_now, migrations.RunPython.noop, elidable=True),
    ]
