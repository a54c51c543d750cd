"""Holders and their balance rows. Every holder gets one balance row per asset when it is
created, so services lock existing rows and never insert balances inside a money move."""

from django.db import IntegrityError, transaction

from market.models import Asset, Balance, Holder


def holder_create(*, kind: str, name: str, user=None) -> Holder:
    """Create a holder with a zero balance of every asset."""
    holder = Holder.objects.create(kind=kind, name=name, user=user)
    Balance.objects.bulk_create(Balance(holder=holder, asset=asset) for asset in Asset.values)
    return holder


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
