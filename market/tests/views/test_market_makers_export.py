"""The market makers' CSV export: the list's filters, every page, available and locked of
every asset (EUR and each market's certificate, from the markets' rows), who may
download it, and queries that do not grow with the makers."""

import csv
import io
import re
from datetime import UTC
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from market.models import MarketMakerClient
from market.services.market_makers import market_maker_deactivate
from market.services.markets import market_create
from market.services.orders import order_place, order_request_parse
from market.tests import factories

D = Decimal
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
HX = {"HTTP_HX_REQUEST": "true"}
MAKERS = "/backoffice/market-makers/"
MAKERS_CSV = "/backoffice/market-makers/export.csv"
pytestmark = pytest.mark.django_db


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


def table(response) -> list[dict[str, str]]:
    head, *rows = read(response)
    return [dict(zip(head, row, strict=True)) for row in rows]


def page_codes(response) -> list[str]:
    return re.findall(r'data-testid="maker-row" data-code="([^"]+)"', response.content.decode())


def test_anonymous_is_sent_to_the_login_page():
    response = Client().get(MAKERS_CSV)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={MAKERS_CSV}")


def test_traders_and_staff_without_the_market_maker_permission_get_403(django_user_model):
    trader = django_user_model.objects.create_user("trader", password="pw")
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    for user in (trader, clerk):
        client = Client()
        client.force_login(user)
        assert client.get(MAKERS_CSV).status_code == 403


def test_staff_with_the_market_maker_permission_download_a_csv(django_user_model):
    desk = django_user_model.objects.create_user("desk", password="pw", is_staff=True)
    desk.user_permissions.add(Permission.objects.get(codename="change_marketmakerclient"))
    client = Client()
    client.force_login(desk)
    response = client.get(MAKERS_CSV)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="market-makers-\d{4}-\d{2}-\d{2}\.csv"',
        response["Content-Disposition"],
    )
    assert read(response)[0][:5] == ["Code", "Name", "Type", "Active", "Created at (UTC)"]


def test_the_page_links_the_export_with_its_filters(client):
    page = client.get(MAKERS, {"mm_type": AH, "active": "yes", "page": 1}).content.decode()
    assert f'href="{MAKERS_CSV}?mm_type=ASSET_HOLDER&amp;active=yes"' in page
    # Filtering by HTMX replaces the table; the link beside the filters comes out of band.
    partial = client.get(MAKERS, {"active": "no"}, **HX).content.decode()
    assert partial.lstrip().startswith('<div id="makers-table"')
    assert 'id="makers-export" hx-swap-oob="true"' in partial
    assert f'href="{MAKERS_CSV}?active=no"' in partial
    assert "hx-swap-oob" not in client.get(MAKERS).content.decode()


def test_one_row_per_maker_with_every_assets_available_and_locked(client, staff):
    market_create(code="UKA", name="UK Allowance", tick_size=D("0.01"),
                  default_reference_price=D("40.00"), actor=staff)  # fmt: skip
    lp = factories.market_maker(LP, EUR="5000.50")
    ah = factories.market_maker(AH, CEA=300, UKA=75)
    request = order_request_parse(
        market_code="CEA", side="BUY", order_type="LIMIT", price="10.00", quantity="20"
    )
    order_place(owner=lp.holder, request=request)
    market_maker_deactivate(market_maker=ah, actor=staff, cancel_open_orders=True)
    head, *rows = read(client.get(MAKERS_CSV))
    assert head == [
        "Code", "Name", "Type", "Active", "Created at (UTC)",
        "EUR available", "EUR locked", "CEA available", "CEA locked",
        "EUA available", "EUA locked", "UKA available", "UKA locked",
    ]  # fmt: skip
    lp.refresh_from_db()
    eur_locked = lp.holder.balances.get(asset="EUR").locked
    assert eur_locked > 0
    assert rows == [
        [lp.code, lp.name, "Liquidity provider", "yes",
         lp.created_at.astimezone(UTC).isoformat(),
         f"{D('5000.50') - eur_locked:f}", f"{eur_locked:f}", "0", "0", "0", "0", "0", "0"],
        [ah.code, ah.name, "Asset holder", "no", ah.created_at.astimezone(UTC).isoformat(),
         "0.00", "0.00", "300", "0", "0", "0", "75", "0"],
    ]  # fmt: skip


def test_the_export_holds_exactly_the_makers_the_list_shows(client, staff, monkeypatch):
    makers = [factories.market_maker(LP, EUR="10") for _ in range(2)]
    makers += [factories.market_maker(AH, CEA=5) for _ in range(3)]
    market_maker_deactivate(market_maker=makers[0], actor=staff, cancel_open_orders=True)
    market_maker_deactivate(market_maker=makers[4], actor=staff, cancel_open_orders=True)
    for filters in (
        {"mm_type": LP},
        {"mm_type": AH, "active": "yes"},
        {"active": "no"},
        {"mm_type": "NOPE"},  # a wrong filter: the list ignores it, and so does the export
    ):
        shown = page_codes(client.get(MAKERS, filters))
        assert [row["Code"] for row in table(client.get(MAKERS_CSV, filters))] == shown, filters
    # Every page: the list shows two a page, the export them all.
    from market.views import market_makers as views

    monkeypatch.setattr(views, "MAKERS_PER_PAGE", 2)
    assert len(page_codes(client.get(MAKERS, {"page": 3}))) == 1
    assert [row["Code"] for row in table(client.get(MAKERS_CSV, {"page": 3}))] == [
        maker.code for maker in makers
    ]


def test_a_name_cannot_become_a_spreadsheet_formula(client):
    maker = factories.market_maker(LP, EUR="1")
    MarketMakerClient.objects.filter(pk=maker.pk).update(name="@SUM(1+1)*cmd|'/C calc'!A0")
    assert table(client.get(MAKERS_CSV))[0]["Name"] == "'@SUM(1+1)*cmd|'/C calc'!A0"


def test_queries_do_not_grow_with_the_makers(client, django_assert_max_num_queries):
    for _ in range(2):
        factories.market_maker(AH, CEA=5, EUA=5)
    with CaptureQueriesContext(connection) as queries:
        assert len(table(client.get(MAKERS_CSV))) == 2
    few = len(queries)
    assert few <= 4  # session, user, asset codes, makers with their balances
    for _ in range(48):
        factories.market_maker(LP, EUR="100")
    with django_assert_max_num_queries(few):
        assert len(table(client.get(MAKERS_CSV))) == 50
