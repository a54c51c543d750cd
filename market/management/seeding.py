"""Idempotent seeding shared by `seed_market_makers` and the demo data (`seed_demo`)."""

from collections.abc import Mapping
from decimal import Decimal

from django.core.exceptions import ValidationError

from market.core.money import EUR, format_eur, format_quantity, parse_amount, parse_quantity
from market.models import MarketMakerClient
from market.selectors import asset_codes, market_maker_rows
from market.services.market_makers import market_maker_create

Type = MarketMakerClient.Type
SEED_NAMES = {Type.LIQUIDITY_PROVIDER: "Seed LP", Type.ASSET_HOLDER: "Seed AH"}


def parse_seed_amount(value, *, asset: str, option: str) -> Decimal:
    """A per-maker amount of `asset`, given on the command line as `option`: zero (fund
    nothing) or a valid deposit, by the one strict parser."""
    try:
        if asset == EUR:
            return parse_amount(value, field=option, allow_zero=True)
        return Decimal(parse_quantity(value, field=option, allow_zero=True))
    except ValidationError as error:
        raise ValueError(f"{option}: {' '.join(error.messages)}") from None


def ensure_seed_market_makers(
    *,
    liquidity_providers: int,
    asset_holders: int,
    funding: Mapping[str, Decimal],
    created_by=None,
) -> list[MarketMakerClient]:
    """Make sure "Seed LP 1" … "Seed LP N" and "Seed AH 1" … "Seed AH M" exist; create the
    missing ones through `market_maker_create`, funded with the assets of `funding` (per
    maker) their type may hold. Existing ones are left alone. Returns the makers created."""
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
            if amount and MarketMakerClient(mm_type=mm_type).may_hold(asset)
        }
        for number in range(1, count + 1):
            name = f"{SEED_NAMES[mm_type]} {number}"
            if (mm_type, name) in existing:
                continue
            result = market_maker_create(
                name=name,
                mm_type=mm_type,
                description="Seeded by manage.py",
                funding=maker_funding,
                created_by=created_by,
            )
            created.append(result.market_maker)
    return created


def market_maker_table() -> str:
    """Every market maker with its available and locked balances, as a text table."""
    assets = asset_codes()
    header = ["Code", "Name", "Type", "Active"]
    for asset in assets:
        header += [f"{asset} available", f"{asset} locked"]
    rows = [header]
    for row in market_maker_rows(MarketMakerClient.objects.order_by("id")):
        maker = row.maker
        cells = [
            maker.code,
            maker.name,
            maker.get_mm_type_display(),
            "yes" if maker.is_active else "no",
        ]
        for balance in row.balances:
            show = format_eur if balance.asset == EUR else format_quantity
            cells += [show(balance.available), show(balance.locked)]
        rows.append(cells)
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
