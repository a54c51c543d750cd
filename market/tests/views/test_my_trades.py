"""My trades, its CSV, the account statement and the fill-notice poll through Django's
test client: what a trader sees of its own fills (and of nobody else's), the filters and
their errors, exact CSV content, and query counts that do not grow with the history."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from market.models import Holder, LedgerEntry, Trade
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.views.my_trades import STATEMENT_COLUMNS, TRADE_COLUMNS

pytestmark = pytest.mark.django_db

D = Decimal
HTMX = {"HX-Request": "true"}
PAGE = "/market/my-trades/"
CSV = "/market/my-trades/export.csv"
STATEMENT = "/market/my-trades/statement.csv"
NOTICES = "/market/my-trades/notices/"


def place(holder, side, *, market="CEA", order_type="LIMIT", **fields):
    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def rows_of(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


@pytest.fixture
def alice(cea):
    return factories.trader("alice", EUR="10000")


@pytest.fixture
def bob(cea):
    return factories.trader("bob", EUR="10000", CEA=500, EUA=100)


@pytest.fixture
def traded(alice, bob):
    """Alice's resting CEA bid #bid, which Bob sells 40 into (Alice maker, Bob taker);
    then Alice lifts 2 of Bob's EUA offer (Alice taker, Bob maker)."""
    bid = place(alice, "BUY", price="13.95", quantity=50).order
    place(bob, "SELL", order_type="MARKET", quantity=40)
    place(bob, "SELL", market="EUA", price="70.00", quantity=5)
    lifted = place(alice, "BUY", market="EUA", order_type="MARKET", quantity=2).order
    return bid, lifted


def client_for(client, holder):
    client.force_login(holder.user)
    return client


# --- the page ---------------------------------------------------------------------------------


def test_my_trades_lists_the_traders_fills_newest_first_with_role_and_fee(client, alice, traded):
    bid, lifted = traded
    response = client_for(client, alice).get(PAGE)
    assert response.status_code == 200
    page = text(response)
    eua, cea = Trade.objects.order_by("-id")
    rows = re.findall(r'data-testid="fill-row" data-trade-id="(\d+)" data-role="(\w+)"', page)
    assert rows == [(str(eua.pk), "TAKER"), (str(cea.pk), "MAKER")]
    assert "€13.95" in page and "€558.00" in page and "€2.79" in page  # 40 × 13.95, 0.5 % fee
    assert f"#{bid.pk}" in page and f"#{lifted.pk}" in page
    assert 'data-testid="fill-count">2 fills<' in page
    # The phone layout lists the same fills as cards.
    cards = re.findall(r'data-testid="fill" data-trade-id="(\d+)" data-role="(\w+)"', page)
    assert cards == rows
    assert 'href="/market/my-trades/export.csv"' in page


def test_another_trader_sees_none_of_them(client, alice, bob, traded):
    carol = factories.trader("carol", EUR="10")
    client_for(client, carol)
    page = text(client.get(PAGE))
    assert 'data-testid="fill-row"' not in page and 'data-testid="no-fills"' in page
    assert rows_of(client.get(CSV)) == [list(TRADE_COLUMNS)]
    # Bob sees the same two trades from his side only.
    client_for(client, bob)
    rows = re.findall(
        r'data-testid="fill-row" data-trade-id="\d+" data-role="(\w+)"', text(client.get(PAGE))
    )
    assert rows == ["MAKER", "TAKER"]


@pytest.mark.parametrize(
    "query, roles",
    [
        ("market=CEA", ["MAKER"]),
        ("market=EUA&role=MAKER", []),
        ("role=TAKER", ["TAKER"]),
        ("side=SELL", []),
        ("side=BUY&role=MAKER", ["MAKER"]),
    ],
)
def test_filters_narrow_the_list_and_the_export_link_keeps_them(
    client, alice, traded, query, roles
):
    page = text(client_for(client, alice).get(f"{PAGE}?{query}"))
    assert (
        re.findall(r'data-testid="fill-row" data-trade-id="\d+" data-role="(\w+)"', page) == roles
    )
    if roles:
        assert f'href="/market/my-trades/export.csv?{query.replace("&", "&amp;")}"' in page
    else:
        assert "No fills match these filters." in page


