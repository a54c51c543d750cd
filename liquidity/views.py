"""Back-office pages (SPEC §10): Create Liquidity with its preview, provisioning and execute;
liquidity operations; market makers.

Thin views: parse a form, call one service or selector, render a page or one of its
partials (`page.html#partial`, django-template-partials). An HTMX request gets the partial
it swaps in, any other request the full page, so everything also works without
JavaScript. Every POST is CSRF-protected; every page needs a staff user with the
`liquidity.manage_liquidity` permission (403 otherwise, the login page when anonymous).
"""

from collections import defaultdict
from decimal import Decimal
from functools import wraps
from uuid import uuid4

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from liquidity import selectors
from liquidity.forms import (
    ExecuteForm,
    LiquidityForm,
    MarketMakerCreateForm,
    MarketMakerDeactivateForm,
    MarketMakerFiltersForm,
    MarketMakerFundForm,
    OperationFiltersForm,
    ProvisionCreateForm,
    ProvisionFundForm,
    apply_errors,
    side_asset,
    side_maker_type,
)
from liquidity.plan import REFERENCE_SOURCE_LABELS
from liquidity.services import (
    InsufficientAssets,
    PlanChanged,
    liquidity_execute,
    liquidity_preview,
    liquidity_withdraw,
)
from market.models import Asset, Balance, Holder, MarketMakerClient
from market.services.ledger import describe, parse_transfer
from market.services.market_makers import (
    market_maker_create,
    market_maker_deactivate,
    market_maker_fund,
    market_maker_withdraw,
    market_makers_create_bulk,
    market_makers_fund_bulk,
    market_makers_with_balances,
    open_order_counts,
)

PERMISSION = "liquidity.manage_liquidity"
OPERATIONS_PER_PAGE = 25
MAKERS_PER_PAGE = 50

CREATE = "liquidity/create.html"
OPERATIONS = "liquidity/operations.html"
DETAIL = "liquidity/operation_detail.html"
WITHDRAW = "liquidity/withdraw_confirm.html"
MAKERS = "backoffice/market_makers.html"
MAKER_CREATE = "backoffice/market_maker_create.html"
MAKER_TRANSFER = "backoffice/market_maker_transfer.html"
MAKER_DEACTIVATE = "backoffice/market_maker_deactivate.html"


