"""Factories for the market app. Holders come with their balance rows, as in production."""

import factory
from django.contrib.auth import get_user_model

from market.models import Holder, Market, MarketMakerClient
from market.services.holders import holder_create, trader_holder_for
from market.services.ledger import deposit


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
    holder = holder_create(kind=Holder.Kind.MARKET_MAKER, name="MM")
    maker = MarketMakerClient.objects.create(holder=holder, name="MM", mm_type=mm_type)
    maker.code = f"MM-{maker.pk:03d}"
    maker.save(update_fields=["code"])
    fund(holder, **funds)
    return maker
