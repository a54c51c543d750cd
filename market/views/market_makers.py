"""Back-office pages of market makers: the list with balances, create, fund, withdraw and
deactivate. Staff holding the market-maker permission only.

Thin views: parse a form, call one service or selector, render a page or the partial of
the element it replaces (`page.html#partial`); every page also works without JavaScript.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from config.csv_export import csv_response
from config.http import client_ip, done, posted, render_page, safe_next, staff_required
from market.core.money import describe
from market.forms import (
    AssetAmountForm,
    MarketMakerCreateForm,
    MarketMakerDeactivateForm,
    MarketMakerFiltersForm,
    apply_service_errors,
)
from market.models import MarketMakerClient
from market.permissions import MANAGE_MARKET_MAKERS
from market.selectors import (
    asset_codes,
    market_maker_balance_values,
    market_maker_rows,
    market_maker_totals,
)
from market.services.ledger import parse_transfer
from market.services.market_makers import (
    deactivate_refusal,
    fund_refusal,
    market_maker_create,
    market_maker_deactivate,
    market_maker_fund,
    market_maker_withdraw,
)

MAKERS_PER_PAGE = 50
MAKERS = "market/market_makers.html"
MAKER_CREATE = "market/market_maker_create.html"
MAKER_TRANSFER = "market/market_maker_transfer.html"
MAKER_DEACTIVATE = "market/market_maker_deactivate.html"
MAKER_REFUSED = "market/market_maker_refused.html"

manage_market_makers = staff_required(MANAGE_MARKET_MAKERS)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@manage_market_makers
@require_GET
def market_makers(request):
    """Market makers with available and locked balances per asset (constant queries)."""
    filters = MarketMakerFiltersForm(request.GET or None)
    queryset = MarketMakerClient.objects.filter(**filters.queryset_filters()).order_by("pk")
    page = Paginator(queryset, MAKERS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "filters": filters,
        "page": page,
        "rows": market_maker_rows(page),
        "assets": asset_codes(),
        "totals": market_maker_totals(),
    }
    return render_page(request, MAKERS, "makers-table", context)


@manage_market_makers
@require_GET
def market_makers_csv(request):
    """The market makers the list shows for the same query string (all pages), with
    available and locked of every asset: EUR and each market's certificate."""
    filters = MarketMakerFiltersForm(request.GET or None)
    makers = MarketMakerClient.objects.filter(**filters.queryset_filters()).order_by("pk")
    assets = asset_codes()
    header = [
        "Code",
        "Name",
        "Type",
        "Active",
        "Created at (UTC)",
        *(f"{asset} {column}" for asset in assets for column in ("available", "locked")),
    ]
    return csv_response("market-makers", header, market_maker_balance_values(makers, assets))


def _maker_row_or_404(pk: int):
    maker = MarketMakerClient.objects.filter(pk=pk).first()
    if maker is None:
        raise Http404("No such market maker.")
    return market_maker_rows([maker])[0]


@manage_market_makers
@require_http_methods(["GET", "POST"])
def market_maker_new(request):
    form = MarketMakerCreateForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            created = market_maker_create(
                name=form.cleaned_data["name"],
                mm_type=form.cleaned_data["mm_type"],
                description=form.cleaned_data["description"],
                funding=form.funding(),
                created_by=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            maker = created.market_maker
            funded = ", ".join(
                describe(asset, parse_transfer(asset, amount))
                for asset, amount in form.funding().items()
            )
            messages.success(
                request,
                f"Created {maker.code} {maker.name} ({maker.get_mm_type_display().lower()})"
                + (f" funded with {funded}." if funded else ", not funded yet."),
            )
            return done(request, safe_next(request, reverse("market_makers:list")))
    return render_page(request, MAKER_CREATE, "action-card", {"form": form})


def _refused(request, row, *, heading: str, refusal: str):
    """An action that would do nothing on this maker: say why, offer no form. A POST
    (a stale page) gets the same answer with 409 Conflict, and nothing is written."""
    context = {
        "maker": row.maker,
        "row": row,
        "heading": heading,
        "refusal": refusal,
        "next": safe_next(request, ""),
    }
    response = render_page(request, MAKER_REFUSED, "action-card", context)
    if request.method == "POST":
        response.status_code = 409
    return response


def _maker_transfer(request, pk: int, *, service, labels: tuple[str, str], done_message, funding):
    """Fund or withdraw one maker: the same form, page and outcome, another service.

    `funding` limits the asset choice to what the maker's type may be funded with;
    a withdrawal may take any asset (a provider whose bids filled holds certificates).
    An inactive maker cannot be funded: its fund page says so and shows no form.
    """
    row = _maker_row_or_404(pk)
    maker = row.maker
    if funding and (refusal := fund_refusal(maker)):
        return _refused(request, row, heading=labels[0], refusal=refusal)
    assets = [asset for asset in asset_codes() if not funding or maker.may_hold(asset)]
    form = AssetAmountForm(posted(request), assets=assets)
    if request.method == "POST" and form.is_valid():
        asset, amount = form.cleaned_data["asset"], form.cleaned_data["amount"]
        try:
            service(
                market_maker=maker,
                asset=asset,
                amount=amount,
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            described = describe(asset, parse_transfer(asset, amount))
            messages.success(request, done_message.format(amount=described, maker=maker))
            return done(request, safe_next(request, reverse("market_makers:list")))
    heading, submit_label = labels
    context = {
        "form": form,
        "maker": maker,
        "row": row,
        "next": safe_next(request, ""),
        "funding": funding,
        "heading": heading,
        "submit_label": submit_label,
    }
    return render_page(request, MAKER_TRANSFER, "action-card", context)


@manage_market_makers
@require_http_methods(["GET", "POST"])
def market_maker_fund_view(request, pk: int):
    return _maker_transfer(
        request,
        pk,
        service=market_maker_fund,
        labels=("Fund", "Deposit"),
        done_message="Deposited {amount} into {maker.code} {maker.name}.",
        funding=True,
    )


@manage_market_makers
@require_http_methods(["GET", "POST"])
def market_maker_withdraw_view(request, pk: int):
    return _maker_transfer(
        request,
        pk,
        service=market_maker_withdraw,
        labels=("Withdraw from", "Withdraw"),
        done_message="Withdrew {amount} from {maker.code} {maker.name}.",
        funding=False,
    )


@manage_market_makers
@require_http_methods(["GET", "POST"])
def market_maker_deactivate_view(request, pk: int):
    row = _maker_row_or_404(pk)
    maker = row.maker
    if refusal := deactivate_refusal(maker):
        return _refused(request, row, heading="Deactivate", refusal=refusal)
    form = MarketMakerDeactivateForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            ticket = market_maker_deactivate(
                market_maker=maker,
                actor=request.user,
                cancel_open_orders=form.cleaned_data["cancel_open_orders"],
                ip=client_ip(request),
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            cancelled = len(ticket.after_state.get("cancelled_order_ids", []))
            messages.success(
                request,
                f"Deactivated {maker.code} {maker.name}"
                + (f"; cancelled {_count(cancelled, 'open order')}." if cancelled else "."),
            )
            return done(request, safe_next(request, reverse("market_makers:list")))
    context = {
        "form": form,
        "maker": maker,
        "open_orders": row.open_orders,
        "next": safe_next(request, ""),
    }
    return render_page(request, MAKER_DEACTIVATE, "action-card", context)
