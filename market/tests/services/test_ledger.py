"""The ledger (`market.services.ledger`): the balance sheet every money move goes through,
and staff deposits and withdrawals."""

from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from market.core.placement import DEPOSIT, RESERVE, Move
from market.models import Balance, LedgerEntry, TicketLog
from market.services.audit import ticket_record
from market.services.ledger import BalanceSheet, InsufficientFunds, deposit, withdraw
from market.tests import factories
from market.tests.helpers import assert_all_invariants, assert_ledger_matches_balances

pytestmark = pytest.mark.django_db


def reserve(holder, amount) -> Move:
    # A ledger entry always names its cause (a CHECK constraint): here, a ticket.
    cause = ticket_record(action_type="TEST", entity_type="Test")
    return Move(holder.pk, "EUR", RESERVE, -D(amount), D(amount), ticket_id=cause.pk)


def test_a_batch_of_moves_is_checked_as_a_whole_and_written_once(cea):
    first, second = factories.trader(EUR="100"), factories.trader(EUR="100")
    with transaction.atomic():
        sheet = BalanceSheet.lock([(first.pk, "EUR"), (second.pk, "EUR")])
        sheet.apply([reserve(first, "10.50"), reserve(second, "20"), reserve(first, "30.25")])
        sheet.flush()
    rows = {row.holder_id: row for row in Balance.objects.filter(asset="EUR")}
    assert (rows[first.pk].available, rows[first.pk].locked) == (D("59.25"), D("40.75"))
    assert (rows[second.pk].available, rows[second.pk].locked) == (D("80"), D("20"))
    # One immutable ledger entry per move, so a balance is the sum of its entries.
    assert LedgerEntry.objects.filter(kind="RESERVE").count() == 3
    assert_ledger_matches_balances()


def test_a_batch_a_balance_cannot_cover_is_refused_whole(cea):
    holder = factories.trader(EUR="100")
    with transaction.atomic():
        sheet = BalanceSheet.lock([(holder.pk, "EUR")])
        with pytest.raises(InsufficientFunds) as refused:
            sheet.apply([reserve(holder, "60"), reserve(holder, "40.01")], field="quantity")
        assert isinstance(refused.value, ValidationError)
        assert refused.value.needed == D("100.01") and refused.value.available == D("100")
        assert refused.value.message_dict == {
            "quantity": ["Insufficient EUR: €100.01 needed, €100.00 available."]
        }
        row = sheet.balance(holder.pk, "EUR")
        assert (row.available, row.locked) == (D("100"), D("0"))
        sheet.flush()
    assert not LedgerEntry.objects.filter(kind="RESERVE").exists()


def test_locked_funds_never_go_negative(cea):
    holder = factories.trader(EUR="100")
    with transaction.atomic():
        sheet = BalanceSheet.lock([(holder.pk, "EUR")])
        with pytest.raises(AssertionError, match="Locked EUR"):
            sheet.apply([Move(holder.pk, "EUR", "RELEASE", D("1"), D("-1"), ticket_id=1)])


def test_locking_no_balances_locks_nothing_but_the_house_when_asked(db):
    with transaction.atomic():
        assert BalanceSheet.lock([])._rows == {}
        sheet = BalanceSheet.lock([], house=True)
        assert [key[1] for key in sheet._rows] == ["EUR"]
        assert sheet.house_id == sheet.balance(sheet.house_id, "EUR").holder_id


def test_a_balance_row_that_does_not_exist_is_a_lookup_error(cea):
    holder = factories.trader()
    with transaction.atomic(), pytest.raises(LookupError):
        BalanceSheet.lock([(holder.pk, "XYZ")])


def test_deposit_and_withdraw_are_audited_and_the_ticket_is_the_cause(cea):
    holder = factories.trader()
    staff = factories.StaffFactory()
    ticket = deposit(holder=holder, asset="EUR", amount="250.50", actor=staff, note="wire 42")
    assert ticket.action_type == "DEPOSIT" and ticket.user == staff
    assert ticket.request_payload == {"asset": "EUR", "amount": "250.50", "note": "wire 42"}
    assert ticket.after_state["available"] == "250.50"
    (entry,) = LedgerEntry.objects.filter(kind=DEPOSIT)
    assert (entry.ticket_id, entry.available_delta) == (ticket.pk, D("250.50"))
    withdraw(holder=holder, asset="EUR", amount="50", actor=staff)
    assert Balance.objects.get(holder=holder, asset="EUR").available == D("200.50")
    assert_all_invariants()


@pytest.mark.parametrize(
    ("asset", "amount", "message"),
    [
        ("EUR", "13,50", "Use a point for decimals and no thousands separators, e.g. 13.50."),
        ("EUR", "10.000,00", "Use a point for decimals"),
        ("EUR", "1e4", "Use a point for decimals"),
        ("EUR", "１２", "Use a point for decimals"),
        ("CEA", "1,5", "Enter a whole number in digits, without separators, e.g. 150."),
        ("CEA", "١٢", "Enter a whole number in digits"),
        ("CEA", "1.5", "Certificates are whole units"),
        ("XYZ", "1", "Unknown asset 'XYZ': choose EUR, CEA, EUA."),
    ],
)
def test_a_deposit_is_parsed_strictly_and_a_refused_one_changes_nothing(
    cea, asset, amount, message
):
    holder = factories.trader()
    before = (LedgerEntry.objects.count(), TicketLog.objects.count())
    with pytest.raises(ValidationError) as refused:
        deposit(holder=holder, asset=asset, amount=amount)
    assert message in " ".join(refused.value.messages)
    assert (LedgerEntry.objects.count(), TicketLog.objects.count()) == before


def test_withdrawing_more_than_available_is_refused_and_leaves_locked_funds(cea):
    holder = factories.trader(EUR="100")
    with pytest.raises(InsufficientFunds) as refused:
        withdraw(holder=holder, asset="EUR", amount="100.01")
    assert refused.value.message_dict == {
        "amount": ["Insufficient EUR: €100.01 needed, €100.00 available."]
    }
    assert Balance.objects.get(holder=holder, asset="EUR").available == D("100")
