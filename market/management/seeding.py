"""Idempotent seeding shared by `seed_market_makers` and `seed_demo`."""

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from market.models import Asset, MarketMakerClient
from market.services.ledger import parse_transfer
from market.services.market_makers import market_maker_create, market_makers_with_balances
from market.templatetags.money import certificates, eur

Type = MarketMakerClient.Type
SEED_NAMES = {Type.LIQUIDITY_PROVIDER: "Seed LP", Type.ASSET_HOLDER: "Seed AH"}


def parse_seed_amount(value, *, asset: str) -> Decimal:
    """A per-maker amount: zero (fund nothing) or a valid deposit of `asset`."""
    text = str(value).strip()
    try:
        if Decimal(text.replace(",", "")) == 0:
            return Decimal(0)
    except InvalidOperation:
        pass
    try:
        return parse_transfer(asset, text)
    except ValidationError as error:
        raise ValueError(f"--{asset.lower()}: {' '.join(error.messages)}") from None


def ensure_seed_market_makers(
    *,
    liquidity_providers: int,
    asset_holders: int,
    funding: Mapping[str, Decimal],
    created_by=None,
) -> list[MarketMakerClient]:
    """Make sure "Seed LP 1" … "Seed LP N" and "Seed AH 1" … "Seed AH M" exist; create the
    missing ones through `market_maker_create`, funded with the type's assets from
    `funding` (per maker). Existing ones are left alone. Returns the makers created."""
    wanted = {Type.LIQUIDITY_PROVIDER: liquidity_providers, Type.ASSET_HOLDER: asset_holders}
    existing = set(
        MarketMakerClient.objects.filter(
            name__startswith="Seed ", mm_type__in=list(wanted)
        ).values_list("mm_type", "name")
    )
    created = []
    for mm_type, count in wanted.items():
        maker_funding = {
            asset: amount
            for asset, amount in funding.items()
            if amount and asset in MarketMakerClient(mm_type=mm_type).funding_assets
        }
        for number in range(1, count + 1):
            name = f"{SEED_NAMES[mm_type]} {number}"
            if (mm_type, name) in existing:
                continue
            created.append(
                market_maker_create(
                    name=name,
                    mm_type=mm_type,
                    description="Seeded by manage.py",
                    funding=maker_funding,
                    created_by=created_by,
                )
            )
    return created


def market_maker_table() -> str:
    """Every market maker with its available and locked balances, as a text table."""
    header = ["Code", "Name", "Type", "Active"]
    for asset in Asset.values:
        header += [f"{asset} available", f"{asset} locked"]
    rows = [header]
    for maker in market_makers_with_balances().order_by("id"):
        row = [
            maker.code,
            maker.name,
            maker.get_mm_type_display(),
            "yes" if maker.is_active else "no",
        ]
        for asset in Asset.values:
            show = eur if asset == Asset.EUR else certificates
            row += [
                show(getattr(maker, f"{asset.lower()}_available")),
                show(getattr(maker, f"{asset.lower()}_locked")),
            ]
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    numeric = range(4, len(header))

    def line(row):
        return "  ".join(
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    lines = [line(rows[0]), "  ".join("-" * width for width in widths)]
    lines += [line(row) for row in rows[1:]]
    if len(rows) == 1:
        lines.append("(no market makers)")
    return "\n".join(lines)
