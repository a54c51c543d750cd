"""The CSV exports of liquidity: operations (the operations page's filters, all pages) and
program refreshes (their own validated filters). Who may download them, which rows they
hold, what a spreadsheet makes of a hostile note, and queries that do not grow with the
rows."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from liquidity.models import LiquidityOperation, LiquidityProgram, ProgramRefresh
from liquidity.services import liquidity_execute, liquidity_request_parse, liquidity_withdraw
from market.models import MarketMakerClient, TicketLog
from market.services.audit import tickets_record
from market.tests import factories

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
HX = {"HTTP_HX_REQUEST": "true"}
pytestmark = pytest.mark.django_db

OPERATIONS = "/backoffice/liquidity/"
OPERATIONS_CSV = "/backoffice/liquidity/operations.csv"
REFRESHES_CSV = "/backoffice/liquidity/programs/refreshes.csv"
OPERATION_HEADER = [
    "Ticket",
    "Created at (UTC)",
    "Market",
    "State",
    "Created by",
    "Reference price (EUR)",
    "Reference source",
    "Target BID (EUR)",
    "Target ASK (EUR)",
    "Actual BID (EUR)",
    "Actual ASK (EUR)",
    "ASK quantity",
    "Orders created",
    "Withdrawn at (UTC)",
    "Withdrawn by",
    "Program",
    "Notes",
]


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def client(staff):
    client = Client()
    client.force_login(staff)
    return client


def table(response) -> list[dict[str, str]]:
    """The CSV of a streamed response, as dicts by header."""
    assert response.status_code == 200, response.status_code
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


def header(response) -> list[str]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return next(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


def page_tickets(response) -> list[str]:
    return re.findall(
        r"font-semibold text-emerald-700[^>]*>(TKT-[0-9-]+)<", response.content.decode()
    )


def funded_market():
    factories.market_maker(LP, EUR="1000000")
    factories.market_maker(AH, CEA=100000, EUA=100000)


def operation(user, market="CEA", notes=""):
    request = liquidity_request_parse(
        market_code=market, bid_amount_eur="1000", ask_amount_eur="1000", notes=notes
    )
    return liquidity_execute(request=request, user=user)


def program(user, name="Standing CEA", market="CEA"):
    return LiquidityProgram.objects.create(
        name=name, market=factories.market(market), created_by=user
    )


def bulk_operations(count: int, user, *, program=None) -> None:
    """`count` operations written directly (no orders): withdrawn by `user`, half of them
    by `program`. For the query counts, where only the number of rows matters."""
    tickets = tickets_record(
        [TicketLog(action_type="LIQUIDITY_CREATED", entity_type="liquidity") for _ in range(count)]
    )
    now = timezone.now()
    LiquidityOperation.objects.bulk_create(
        LiquidityOperation(
            ticket=ticket,
            market=factories.market("CEA"),
            reference_price=D("10.00"),
            target_bid_eur=D("100"),
            target_ask_eur=D("100"),
            created_by=user,
            withdrawn_at=now,
            withdrawn_by=user,
            program=program if number % 2 else None,
        )
        for number, ticket in enumerate(tickets)
    )


# ============================================================================ access


def liquidity_clerk(django_user_model, username="clerk"):
    """Staff holding the liquidity permission only."""
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    return user


@pytest.mark.parametrize("url", [OPERATIONS_CSV, REFRESHES_CSV])
def test_anonymous_is_sent_to_the_login_page(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", [OPERATIONS_CSV, REFRESHES_CSV])
def test_traders_and_staff_without_the_liquidity_permission_get_403(url, django_user_model):
    trader = django_user_model.objects.create_user("trader", password="pw")
    clerk = django_user_model.objects.create_user("desk", password="pw", is_staff=True)
    for user in (trader, clerk):
        client = Client()
        client.force_login(user)
        assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", [OPERATIONS_CSV, REFRESHES_CSV])
def test_staff_with_the_liquidity_permission_download_a_csv(url, django_user_model):
    client = Client()
    client.force_login(liquidity_clerk(django_user_model))
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="[a-z-]+-\d{4}-\d{2}-\d{2}\.csv"', response["Content-Disposition"]
    )
    assert client.post(url).status_code == 405


# ============================================================================ operations


def test_operations_page_links_the_export_with_its_filters(client, staff):
    page = client.get(OPERATIONS, {"market": "EUA", "created_by": staff.pk, "page": 1})
    assert f'href="{OPERATIONS_CSV}?market=EUA&amp;created_by={staff.pk}"' in page.content.decode()
    # Filtering by HTMX replaces the table with its form, and the link with them.
    partial = client.get(OPERATIONS, {"market": "CEA"}, **HX).content.decode()
    assert f'href="{OPERATIONS_CSV}?market=CEA"' in partial
    assert f'href="{OPERATIONS_CSV}"' in client.get(OPERATIONS).content.decode()


def test_operations_csv_has_one_row_per_operation_with_its_columns(client, staff):
    funded_market()
    plain = operation(staff, notes="Opening book")
    withdrawn = operation(staff, market="EUA")
    liquidity_withdraw(operation=withdrawn, user=staff)
    standing = program(staff)
    LiquidityOperation.objects.filter(pk=plain.pk).update(program=standing)
    response = client.get(OPERATIONS_CSV)
    rows = table(client.get(OPERATIONS_CSV))
    assert header(response) == OPERATION_HEADER
    assert [row["Ticket"] for row in rows] == [withdrawn.ticket.ticket_id, plain.ticket.ticket_id]
    last, first = rows
    plain.refresh_from_db()
    assert first == {
        "Ticket": plain.ticket.ticket_id,
        "Created at (UTC)": plain.created_at.astimezone(UTC).isoformat(),
        "Market": "CEA",
        "State": "active",
        "Created by": staff.username,
        "Reference price (EUR)": f"{plain.reference_price:f}",
        "Reference source": "market default",
        "Target BID (EUR)": "1000.00",
        "Target ASK (EUR)": "1000.00",
        "Actual BID (EUR)": f"{plain.actual_bid_eur:f}",
        "Actual ASK (EUR)": f"{plain.actual_ask_eur:f}",
        "ASK quantity": str(plain.actual_ask_quantity),
        "Orders created": str(plain.orders_created),
        "Withdrawn at (UTC)": "",
        "Withdrawn by": "",
        "Program": str(standing.pk),
        "Notes": "Opening book",
    }
    assert (last["Market"], last["State"], last["Withdrawn by"]) == (
        "EUA",
        "withdrawn",
        staff.username,
    )
    assert last["Withdrawn at (UTC)"].endswith("+00:00")
    assert last["Program"] == ""  # one-shot


def test_operations_csv_holds_exactly_the_rows_the_page_lists(client, staff):
    funded_market()
    other = factories.StaffFactory()
    for _ in range(2):
        operation(staff)
    operation(other, market="EUA")
    LiquidityOperation.objects.filter(market__code="EUA").update(
        created_at=timezone.now() - timedelta(days=3)
    )
    today = timezone.now().date().isoformat()
    for filters in (
        {},
        {"market": "EUA"},
        {"market": "CEA", "created_by": staff.pk},
        {"created_by": other.pk},
        {"date_from": today},
        {"date_to": (timezone.now() - timedelta(days=1)).date().isoformat()},
        {"date_from": "2999-01-01"},
        # Wrong filters: the page ignores them (showing the error), and so does the export.
        {"market": "XYZ"},
        {"date_from": today, "date_to": "2000-01-01"},
        {"date_from": "not a date", "market": "CEA"},
    ):
        shown = page_tickets(client.get(OPERATIONS, filters))
        exported = [row["Ticket"] for row in table(client.get(OPERATIONS_CSV, filters))]
        assert exported == shown, filters
    assert len(page_tickets(client.get(OPERATIONS))) == 3


def test_operations_csv_spans_every_page(client, staff, monkeypatch):
    from liquidity import views

    monkeypatch.setattr(views, "OPERATIONS_PER_PAGE", 2)
    bulk_operations(5, staff)
    assert len(page_tickets(client.get(OPERATIONS, {"page": 2}))) == 2
    assert len(table(client.get(OPERATIONS_CSV, {"page": 2}))) == 5


def test_a_note_cannot_become_a_spreadsheet_formula(client, staff):
    funded_market()
    operation(staff, notes='=HYPERLINK("https://evil.example","click")')
    operation(staff, notes="-2+3")
    notes = [row["Notes"] for row in table(client.get(OPERATIONS_CSV))]
    assert notes == ["'-2+3", '\'=HYPERLINK("https://evil.example","click")']


def queries_to_export(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as queries:
        rows = table(client.get(url, params or {}))
    assert rows
    return len(queries)


def test_operations_csv_queries_do_not_grow_with_rows(
    client, staff, django_assert_max_num_queries
):
    standing = program(staff)
    bulk_operations(2, staff, program=standing)
    few = queries_to_export(client, OPERATIONS_CSV)
    assert few <= 6  # session, user, creators, markets, operations
    bulk_operations(48, staff, program=standing)
    with django_assert_max_num_queries(few):
        assert len(table(client.get(OPERATIONS_CSV, {"market": "CEA"}))) == 50


# ============================================================================ program refreshes

REFRESH_HEADER = [
    "ID",
    "Created at (UTC)",
    "Program ID",
    "Program",
    "Market",
    "Outcome",
    "Reason",
    "Reference price (EUR)",
    "Orders withdrawn",
    "Orders placed",
    "BID placed (EUR)",
    "ASK placed (EUR)",
    "Operation ticket",
    "Ticket",
    "Worker",
]
DAY = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def refresh(program, outcome=ProgramRefresh.Outcome.PLACED, *, days=0, **fields):
    return ProgramRefresh.objects.create(
        program=program,
        outcome=outcome,
        reason=fields.pop("reason", "on schedule"),
        created_at=DAY + timedelta(days=days),
        **fields,
    )


def refresh_ids(client, **filters) -> list[int]:
    return [int(row["ID"]) for row in table(client.get(REFRESHES_CSV, filters))]


def test_refreshes_csv_has_one_row_per_refresh_with_its_columns(client, staff):
    funded_market()
    placed = operation(staff)
    standing = program(staff)
    ran = refresh(
        standing,
        operation=placed,
        ticket=placed.ticket,
        reference_price=D("12.30"),
        orders_withdrawn=3,
        orders_placed=6,
        bid_placed_eur=D("1000.00"),
        ask_placed_eur=D("999.90"),
        worker="worker-1",
    )
    failed = refresh(standing, ProgramRefresh.Outcome.FAILED, days=1, reason="-1 markets open")
    response = client.get(REFRESHES_CSV)
    rows = table(client.get(REFRESHES_CSV))
    assert header(response) == REFRESH_HEADER
    assert [int(row["ID"]) for row in rows] == [failed.pk, ran.pk]
    assert rows[1] == {
        "ID": str(ran.pk),
        "Created at (UTC)": "2026-05-10T12:00:00+00:00",
        "Program ID": str(standing.pk),
        "Program": "Standing CEA",
        "Market": "CEA",
        "Outcome": "Ladder placed",
        "Reason": "on schedule",
        "Reference price (EUR)": "12.30",
        "Orders withdrawn": "3",
        "Orders placed": "6",
        "BID placed (EUR)": "1000.00",
        "ASK placed (EUR)": "999.90",
        "Operation ticket": placed.ticket.ticket_id,
        "Ticket": placed.ticket.ticket_id,
        "Worker": "worker-1",
    }
    assert rows[0]["Outcome"] == "Could not run"
    assert rows[0]["Reason"] == "'-1 markets open"  # never a formula
    assert rows[0]["Operation ticket"] == rows[0]["Reference price (EUR)"] == ""


def test_refreshes_csv_filters_by_program_outcome_and_dates(client, staff):
    cea = program(staff)
    eua = program(staff, "Standing EUA", "EUA")
    first = refresh(cea, days=0)
    failed = refresh(cea, ProgramRefresh.Outcome.FAILED, days=1)
    recentred = refresh(cea, ProgramRefresh.Outcome.RECENTRED, days=2)
    other = refresh(eua, days=1)
    assert refresh_ids(client) == [other.pk, recentred.pk, failed.pk, first.pk]
    assert refresh_ids(client, program=cea.pk) == [recentred.pk, failed.pk, first.pk]
    assert refresh_ids(client, program=eua.pk) == [other.pk]
    assert refresh_ids(client, outcome="failed") == [failed.pk]
    assert refresh_ids(client, since="2026-05-11") == [other.pk, recentred.pk, failed.pk]
    assert refresh_ids(client, until="2026-05-11") == [other.pk, failed.pk, first.pk]
    assert refresh_ids(client, since="2026-05-11", until="2026-05-11") == [other.pk, failed.pk]
    assert refresh_ids(client, program=cea.pk, outcome="placed", until="2026-05-10") == [first.pk]
    assert refresh_ids(client, since="2026-06-01") == []
    assert refresh_ids(client, program="", outcome="", since="", until="") == refresh_ids(client)


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"program": "abc"}, "program: Enter a whole number."),
        ({"program": "0"}, "program: Ensure this value is greater than or equal to 1."),
        ({"program": "987654321"}, "program: There is no liquidity program 987654321."),
        ({"program": str(2**70)}, "program: Ensure this value is less than or equal to"),
        ({"outcome": "exploded"}, "outcome: Select a valid choice."),
        ({"since": "2026-02-30"}, "since: Enter a valid date."),
        ({"until": "yesterday"}, "until: Enter a valid date."),
        (
            {"since": "2026-05-02", "until": "2026-05-01"},
            "until: The end date is before the start",
        ),
    ],
)
def test_a_wrong_refresh_filter_answers_400_saying_which(client, staff, filters, message):
    refresh(program(staff))
    response = client.get(REFRESHES_CSV, filters)
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    body = response.content.decode()
    assert body.startswith("Cannot export with these filters.\n")
    assert message in body


def test_refreshes_csv_queries_do_not_grow_with_rows(client, staff, django_assert_max_num_queries):
    funded_market()
    standing = program(staff)
    placed = operation(staff)
    refresh(standing, operation=placed, ticket=placed.ticket)
    refresh(standing, ProgramRefresh.Outcome.FAILED)
    few = queries_to_export(client, REFRESHES_CSV, {"program": standing.pk})
    assert few <= 4  # session, user, the program exists, refreshes
    ProgramRefresh.objects.bulk_create(
        ProgramRefresh(program=standing, outcome="withdrawn", reason="stop", created_at=DAY)
        for _ in range(48)
    )
    with django_assert_max_num_queries(few):
        assert len(table(client.get(REFRESHES_CSV, {"program": standing.pk}))) == 50
