"""A trader's own history: My trades (every fill, filtered, paginated, as CSV), the account
statement (CSV), and the fill notices the cash market page polls for.

Each view reads the signed-in user's own holder only, and no URL names a trade, an order
or a holder: there is nothing to guess. The CSVs are written by `config.csv_export`
(formula-safe cells, Decimal in plain digits, times in UTC), in a fixed number of queries.
"""

from datetime import date

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from config.csv_export import csv_refused, csv_response
from market import selectors
from market.core.money import unit_of
from market.core.statement import CLOSING, OPENING
from market.forms import StatementFiltersForm, TradeFiltersForm
from market.services.fill_notices import fill_notices_claim
from market.services.holders import trader_holder_for
from market.trade_history import fill_of, fill_values, fills_for, statement
from market.views.cash_market import trader_required

PAGE = "market/my_trades.html"
NOTICES = "market/_fill_notices.html"
TRADES_PER_PAGE = 50

TRADE_COLUMNS = (
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
)
STATEMENT_COLUMNS = (
    "Asset",
    "Line",
    "Time (UTC)",
    "Entry ID",
    "Kind",
    "Available change",
    "Locked change",
    "Available",
    "Locked",
    "Total",
    "Order ID",
    "Trade ID",
    "Ticket",
)
LINE_LABELS = {OPENING: "Opening balance", CLOSING: "Closing balance"}
SIDE_LABELS = {"BUY": "Buy", "SELL": "Sell"}
ROLE_LABELS = {"MAKER": "Maker", "TAKER": "Taker"}


def _today() -> date:
    return timezone.now().date()


def _trade_filters(request) -> TradeFiltersForm:
    return TradeFiltersForm(request.GET, market_codes=selectors.market_codes())


def _statement_form(request=None) -> StatementFiltersForm:
    today = _today()
    if request is not None:
        return StatementFiltersForm(request.GET, today=today)
    initial = {"date_from": today.replace(day=1), "date_to": today}
    return StatementFiltersForm(initial=initial, today=today)


def _render_page(request, *, statement_form=None, status=200):
    holder = trader_holder_for(request.user)
    filters = _trade_filters(request)
    page, fills = None, []
    if filters.is_valid():
        trades = fills_for(holder=holder, filters=filters.filters())
        page = Paginator(trades, TRADES_PER_PAGE).get_page(request.GET.get("page"))
        fills = [fill_of(holder.pk, row) for row in page]
    context = {
        "filters": filters,
        "filters_valid": page is not None,
        "page": page,
        "fills": fills,
        "statement_form": statement_form or _statement_form(),
    }
    template = f"{PAGE}#my-trades" if request.htmx and statement_form is None else PAGE
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _form_errors(form) -> list[str]:
    return [
        f"{form.fields[name].label if name in form.fields else name}: {message}"
        for name, messages in form.errors.items()
        for message in messages
    ]


@trader_required
@require_GET
def my_trades(request):
    """Every fill of the trader's orders, newest first, 50 a page, filtered by market,
    side, maker or taker, and dates; a filter in error is shown on its field and lists
    nothing."""
    return _render_page(request)


def _fill_cells(fill) -> tuple:
    return (
        fill.trade_id,
        fill.created_at,
        fill.market_code,
        SIDE_LABELS[fill.side],
        ROLE_LABELS[fill.role],
        fill.price,
        fill.quantity,
        fill.value,
        fill.fee,
        fill.order_id,
    )


@trader_required
@require_GET
def my_trades_csv(request):
    """The fills My trades lists for the same query string, every page of them; a wrong
    filter answers 400 saying which."""
    filters = _trade_filters(request)
    if not filters.is_valid():
        return csv_refused(*_form_errors(filters))
    holder = trader_holder_for(request.user)
    fills = fill_values(holder=holder, filters=filters.filters())
    return csv_response("my-trades", TRADE_COLUMNS, (_fill_cells(fill) for fill in fills))


def _amount(asset: str, value):
    return value.quantize(unit_of(asset))


def _statement_cells(line) -> tuple:
    entry, balance, asset = line.entry, line.balance, line.asset
    return (
        asset,
        LINE_LABELS.get(line.line, "Entry"),
        line.at,
        entry.entry_id if entry else None,
        entry.kind if entry else None,
        _amount(asset, entry.available_delta) if entry else None,
        _amount(asset, entry.locked_delta) if entry else None,
        _amount(asset, balance.available),
        _amount(asset, balance.locked),
        _amount(asset, balance.total),
        entry.order_id if entry else None,
        entry.trade_id if entry else None,
        entry.ticket if entry else None,
    )


@trader_required
@require_GET
def statement_csv(request):
    """The account statement of a period (`date_from`, `date_to`: UTC days, inclusive) as
    CSV: per asset the opening balance, each ledger entry with the balance after it, the
    closing balance. A wrong period shows My trades with the message next to its field
    (400)."""
    form = _statement_form(request)
    if not form.is_valid():
        return _render_page(request, statement_form=form, status=400)
    holder = trader_holder_for(request.user)
    result = statement(
        holder=holder,
        date_from=form.cleaned_data["date_from"],
        date_to=form.cleaned_data["date_to"],
    )
    response = csv_response(
        "account-statement", STATEMENT_COLUMNS, (_statement_cells(line) for line in result.lines)
    )
    name = f"account-statement-{result.date_from.isoformat()}-to-{result.date_to.isoformat()}"
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@trader_required
@require_GET
def fill_notices(request):
    """The cash market page's poll for fills of the trader's resting orders by others:
    each new maker fill once, as toasts swapped into the page's toast region out of band;
    204 when there is nothing new. Without htmx, My trades (where every fill is listed)."""
    if not request.htmx:
        return redirect("market:my_trades")
    notices = fill_notices_claim(holder=trader_holder_for(request.user))
    if not notices:
        response = HttpResponse(status=204)
    else:
        response = render(request, NOTICES, {"notices": notices})
    response["Cache-Control"] = "no-store"
    return response