@pytest.mark.parametrize(
    "query, field, message",
    [
        (
            "market=XYZ",
            "market",
            "Select a valid choice. XYZ is not one of the available choices.",
        ),
        ("side=SIDEWAYS", "side", "Select a valid choice."),
        ("role=both", "role", "Select a valid choice."),
        ("date_from=yesterday", "date_from", "Enter a valid date."),
        (
            "date_from=2026-05-02&date_to=2026-05-01",
            "date_to",
            "The end date is before the start date.",
        ),
    ],
)
def test_a_wrong_filter_is_shown_on_its_field_and_the_csv_refuses_it(
    client, alice, traded, query, field, message
):
    client_for(client, alice)
    response = client.get(f"{PAGE}?{query}")
    assert response.status_code == 200
    page = text(response)
    assert re.search(rf'data-testid="error-{field}">{re.escape(message)}', page), page
    assert 'data-testid="filters-invalid"' in page and 'data-testid="fill-row"' not in page
    assert 'data-testid="export-csv"' not in page
    refused = client.get(f"{CSV}?{query}")
    assert refused.status_code == 400
    assert refused["Content-Type"].startswith("text/plain")
    assert "Cannot export with these filters." in refused.content.decode()
    assert message.split(" XYZ")[0] in refused.content.decode()


def test_dates_filter_by_utc_day_both_included(client, alice, traded):
    eua, cea = Trade.objects.order_by("-id")
    Trade.objects.filter(pk=cea.pk).update(created_at=datetime(2026, 5, 1, 23, 59, 59, tzinfo=UTC))
    Trade.objects.filter(pk=eua.pk).update(created_at=datetime(2026, 5, 2, tzinfo=UTC))
    client_for(client, alice)
    page = text(client.get(f"{PAGE}?date_from=2026-05-01&date_to=2026-05-01"))
    assert re.findall(r'data-testid="fill-row" data-trade-id="(\d+)"', page) == [str(cea.pk)]


def test_the_htmx_filter_answers_the_list_partial(client, alice, traded):
    response = client_for(client, alice).get(f"{PAGE}?market=CEA", headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="my-trades"')
    assert "<html" not in body and "Account statement" not in body
    assert "HX-Request" in response["Vary"]


def seed_fills(alice, bob, count: int):
    """`count` fills of Alice: her resting bid, sold into by Bob one certificate at a time."""
    place(alice, "BUY", price="13.00", quantity=count)
    for _ in range(count):
        place(bob, "SELL", order_type="MARKET", quantity=1)


def test_pages_of_50_newest_first(client, alice, bob):
    seed_fills(alice, bob, 60)
    client_for(client, alice)
    ids = list(Trade.objects.order_by("-id").values_list("id", flat=True))
    first = text(client.get(PAGE))
    assert re.findall(r'data-testid="fill-row" data-trade-id="(\d+)"', first) == [
        str(i) for i in ids[:50]
    ]
    assert "Page 1 of 2" in first and 'href="?page=2"' in first
    second = text(client.get(f"{PAGE}?page=2"))
    assert re.findall(r'data-testid="fill-row" data-trade-id="(\d+)"', second) == [
        str(i) for i in ids[50:]
    ]
    assert text(client.get(f"{PAGE}?page=nope")).count('data-testid="fill-row"') == 50


def query_counts(client) -> dict:
    counts = {}
    for name, url, headers in [
        ("page", PAGE, {}),
        ("page 2", f"{PAGE}?page=2&market=CEA", {}),
        ("partial", f"{PAGE}?role=MAKER", HTMX),
        ("csv", CSV, {}),
        ("statement", f"{STATEMENT}?date_from=2026-01-01&date_to=2026-12-31", {}),
        ("notices", NOTICES, HTMX),
    ]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, headers=headers)
            if response.streaming:
                b"".join(response.streaming_content)
        counts[name] = len(queries.captured_queries)
    return counts


def test_every_view_costs_the_same_for_3_and_60_fills(client, alice, bob):
    seed_fills(alice, bob, 3)
    client_for(client, alice)
    Holder.objects.filter(pk=alice.pk).update(fills_notified_through=10**9)  # nothing new
    small = query_counts(client)
    # session, user, holder, the markets (the filter), the count, the page of fills.
    assert small["page"] == 6
    # session, user, the markets (the filter), holder, the fills (in chunks); the
    # statement: session, user, holder, the assets, the opening sums, the entries.
    assert small["csv"] == 5 and small["statement"] == 6
    assert small["notices"] == 4  # session, user, holder, the maker fills after the marker
    seed_fills(alice, bob, 57)
    assert LedgerEntry.objects.filter(holder=alice).count() > 150
    assert query_counts(client) == small