def backoffice(view):
    """Login required (anonymous → login page); staff with the liquidity permission only
    (anyone else logged in → 403)."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        user = request.user
        if not (user.is_active and user.is_staff and user.has_perm(PERMISSION)):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return login_required(guarded)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def render_page(request, template: str, partial: str, context: dict):
    """The partial to an HTMX request, the whole page otherwise."""
    return render(request, f"{template}#{partial}" if request.htmx else template, context)


def done(request, url: str):
    """After a successful POST: HTMX follows `HX-Redirect`, a browser a 302. (Not
    `redirect()`: it would take a `next` without a slash for a view name to reverse.)"""
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseRedirect(url)


def posted(request):
    """The POST data of a POST (even when empty, so the form is bound), else None."""
    return request.POST if request.method == "POST" else None


def safe_next(request, default: str) -> str:
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url.startswith("/") and url_has_allowed_host_and_scheme(
        url, {request.get_host()}, request.is_secure()
    ):
        return url
    return default


# ============================================================================ create liquidity


def _preview(form: LiquidityForm):
    """The plan for a valid form, or None (the errors are then on the form)."""
    if not form.is_valid():
        return None
    try:
        return liquidity_preview(request=form.liquidity_request)
    except ValidationError as error:
        apply_errors(form, error)
        return None


def _provision_panel(shortfall, market_code: str, bound: dict | None) -> dict:
    """The provisioning forms of one short side: create new makers, or fund existing ones
    (every active maker of the side's type, with its balance, in one query)."""
    side = shortfall.side
    mm_type = side_maker_type(side)
    asset = side_asset(side, market_code)
    makers = list(
        market_makers_with_balances(
            MarketMakerClient.objects.filter(mm_type=mm_type, is_active=True)
        ).order_by("pk")
    )
    for maker in makers:
        maker.asset_available = getattr(maker, f"{asset.lower()}_available")
    amount = f"{shortfall.shortfall:f}" if asset == Asset.EUR else f"{int(shortfall.shortfall)}"
    prefix = side.lower()
    name_prefix = "Liquidity provider" if side == "BID" else f"{asset} asset holder"
    bound = bound or {}
    return {
        "side": side,
        "shortfall": shortfall,
        "asset": asset,
        "mm_type": mm_type,
        "type_label": MarketMakerClient.Type(mm_type).label.lower(),
        "create_form": bound.get("create")
        or ProvisionCreateForm(
            prefix=prefix,
            initial={"count": 1, "total_amount": amount, "name_prefix": name_prefix},
        ),
        "fund_form": bound.get("fund")
        or ProvisionFundForm(prefix=prefix, makers=makers, initial={"amount_each": amount}),
        "open": bound.get("kind"),
    }


def _workspace(
    request,
    form: LiquidityForm,
    plan=None,
    *,
    notice: str = "",
    notice_level: str = "info",
    bound: dict | None = None,
):
    """Render the Create Liquidity page, or (HTMX) its preview plus the form fields
    swapped out of band, so field errors always show next to their inputs."""
    context = {
        "form": form,
        "plan": plan,
        "liquidity_request": form.liquidity_request,
        "notice": notice,
        "notice_level": notice_level,
        "provisions": [],
        "oob_fields": bool(request.htmx),
    }
    if plan is not None:
        # A fresh key per preview: submitting this preview twice makes one operation.
        context["idempotency_key"] = uuid4().hex
        context["makers_count"] = len(plan.bid_plan.allocations) + len(plan.ask_plan.allocations)
        bound = bound or {}
        context["provisions"] = [
            _provision_panel(shortfall, plan.certificate_type, bound.get(shortfall.side))
            for shortfall in plan.shortfalls
        ]
    return render_page(request, CREATE, "preview-response", context)


@backoffice
@require_GET
def liquidity_new(request):
    """The empty Create Liquidity page (HTMX: the empty preview, e.g. after Cancel)."""
    context = {"form": LiquidityForm(), "plan": None, "provisions": []}
    return render_page(request, CREATE, "plan-preview", context)


@backoffice
@require_POST
def liquidity_preview_view(request):
    form = LiquidityForm(request.POST)
    return _workspace(request, form, _preview(form))


@backoffice
@require_POST
def liquidity_execute_view(request):
    """Place the previewed plan. A moved market or a shortfall re-shows the preview with
    the reason; success goes to the new operation."""
    form = ExecuteForm(request.POST)
    if not form.is_valid():
        return _workspace(request, form, _preview_if_parsed(form))
    try:
        operation = liquidity_execute(
            request=form.liquidity_request,
            user=request.user,
            fingerprint=form.cleaned_data["fingerprint"],
            idempotency_key=form.cleaned_data["idempotency_key"],
            ip=client_ip(request),
        )
    except PlanChanged as error:
        return _workspace(
            request, form, error.plan, notice=error.messages[0], notice_level="warning"
        )
    except InsufficientAssets as error:
        return _workspace(
            request, form, error.plan, notice=error.messages[0], notice_level="error"
        )
    except ValidationError as error:
        apply_errors(form, error)
        return _workspace(request, form)
    messages.success(
        request,
        f"Liquidity operation {operation.ticket.ticket_id} placed {operation.orders_created} "
        f"orders on {operation.market.code}: BID {describe(Asset.EUR, operation.actual_bid_eur)}"
        f", ASK {describe(Asset.EUR, operation.actual_ask_eur)} "
        f"({describe(operation.market.code, operation.actual_ask_quantity)}).",
    )
    return done(request, reverse("liquidity:operation", args=[operation.pk]))


def _preview_if_parsed(form):
    """For an execute form whose hidden plan fields are missing: the preview, if the
    amounts themselves are fine."""
    if form.liquidity_request is None:
        return None
    try:
        return liquidity_preview(request=form.liquidity_request)
    except ValidationError:
        return None


def _provision(request, kind: str):
    """Create or fund market makers for a short side, then show the refreshed preview
    with the same inputs. A refused provisioning keeps the preview and shows why."""
    form = LiquidityForm(request.POST)
    side = request.POST.get("side")
    if side not in ("BID", "ASK"):
        raise Http404("Unknown side.")
    if not form.is_valid():
        return _workspace(request, form)
    market_code = form.liquidity_request.market.code
    mm_type, asset = side_maker_type(side), side_asset(side, market_code)
    notice = ""
    if kind == "create":
        sub = ProvisionCreateForm(request.POST, prefix=side.lower())
        if sub.is_valid():
            try:
                makers = market_makers_create_bulk(
                    count=sub.cleaned_data["count"],
                    mm_type=mm_type,
                    asset=asset,
                    total_amount=sub.cleaned_data["total_amount"],
                    name_prefix=sub.cleaned_data["name_prefix"],
                    created_by=request.user,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                apply_errors(sub, error, rename={"amount": "total_amount"})
            else:
                total = parse_transfer(asset, sub.cleaned_data["total_amount"])
                notice = (
                    f"Created {_count(len(makers), 'market maker')} ({_codes(makers)}) "
                    f"holding {describe(asset, total)} in total."
                )
    else:
        candidates = MarketMakerClient.objects.filter(mm_type=mm_type, is_active=True)
        sub = ProvisionFundForm(
            request.POST, prefix=side.lower(), makers=candidates.order_by("pk")
        )
        if sub.is_valid():
            try:
                tickets = market_makers_fund_bulk(
                    market_makers=sub.cleaned_data["market_makers"],
                    asset=asset,
                    amount_each=sub.cleaned_data["amount_each"],
                    actor=request.user,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                apply_errors(sub, error, rename={"amount": "amount_each"})
            else:
                each = parse_transfer(asset, sub.cleaned_data["amount_each"])
                notice = (
                    f"Funded {_count(len(tickets), 'market maker')} with "
                    f"{describe(asset, each)} each."
                )
    bound = None if notice else {side: {kind: sub, "kind": kind}}
    plan = _preview(form)
    return _workspace(
        request,
        form,
        plan,
        notice=notice,
        notice_level="success" if notice else "info",
        bound=bound,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _codes(makers) -> str:
    codes = [maker.code for maker in makers]
    return ", ".join(codes) if len(codes) <= 4 else f"{codes[0]} … {codes[-1]}"


@backoffice
@require_POST
def provision_create(request):
    return _provision(request, "create")


@backoffice
@require_POST
def provision_fund(request):
    return _provision(request, "fund")


# ============================================================================ operations


def _annotate(operation):
    operation.state = selectors.operation_state(operation)
    operation.progress = selectors.fill_pct(operation)
    return operation


@backoffice
@require_GET
def operations(request):
    """Operations newest first, filtered by market, dates and creator, paginated."""
    creators = (
        get_user_model()
        .objects.filter(liquidity_operations__isnull=False)
        .distinct()
        .order_by("username")
    )
    filters = OperationFiltersForm(request.GET or None, creators=list(creators))
    queryset = selectors.operations_list(filters=filters.filters())
    page = Paginator(queryset, OPERATIONS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [_annotate(operation) for operation in page]
    context = {"filters": filters, "page": page, "rows": rows}
    return render_page(request, OPERATIONS, "operations-table", context)


def _operation_or_404(pk: int):
    operation = selectors.operation_detail(operation_id=pk)
    if operation is None:
        raise Http404("No such liquidity operation.")
    return _annotate(operation)


def _detail_context(operation) -> dict:
    # Best price first on each side, bids before asks, as in a book.
    orders = sorted(
        selectors.operation_orders(operation=operation),
        key=lambda o: (o.side != "BUY", -o.price if o.side == "BUY" else o.price, o.pk),
    )
    makers = operation.market_makers_used or []
    return {
        "operation": operation,
        "orders": orders,
        "makers_used": makers,
        "can_withdraw": operation.orders_resting > 0,
        "bid_gap": operation.actual_bid_eur - operation.target_bid_eur,
        "ask_gap": operation.actual_ask_eur - operation.target_ask_eur,
        "reference_label": REFERENCE_SOURCE_LABELS.get(
            operation.reference_source, ""
        ).capitalize(),
    }


@backoffice
@require_GET
def operation_detail(request, pk: int):
    operation = _operation_or_404(pk)
    return render_page(request, DETAIL, "operation-body", _detail_context(operation))


@backoffice
@require_http_methods(["GET", "POST"])
def operation_withdraw(request, pk: int):
    """GET: the confirmation (for browsers without JavaScript). POST: cancel the
    operation's resting orders and release their funds."""
    operation = _operation_or_404(pk)
    if request.method == "GET":
        return render_page(request, WITHDRAW, "confirm-card", {"operation": operation})
    cancelled = liquidity_withdraw(operation=operation, user=request.user, ip=client_ip(request))
    released: dict[str, Decimal] = defaultdict(Decimal)
    for order in cancelled:
        released[order.reserve_asset] += order.released
    freed = " and ".join(
        describe(asset, released[asset]) for asset in Asset.values if asset in released
    )
    messages.success(
        request,
        f"Withdrew {operation.ticket.ticket_id}: cancelled {_count(len(cancelled), 'open order')}"
        + (f", released {freed}." if freed else "."),
    )
    if request.htmx:
        context = _detail_context(_operation_or_404(pk))
        context["flash"] = True
        return render(request, f"{DETAIL}#withdraw-response", context)
    return redirect("liquidity:operation", pk=pk)


# ============================================================================ market makers


@backoffice
@require_GET
def market_makers(request):
    """Market makers with available and locked balances per asset (constant queries)."""
    filters = MarketMakerFiltersForm(request.GET or None)
    queryset = market_makers_with_balances(
        MarketMakerClient.objects.filter(**filters.queryset_filters())
    ).order_by("pk")
    page = Paginator(queryset, MAKERS_PER_PAGE).get_page(request.GET.get("page"))
    makers = list(page)
    counts = open_order_counts(makers)
    for maker in makers:
        maker.open_orders = counts.get(maker.pk, 0)
    totals = {
        row["asset"]: row
        for row in Balance.objects.filter(
            holder__kind=Holder.Kind.MARKET_MAKER, holder__market_maker__is_active=True
        )
        .values("asset")
        .annotate(available=Sum("available"), locked=Sum("locked"))
    }
    context = {
        "filters": filters,
        "page": page,
        "makers": makers,
        "totals": [(asset, totals.get(asset)) for asset in Asset.values],
    }
    return render_page(request, MAKERS, "makers-table", context)


def _maker_or_404(pk: int) -> MarketMakerClient:
    maker = market_makers_with_balances(MarketMakerClient.objects.filter(pk=pk)).first()
    if maker is None:
        raise Http404("No such market maker.")
    maker.balances = [
        (
            asset,
            getattr(maker, f"{asset.lower()}_available"),
            getattr(maker, f"{asset.lower()}_locked"),
        )
        for asset in Asset.values
    ]
    return maker


@backoffice
@require_http_methods(["GET", "POST"])
def market_maker_new(request):
    form = MarketMakerCreateForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            maker = market_maker_create(
                name=form.cleaned_data["name"],
                mm_type=form.cleaned_data["mm_type"],
                description=form.cleaned_data["description"],
                funding=form.funding(),
                created_by=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            funded = ", ".join(
                describe(a, parse_transfer(a, v)) for a, v in form.funding().items()
            )
            messages.success(
                request,
                f"Created {maker.code} {maker.name} ({maker.get_mm_type_display().lower()})"
                + (f" funded with {funded}." if funded else ", not funded yet."),
            )
            return done(request, safe_next(request, reverse("liquidity:market-makers")))
    return render_page(request, MAKER_CREATE, "action-card", {"form": form})


def _maker_transfer(request, pk: int, *, service, labels: tuple[str, str], done_message, funding):
    """Fund or withdraw one maker: the same form, page and outcome, another service.

    `funding` limits the asset choice to what the maker's type may be funded with;
    a withdrawal may take any asset (a provider whose bids filled holds certificates).
    """
    maker = _maker_or_404(pk)
    assets = {"assets": maker.funding_assets} if funding else {}
    form = MarketMakerFundForm(posted(request), **assets)
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
            apply_errors(form, error)
        else:
            described = describe(asset, parse_transfer(asset, amount))
            messages.success(request, done_message.format(amount=described, maker=maker))
            return done(request, safe_next(request, reverse("liquidity:market-makers")))
    heading, submit_label = labels
    context = {
        "form": form,
        "maker": maker,
        "next": safe_next(request, ""),
        "funding": funding,
        "heading": heading,
        "submit_label": submit_label,
    }
    return render_page(request, MAKER_TRANSFER, "action-card", context)


@backoffice
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


@backoffice
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


@backoffice
@require_http_methods(["GET", "POST"])
def market_maker_deactivate_view(request, pk: int):
    maker = get_object_or_404(MarketMakerClient, pk=pk)
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
            apply_errors(form, error)
        else:
            cancelled = len(ticket.after_state.get("cancelled_order_ids", []))
            messages.success(
                request,
                f"Deactivated {maker.code} {maker.name}"
                + (f"; cancelled {_count(cancelled, 'open order')}." if cancelled else "."),
            )
            return done(request, safe_next(request, reverse("liquidity:market-makers")))
    open_orders = open_order_counts([maker]).get(maker.pk, 0)
    context = {
        "form": form,
        "maker": maker,
        "open_orders": open_orders,
        "next": safe_next(request, ""),
    }
    return render_page(request, MAKER_DEACTIVATE, "action-card", context)
