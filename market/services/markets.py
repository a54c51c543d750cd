"""Markets are rows: creating one and changing its settings, each with an audit ticket.

A new market's code is also its certificate's code: every holder gets a zero balance row
of it in the same transaction (under the lock holder creation takes, see
`market.services.holders`), so the cash market page, the book, the API, the back office,
liquidity and balances work for it at once, with no code change.
"""

from collections.abc import Mapping
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from market.core.limits import DEFAULT_PRICE_BAND_PCT, DEFAULT_SLIPPAGE_PCT
from market.core.money import format_eur
from market.db.orders import lock_markets
from market.models import Market, Order, TicketLog
from market.services.audit import ticket_record
from market.services.holders import balances_for_new_asset

SETTINGS = (
    "tick_size",
    "default_reference_price",
    "buy_fee_rate",
    "sell_fee_rate",
    "trading_enabled",
    "price_band_pct",
    "slippage_pct",
    "max_order_quantity",
    "max_order_value",
)


def _state(market: Market) -> dict[str, str]:
    return {"code": market.code, "name": market.name} | {
        name: str(getattr(market, name)) for name in SETTINGS
    }


def market_create(
    *,
    code: str,
    name: str,
    tick_size: Decimal,
    default_reference_price: Decimal,
    buy_fee_rate: Decimal = Decimal("0.005"),
    sell_fee_rate: Decimal = Decimal("0"),
    trading_enabled: bool = True,
    price_band_pct: Decimal | None = DEFAULT_PRICE_BAND_PCT,
    slippage_pct: Decimal | None = DEFAULT_SLIPPAGE_PCT,
    max_order_quantity: int | None = None,
    max_order_value: Decimal | None = None,
    actor,
    ip: str | None = None,
) -> tuple[Market, TicketLog]:
    """Create a market trading certificate `code` for EUR, with a zero balance of it for
    every holder, and a `MARKET_CREATED` ticket. Raises ValidationError (by field) for an
    invalid or taken code or settings, creating nothing."""
    market = Market(
        code=str(code or "").strip().upper(),
        name=str(name or "").strip(),
        tick_size=tick_size,
        default_reference_price=default_reference_price,
        buy_fee_rate=buy_fee_rate,
        sell_fee_rate=sell_fee_rate,
        trading_enabled=trading_enabled,
        price_band_pct=price_band_pct,
        slippage_pct=slippage_pct,
        max_order_quantity=max_order_quantity,
        max_order_value=max_order_value,
    )
    market.full_clean()
    with transaction.atomic():
        market.save()
        rows = balances_for_new_asset(asset=market.code)
        ticket = ticket_record(
            action_type="MARKET_CREATED",
            entity_type="Market",
            entity_id=market.pk,
            user=actor,
            after={**_state(market), "balance_rows_created": rows},
            tags=["market", market.code],
            ip=ip,
        )
    return market, ticket


def market_settings_update(
    *, market: Market, changes: Mapping[str, object], actor, ip: str | None = None
) -> TicketLog | None:
    """Change a market's settings (`SETTINGS`: tick, default reference price, fees,
    trading on or off, price band, slippage limit, largest order), under its lock, with a
    `MARKET_SETTINGS_CHANGED` ticket of the settings before and after. A new tick must fit
    every resting order's price. Returns None (and writes nothing) when nothing changes."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise ValueError(f"not market settings: {sorted(unknown)}")
    with transaction.atomic():
        lock_markets([market.pk])
        current = Market.objects.get(pk=market.pk)
        before = _state(current)
        changed = {
            name: value for name, value in changes.items() if getattr(current, name) != value
        }
        if not changed:
            return None
        for name, value in changed.items():
            setattr(current, name, value)
        current.full_clean()
        market_settings_check(market=current, changes=changed)
        # Only the settings: book_version is bumped concurrently by the matching engine.
        current.save(update_fields=list(changed))
        ticket = ticket_record(
            action_type="MARKET_SETTINGS_CHANGED",
            entity_type="Market",
            entity_id=current.pk,
            user=actor,
            payload={name: str(value) for name, value in changed.items()},
            before=before,
            after=_state(current),
            tags=["market", current.code],
            ip=ip,
        )
    for name, value in changed.items():
        setattr(market, name, value)
    return ticket


def market_settings_check(*, market: Market, changes: Mapping[str, object]) -> None:
    """Refuse (ValidationError on the field) settings the market's book cannot take: a
    tick that some resting order's price is not on. Read-only: forms call it to show the
    refusal before anything is saved."""
    tick = changes.get("tick_size")
    if tick is None:
        return
    prices = (
        Order.objects.filter(market=market, status__in=Order.RESTING)
        .values_list("price", flat=True)
        .distinct()
    )
    off_tick = sorted(price for price in prices if price is not None and price % tick)
    if off_tick:
        raise ValidationError(
            {
                "tick_size": f"{len(off_tick)} resting price level(s) are not on a {tick} tick "
                f"(e.g. {format_eur(off_tick[0])}); cancel those orders first."
            }
        )