# --- the CSV export ---------------------------------------------------------------------------


def test_the_csv_has_one_row_per_fill_with_exact_columns_and_decimal_strings(
    client, alice, traded
):
    bid, lifted = traded
    eua, cea = Trade.objects.order_by("-id")
    response = client_for(client, alice).get(CSV)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="my-trades-\d{4}-\d{2}-\d{2}\.csv"', response["Content-Disposition"]
    )
    header, *rows = rows_of(response)
    assert header == [
        "Trade ID",
        "Time (UTC)",
        "Market",
        "Side",
        "Maker/taker",
        "Price (EUR)",
        "Quantity",
        "Value (EUR)",
        "Fee (EUR)",
        "Order ID",
    ]
    assert rows == [
        [
            str(eua.pk),
            eua.created_at.isoformat(),
            "EUA",
            "Buy",
            "Taker",
            "70.00",
            "2",
            "140.00",
            "0.70",
            str(lifted.pk),
        ],
        [
            str(cea.pk),
            cea.created_at.isoformat(),
            "CEA",
            "Buy",
            "Maker",
            "13.95",
            "40",
            "558.00",
            "2.79",
            str(bid.pk),
        ],
    ]
    assert rows[0][1].endswith("+00:00")
    filtered = rows_of(client.get(f"{CSV}?role=MAKER&page=3"))  # every page, same filters
    assert [row[0] for row in filtered[1:]] == [str(cea.pk)]


# --- the account statement ----------------------------------------------------------------------


def statement_rows(client, first: date, last: date):
    response = client.get(f"{STATEMENT}?date_from={first.isoformat()}&date_to={last.isoformat()}")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Disposition"] == (
        f'attachment; filename="account-statement-{first.isoformat()}-to-{last.isoformat()}.csv"'
    )
    header, *rows = rows_of(response)
    assert header == list(STATEMENT_COLUMNS)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_the_statement_opens_lists_and_closes_each_asset_and_adds_up(client, alice, bob, traded):
    bid, _lifted = traded
    today = datetime.now(UTC).date()
    # Alice's funding happened last month: the opening balance of this month.
    funding = LedgerEntry.objects.filter(holder=alice).order_by("id").first()
    LedgerEntry.objects.filter(pk=funding.pk).update(
        created_at=datetime.combine(
            today.replace(day=1) - timedelta(days=1), datetime.min.time(), tzinfo=UTC
        )
    )
    rows = statement_rows(client_for(client, alice), today.replace(day=1), today)
    assert [row["Asset"] for row in rows if row["Line"] != "Entry"] == [
        "EUR",
        "EUR",
        "CEA",
        "CEA",
        "EUA",
        "EUA",
    ]
    eur = [row for row in rows if row["Asset"] == "EUR"]
    assert eur[0]["Line"] == "Opening balance" and eur[-1]["Line"] == "Closing balance"
    assert (eur[0]["Available"], eur[0]["Locked"], eur[0]["Total"]) == (
        "10000.00",
        "0.00",
        "10000.00",
    )
    assert eur[0]["Time (UTC)"] == f"{today.replace(day=1).isoformat()}T00:00:00+00:00"
    entries = eur[1:-1]
    assert entries and all(row["Line"] == "Entry" for row in entries)
    reserve = entries[0]
    assert (reserve["Kind"], reserve["Available change"], reserve["Locked change"]) == (
        "Reserve",
        "-700.99",  # 50 × 13.95 = 697.50, plus the 0.5 % fee (3.49), reserved
        "700.99",
    )
    assert reserve["Order ID"] == str(bid.pk) and reserve["Trade ID"] == ""
    assert any(row["Kind"] == "Fee" and row["Trade ID"] for row in entries)
    # The identity, on the text as downloaded.
    for asset in ("EUR", "CEA", "EUA"):
        lines = [row for row in rows if row["Asset"] == asset]
        opening, closing, changes = lines[0], lines[-1], lines[1:-1]
        for column, change in (("Available", "Available change"), ("Locked", "Locked change")):
            moved = sum((D(row[change]) for row in changes), D(opening[column]))
            assert moved == D(closing[column]), (asset, column)
        balance = alice.balances.get(asset=asset)
        assert (D(closing["Available"]), D(closing["Locked"])) == (
            balance.available,
            balance.locked,
        )
    cea = [row for row in rows if row["Asset"] == "CEA"]
    assert cea[-1]["Available"] == "40"  # certificates as whole numbers


