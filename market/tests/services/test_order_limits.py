"""Price bands, slippage and order limits as a trader meets them through `order_place`,
and the previous close the band is anchored on (kept on the market row by every trade)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from market.models import LedgerEntry, Market, Order, Trade
from market.services.markets import market_settings_update
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def banded(cea):
    """CEA as production seeds it: ±10 % band, 5 % slippage limit."""
    Market.objects.filter(pk=cea.pk).update(price_band_pct=D("10"), slippage_pct=D("5"))
    cea.refresh_from_db()
    return cea


def place(holder, side, order_type="LIMIT", **fields):
    request = order_request_parse(market_code="CEA", side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def test_a_limit_order_outside_the_band_is_refused_and_changes_nothing(banded):
    buyer = factories.trader(EUR="1000")
    entries = LedgerEntry.objects.count()
    with pytest.raises(ValidationError) as refused:
        place(buyer, "BUY", price="12.59", quantity=1)
    assert refused.value.message_dict["price"] == [
        "The price must lie within today's price band €12.60 – €15.40 "
        "(±10 % of the reference price €14.00)."
    ]
    assert not Order.objects.exists()
    assert LedgerEntry.objects.count() == entries


def test_a_market_order_stops_at_the_slippage_limit_and_the_trader_is_told(banded):
    maker = factories.trader(CEA=100)
    for price in ("14.00", "14.70", "14.80"):
        place(maker, "SELL", price=price, quantity=2)
    buyer = factories.trader(EUR="1000")
    placement = place(buyer, "BUY", "MARKET", quantity=6)
    assert placement.order.status == Order.Status.CANCELLED
    assert placement.order.filled_quantity == 4
    assert "more than 5 % from the best price €14.00 on entry" in placement.message
    assert Order.objects.filter(price=D("14.80"), status=Order.Status.OPEN).exists()
    assert_all_invariants()


def test_trades_keep_the_previous_close_and_the_band_follows_it(banded):
    seller = factories.trader(CEA=100)
    buyer = factories.trader(EUR="10000")
    place(seller, "SELL", price="15.00", quantity=10)
    place(buyer, "BUY", price="15.00", quantity=1)
    market = Market.objects.get(pk=banded.pk)
    today = timezone.now().date()
    assert (market.last_price, market.last_trade_date, market.previous_close) == (
        D("15.00"),
        today,
        None,
    )
    # The next day: yesterday's last trade is the previous close, and the band moves.
    Market.objects.filter(pk=market.pk).update(last_trade_date=today - timedelta(days=1))
    assert Market.objects.get(pk=market.pk).rules.band.describe() == (
        "€13.50 – €16.50 (±10 % of the previous close €15.00)"
    )
    place(seller, "SELL", price="16.50", quantity=1)  # inside the new band
    place(buyer, "BUY", price="15.00", quantity=1)  # trades at 15.00, today's first
    market.refresh_from_db()
    assert (market.last_price, market.last_trade_date, market.previous_close) == (
        D("15.00"),
        today,
        D("15.00"),
    )
    assert Trade.objects.count() == 2


def test_order_limits_are_market_settings_staff_change_with_a_ticket(banded):
    staff = factories.StaffFactory()
    ticket = market_settings_update(
        market=banded,
        changes={"max_order_quantity": 50, "max_order_value": D("500.00")},
        actor=staff,
    )
    assert ticket.after_state["max_order_quantity"] == "50"
    buyer = factories.trader(EUR="10000")
    with pytest.raises(ValidationError) as refused:
        place(buyer, "BUY", price="14.00", quantity=51)
    assert refused.value.message_dict["quantity"] == [
        "At most 50 CEA per order in this market (this order is for 51)."
    ]
    with pytest.raises(ValidationError) as refused:
        place(buyer, "BUY", price="14.00", quantity=36)
    assert "At most €500.00 per order" in refused.value.message_dict["quantity"][0]
    assert place(buyer, "BUY", price="14.00", quantity=35).created


def test_a_market_order_stopped_by_the_band_is_stored_with_its_reason(banded):
    """On PostgreSQL the reason is checked against the column's width, too."""
    maker = factories.trader(CEA=100)
    place(maker, "SELL", price="15.40", quantity=2)
    Market.objects.filter(pk=banded.pk).update(price_band_pct=D("20"))
    place(maker, "SELL", price="16.50", quantity=2)  # inside a ±20 % band
    Market.objects.filter(pk=banded.pk).update(price_band_pct=D("10"), slippage_pct=None)
    placement = place(factories.trader(EUR="1000"), "BUY", "MARKET", quantity=4)
    placement.order.refresh_from_db()
    assert placement.order.filled_quantity == 2
    assert placement.order.status_reason == (
        "unfilled remainder cancelled: the next price €16.50 is outside today's band "
        "€12.60 – €15.40"
    )
    assert "outside today's band" in placement.message
