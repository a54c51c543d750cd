import pytest

from market.tests import factories


@pytest.fixture
def cea(db):
    return factories.market("CEA")


@pytest.fixture
def eua(db):
    return factories.market("EUA")