def test_the_statement_is_the_traders_own(client, alice, bob, traded):
    today = datetime.now(UTC).date()
    rows = statement_rows(client_for(client, alice), today, today)
    ids = {int(row["Entry ID"]) for row in rows if row["Entry ID"]}
    assert ids == set(LedgerEntry.objects.filter(holder=alice).values_list("id", flat=True))
    assert not ids & set(LedgerEntry.objects.filter(holder=bob).values_list("id", flat=True))


@pytest.mark.parametrize(
    "query, field, message",
    [
        ("date_from=&date_to=2026-12-01", "date_from", "This field is required."),
        ("date_from=2026-13-01&date_to=2026-12-01", "date_from", "Enter a valid date."),
        (
            "date_from=2026-11-02&date_to=2026-11-01",
            "date_to",
            "The end date is before the start date.",
        ),
        (
            "date_from=2999-01-01&date_to=2999-01-02",
            "date_from",
            "The period cannot start in the future.",
        ),
    ],
)
def test_a_wrong_period_shows_my_trades_with_the_message_on_its_field(
    client, alice, query, field, message
):
    response = client_for(client, alice).get(f"{STATEMENT}?{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    page = text(response)
    assert f'data-testid="statement-error-{field}">{message}<' in page
    assert "<h1" in page and "My trades" in page


# --- fill notices -------------------------------------------------------------------------------


def test_a_passive_fill_toasts_once_out_of_band(client, alice, bob):
    bid = place(alice, "BUY", price="13.95", quantity=50).order
    client_for(client, alice)
    assert client.get(NOTICES, headers=HTMX).status_code == 204
    place(bob, "SELL", order_type="MARKET", quantity=40)
    response = client.get(NOTICES, headers=HTMX)
    assert response.status_code == 200
    body = text(response)
    assert 'hx-swap-oob="beforeend:#toasts"' in body
    assert f"Your buy order #{bid.pk} filled 40 CEA at €13.95 (maker)." in body
    assert body.count('data-testid="fill-toast"') == 1
    assert response["Cache-Control"] == "no-store"
    assert client.get(NOTICES, headers=HTMX).status_code == 204  # once


def test_no_notice_for_the_traders_own_taker_fill(client, alice, bob):
    place(bob, "SELL", price="14.05", quantity=5)
    place(alice, "BUY", order_type="MARKET", quantity=5)
    assert client_for(client, alice).get(NOTICES, headers=HTMX).status_code == 204
    response = client_for(client, bob).get(NOTICES, headers=HTMX)
    assert "Your sell order" in text(response) and "5 CEA at €14.05 (maker)" in text(response)


def test_notices_without_htmx_lead_to_my_trades(client, alice):
    response = client_for(client, alice).get(NOTICES)
    assert response.status_code == 302 and response["Location"] == PAGE


def test_the_cash_market_page_polls_for_notices_and_links_my_trades(client, alice):
    page = text(client_for(client, alice).get("/market/CEA/"))
    assert 'id="toasts"' in page and 'aria-live="polite"' in page
    assert f'hx-get="{NOTICES}"' in page
    assert re.search(r'id="fill-notices"[^>]*hx-trigger="load, book-changed from:body', page)
    assert 'data-testid="my-trades-link"' in page and f'href="{PAGE}"' in page
    assert 'data-testid="nav-my-trades"' in page


def test_the_navigation_marks_my_trades_as_the_current_page(client, alice):
    page = text(client_for(client, alice).get(PAGE))
    assert re.search(
        r'href="/market/my-trades/" data-testid="nav-my-trades" aria-current="page"', page
    )


@pytest.mark.parametrize(
    "url",
    [
        "/market/my-trades/?date_to=9999-12-31",
        "/market/my-trades/export.csv?date_to=9999-12-31",
        "/market/my-trades/statement.csv?date_from=2024-01-01&date_to=9999-12-31",
    ],
)
def test_the_last_day_a_date_can_be_ends_nothing(client, alice, traded, url):
    """9999-12-31 has no next midnight: it was an OverflowError (a 500, or a CSV cut
    off); it is an open end, so everything up to now is in."""
    response = client_for(client, alice).get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"CEA" in body
