"""The filter forms of a trader's history: choices from the data, errors on their fields."""

from datetime import date

import pytest

from market.forms import StatementFiltersForm, TradeFiltersForm
from market.trade_history import FillFilters

TODAY = date(2026, 6, 15)


def test_trade_filters_offer_the_markets_given_and_give_plain_filters():
    form = TradeFiltersForm(
        {"market": "UKA", "side": "SELL", "role": "TAKER", "date_from": "2026-06-01"},
        market_codes=["AAA", "UKA"],
    )
    assert [value for value, _ in form.fields["market"].choices] == ["", "AAA", "UKA"]
    assert form.is_valid(), form.errors
    assert form.filters() == FillFilters(
        market="UKA", side="SELL", role="TAKER", date_from=date(2026, 6, 1), date_to=None
    )
    empty = TradeFiltersForm({}, market_codes=["AAA"])
    assert empty.is_valid() and empty.filters() == FillFilters()


@pytest.mark.parametrize(
    "data, field",
    [
        ({"market": "ZZZ"}, "market"),
        ({"side": "buy"}, "side"),  # the values are exact
        ({"role": "maker"}, "role"),
        ({"date_to": "15/06/2026"}, "date_to"),
        ({"date_from": "2026-06-02", "date_to": "2026-06-01"}, "date_to"),
    ],
)
def test_trade_filters_put_each_error_on_its_field(data, field):
    form = TradeFiltersForm(data, market_codes=["AAA"])
    assert not form.is_valid() and list(form.errors) == [field]


@pytest.mark.parametrize(
    "data, errors",
    [
        ({"date_from": "2026-06-01", "date_to": "2026-06-15"}, {}),
        ({"date_from": "2026-06-15", "date_to": "2026-07-31"}, {}),  # may end later: now
        ({"date_to": "2026-06-15"}, {"date_from": ["This field is required."]}),
        (
            {"date_from": "2026-06-16", "date_to": "2026-06-17"},
            {"date_from": ["The period cannot start in the future."]},
        ),
        (
            {"date_from": "2026-06-02", "date_to": "2026-06-01"},
            {"date_to": ["The end date is before the start date."]},
        ),
    ],
)
def test_the_statement_period(data, errors):
    form = StatementFiltersForm(data, today=TODAY)
    assert form.is_valid() == (not errors)
    assert form.errors == errors
