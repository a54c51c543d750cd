"""Holders and their balance rows.

Every holder has one balance row per asset (EUR and each market's certificate) from the
moment it exists, so money moves lock existing rows and never insert balances. Creating
holders and creating a market both take the house holder's row lock before they read what
the other writes (the markets, the holders), so one always sees what the other committed:
no holder ever misses the row of a new market's asset. The lock is a no-key update lock,
so it does not block the foreign-key checks of ledger entries that name the house (every
fee-paying trade writes one) while a market or a holder is being created.
"""

from collections.abc import Sequence

from django.db import IntegrityError, transaction

from market.core.money import EUR
from market.models import Balance, Holder, Market


def _serialise_with_market_creation() -> None:
    """The lock holder creation and market creation share (see the module docstring)."""
    house = Holder.objects.select_for_update(no_key=True).filter(kind=Holder.Kind.HOUSE)
    list(house.values_list("pk"))


def holders_create(*, kind: str, names: Sequence[str], user=None) -> list[Holder]:
    """Create holders of `kind` with a zero balance of every asset: three statements for
    any number of holders. Runs in the caller's transaction (or its own)."""
    with transaction.atomic():
        _serialise_with_market_creation()
        holders = Holder.objects.bulk_create(
            [Holder(kind=kind, name=name, user=user) for name in names]
        )
        assets = [EUR, *Market.objects.order_by("code").values_list("code", flat=True)]
        Balance.objects.bulk_create(
            Balance(holder=holder, asset=asset) for holder in holders for asset in assets
        )
    return holders


def holder_create(*, kind: str, name: str, user=None) -> Holder:
    """Create one holder with a zero balance of every asset."""
    return holders_create(kind=kind, names=[name], user=user)[0]


def trader_holder_for(user) -> Holder:
    """The trading account of a user, created on first use."""
    holder = Holder.objects.filter(user=user).first()
    if holder is not None:
        return holder
    try:
        with transaction.atomic():
            return holder_create(kind=Holder.Kind.TRADER, name=user.get_username(), user=user)
    except IntegrityError:
        # Two first requests of the same user raced; the other one created it.
        return Holder.objects.get(user=user)


def house_holder() -> Holder:
    return Holder.objects.get(kind=Holder.Kind.HOUSE)


def balances_for_new_asset(*, asset: str) -> int:
    """A zero balance row of `asset` for every holder (a new market's certificate), under
    the lock holder creation takes. Returns how many rows were created."""
    _serialise_with_market_creation()
    existing = Balance.objects.filter(asset=asset)
    before = existing.count()
    holder_ids = Holder.objects.values_list("pk", flat=True).order_by("pk")
    Balance.objects.bulk_create(
        (Balance(holder_id=holder_id, asset=asset) for holder_id in holder_ids.iterator()),
        batch_size=5000,
        ignore_conflicts=True,
    )
    # `bulk_create` counts the rows it tried, conflicts included.
    return existing.count() - before
