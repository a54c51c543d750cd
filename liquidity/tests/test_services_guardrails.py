"""Liquidity under the market's guardrails: the staff reference price within the band of
the book's reference unless overridden (and the override recorded), every planned order
inside today's price band."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from liquidity.services import liquidity_execute, liquidity_preview, liquidity_request_parse
from market.models import Market, MarketMakerClient, Order
from market.services.orders import order_place, order_request_parse
from market.tests import factories

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def banded(db):
    cea = factories.market("CEA")
    Market.objects.filter(pk=cea.pk).update(price_band_pct=D("10"))
    factories.market_maker(LP, EUR="100000")
    factories.market_maker(AH, CEA=10000)
    return cea


def request(**fields):
    return liquidity_request_parse(
        market_code="CEA", bid_amount_eur="1000", ask_amount_eur="1000", **fields
    )


def test_a_reference_far_from_the_books_is_refused_with_the_allowed_range(banded):
    with pytest.raises(ValidationError) as refused:
        liquidity_preview(request=request(reference_price="1.00"))
    assert refused.value.message_dict["reference_price"] == [
        "The reference price €1.00 is more than 10 % from the book's reference €14.00: enter "
        "a price within €12.60 – €15.40, or tick the override to use it anyway."
    ]


def test_the_override_is_recorded_on_the_operation_and_its_ticket(banded):
    # The book's reference is its mid, €14.50: ±10 % is €13.05 – €15.95.
    for side, price, funds in (("SELL", "14.60", {"CEA": 10}), ("BUY", "14.40", {"EUR": "100"})):
        order_place(
            owner=factories.trader(**funds),
            request=order_request_parse(
                market_code="CEA", side=side, order_type="LIMIT", price=price, quantity=1
            ),
        )
    with pytest.raises(ValidationError) as refused:
        liquidity_preview(request=request(reference_price="13.00"))
    assert "within €13.05 – €15.95" in refused.value.message_dict["reference_price"][0]
    staff = factories.StaffFactory()
    overridden = request(reference_price="13.00", reference_outside_band="on")
    operation = liquidity_execute(request=overridden, user=staff)
    assert operation.reference_outside_band and operation.reference_price == D("13.00")
    assert operation.ticket.request_payload["reference_outside_band"] is True
    assert operation.ticket.after_state["reference_outside_band"] is True


def test_planned_orders_stay_inside_the_price_band(banded):
    with pytest.raises(ValidationError) as refused:
        liquidity_preview(request=request(reference_price="15.40"))
    assert (
        "would lie outside today's price band €12.60 – €15.40"
        in (refused.value.message_dict["reference_price"][0])
    )
    staff = factories.StaffFactory()
    operation = liquidity_execute(request=request(reference_price="15.30"), user=staff)
    prices = set(Order.objects.filter(ticket=operation.ticket).values_list("price", flat=True))
    assert prices and all(D("12.60") <= price <= D("15.40") for price in prices)
    assert not operation.reference_outside_band
