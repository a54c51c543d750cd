"""The first two markets and the house fee account. Markets are rows: a third one is
created in the admin or by `manage.py create_market`, not by a migration."""

from decimal import Decimal

from django.db import migrations

MARKETS = [
    ("CEA", "China Emission Allowance", Decimal("14.00")),
    ("EUA", "EU Allowance", Decimal("81.00")),
]


def seed(apps, schema_editor):
    Market = apps.get_model("market", "Market")
    Holder = apps.get_model("market", "Holder")
    Balance = apps.get_model("market", "Balance")
    for code, name, reference in MARKETS:
        Market.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "tick_size": Decimal("0.01"),
                "default_reference_price": reference,
                "buy_fee_rate": Decimal("0.005"),
                "sell_fee_rate": Decimal("0"),
            },
        )
    house, _ = Holder.objects.get_or_create(kind="HOUSE", defaults={"name": "House fee account"})
    for asset in ["EUR", *Market.objects.values_list("code", flat=True)]:
        Balance.objects.get_or_create(holder=house, asset=asset)


class Migration(migrations.Migration):
    dependencies = [("market", "0001_markets_ledger_orders")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
