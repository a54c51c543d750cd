"""The audit tickets' CSV export in the admin: the rows the changelist's filters, search
and ordering select (every page), with their JSON as text; the changelist's view
permission; queries that do not grow with the tickets."""

import csv
import io
import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from market.models import MarketMakerClient, TicketLog
from market.services.audit import ticket_record, tickets_record
from market.tests import factories

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/market/ticketlog/"
EXPORT = "/admin/market/ticketlog/export/"
HEADER = [
    "Ticket",
    "Created at (UTC)",
    "Action type",
    "Entity type",
    "Entity ID",
    "User",
    "Market maker",
    "Status",
    "Tags",
    "IP address",
    "Related tickets",
    "Request payload",
    "After state",
]


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def client(staff):
    client = Client()
    client.force_login(staff)
    return client


def read(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


def exported(client, params=None) -> list[str]:
    return [row[0] for row in read(client.get(EXPORT, params or {}))[1:]]


def listed(client, params=None) -> list[str]:
    response = client.get(CHANGELIST, params or {})
    assert response.status_code == 200
    return re.findall(
        r'class="field-ticket_id"><a href="[^"]*">([^<]+)</a>', response.content.decode()
    )


@pytest.fixture
def tickets(staff, django_user_model):
    alice = django_user_model.objects.create_user("alice", password="pw")
    maker = factories.market_maker(MarketMakerClient.Type.LIQUIDITY_PROVIDER)
    return [
        ticket_record(
            action_type="ORDER_PLACED",
            entity_type="order",
            entity_id=7,
            user=alice,
            payload={"side": "BUY", "price": "12.50"},
            after={"status": "OPEN"},
            tags=["trader"],
            ip="192.0.2.1",
        ),
        ticket_record(
            action_type="ORDER_PLACED",
            entity_type="order",
            entity_id=8,
            user=alice,
            status=TicketLog.Status.FAILED,
            related=["TKT-2026-000001"],
        ),
        ticket_record(
            action_type="MM_FUNDED",
            entity_type="market_maker",
            entity_id=maker.pk,
            user=staff,
            market_maker=maker,
            payload={"note": "=1+1"},
        ),
    ]


def test_anonymous_and_traders_are_sent_to_the_admin_login(django_user_model):
    trader = django_user_model.objects.create_user("trader", password="pw")
    signed_in = Client()
    signed_in.force_login(trader)
    for client in (Client(), signed_in):
        response = client.get(EXPORT)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


def test_staff_need_the_tickets_view_permission(django_user_model, tickets):
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get(EXPORT).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_ticketlog"))
    client.force_login(django_user_model.objects.get(pk=clerk.pk))
    response = client.get(EXPORT)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="audit-tickets-\d{4}-\d{2}-\d{2}\.csv"',
        response["Content-Disposition"],
    )
    assert len(read(response)) == 1 + TicketLog.objects.count()
    # The changelist links it.
    assert f'href="{EXPORT}' in client.get(CHANGELIST).content.decode()


def test_one_row_per_ticket_with_its_json_as_text(client, tickets):
    placed, failed, funded = tickets
    head, *rows = read(client.get(EXPORT, {"q": "alice"}))
    assert head == HEADER
    by_ticket = {row[0]: dict(zip(HEADER, row, strict=True)) for row in rows}
    assert list(by_ticket) == [failed.ticket_id, placed.ticket_id]  # newest first
    row = by_ticket[placed.ticket_id]
    assert row["Created at (UTC)"].endswith("+00:00")
    assert (row["Action type"], row["Entity type"], row["Entity ID"]) == (
        "ORDER_PLACED",
        "order",
        "7",
    )
    assert (row["User"], row["Market maker"], row["Status"]) == ("alice", "", "SUCCESS")
    assert (row["IP address"], json.loads(row["Tags"])) == ("192.0.2.1", ["trader"])
    assert json.loads(row["Request payload"]) == {"side": "BUY", "price": "12.50"}
    assert json.loads(row["After state"]) == {"status": "OPEN"}
    assert json.loads(by_ticket[failed.ticket_id]["Related tickets"]) == ["TKT-2026-000001"]
    funded_row = dict(
        zip(HEADER, read(client.get(EXPORT, {"q": funded.ticket_id}))[1], strict=True)
    )
    assert funded_row["Market maker"] == funded.market_maker.code
    assert json.loads(funded_row["Request payload"]) == {"note": "=1+1"}


def test_the_export_holds_exactly_the_rows_the_changelist_selects(client, tickets):
    for params in (
        {},
        {"action_type": "ORDER_PLACED"},
        {"status__exact": "FAILED"},
        {"entity_type": "market_maker"},
        {"q": "alice"},
        {"q": "alice", "status__exact": "SUCCESS"},
        {"q": tickets[2].market_maker.code},
        {"o": "1"},  # ordered by ticket id, ascending
        {"q": "nobody"},
    ):
        assert exported(client, params) == listed(client, params), params
    assert len(listed(client, {"action_type": "ORDER_PLACED"})) == 2


def test_the_changelist_links_the_export_with_its_filters_and_search(client, tickets):
    page = client.get(CHANGELIST, {"status__exact": "FAILED", "q": "alice"}).content.decode()
    link = re.search(r'href="(/admin/market/ticketlog/export/[^"]*)"[^>]*>Export CSV', page)
    assert link, "no Export CSV link"
    assert link.group(1).replace("&amp;", "&") == f"{EXPORT}?q=alice&status__exact=FAILED"


def test_every_page_and_wrong_filters_answer_400_never_500(client, staff, tickets):
    tickets_record(
        [TicketLog(action_type="BULK", entity_type="x") for _ in range(120)]
    )  # more than a changelist page
    assert len(exported(client, {"p": "2"})) == TicketLog.objects.count()
    assert len(exported(client, {"p": "99"})) == TicketLog.objects.count()
    assert client.get(EXPORT, {"no_such_field": "1"}).status_code == 400
    assert client.get(EXPORT, {"user__password__startswith": "p"}).status_code == 400


def test_queries_do_not_grow_with_the_tickets(client, staff, django_assert_max_num_queries):
    tickets_record(
        [TicketLog(action_type="A", entity_type="x", user=staff, tags=["t"]) for _ in range(2)]
    )
    with CaptureQueriesContext(connection) as queries:
        assert len(exported(client)) == 2
    few = len(queries)
    tickets_record(
        [TicketLog(action_type="A", entity_type="x", user=staff, tags=["t"]) for _ in range(48)]
    )
    with django_assert_max_num_queries(few):
        assert len(exported(client)) == 50
