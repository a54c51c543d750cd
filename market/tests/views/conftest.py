"""Fixtures of the cash market's view tests: a small two-sided CEA book and a trader."""

from decimal import Decimal as D

import pytest

from market.models import MarketMakerClient
from market.tests import factories
from market.tests.helpers import place


@pytest.fixture
def book(cea):
    """Market makers resting 3 bid levels (13.90–13.80) and 3 ask levels (14.10–14.30),
    10 CEA each."""
    return small_book()


def small_book():
    """Asks of 10 CEA at 14.10, 14.20 and 14.30; bids of 10 at 13.90, 13.85, 13.80, by two
    market makers; returns their holders (the bids', the asks')."""
    provider = factories.market_maker(MarketMakerClient.Type.LIQUIDITY_PROVIDER, EUR="100000")
    holder = factories.market_maker(MarketMakerClient.Type.ASSET_HOLDER, CEA=10000)
    for step in range(3):
        place(provider.holder, "BUY", price=D("13.90") - D("0.05") * step, quantity=10)
        place(holder.holder, "SELL", price=D("14.10") + D("0.10") * step, quantity=10)
    return provider.holder, holder.holder


@pytest.fixture
def alice(cea):
    return factories.trader("alice", EUR="1000", CEA=50)


@pytest.fixture
def client_alice(client, alice):
    client.force_login(alice.user)
    return client
