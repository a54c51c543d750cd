"""Factories for the market app. Holders come with their balance rows, as in production."""

import itertools

import factory
from django.contrib.auth import get_user_model

from market.models import Holder, Market, MarketMakerClient
from market.services.holders import trader_holder_for
from market.services.ledger import deposit
from market.services.market_makers import market_maker_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "password")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StaffFactory(UserFactory):
    is_staff = True
    is_superuser = True
    username = factory.Sequence(lambda n: f"staff{n}")


_market_maker_numbers = itertools.count(1)


def market(code: str = "CEA") -> Market:
    return Market.objects.get(code=code)


def trader(username: str | None = None, **funds) -> Holder:
    """A trader's holder, funded with e.g. `EUR="1000"`, `CEA=50`."""
    user = UserFactory(**({"username": username} if username else {}))
    holder = trader_holder_for(user)
    fund(holder, **funds)
    return holder


def fund(holder: Holder, **funds) -> Holder:
    for asset, amount in funds.items():
        deposit(holder=holder, asset=asset, amount=amount)
    return holder


def market_maker(mm_type: str = MarketMakerClient.Type.LIQUIDITY_PROVIDER, **funds):
    """A market maker created through the service, funded with e.g. `EUR="1000"` (LP) or
    `CEA=50, EUA=10` (asset holder)."""
    return market_maker_create(
        name=f"MM {next(_market_maker_numbers)}", mm_type=mm_type, funding=funds, created_by=None
    ).market_maker
