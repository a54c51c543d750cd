"""Back-office pages of liquidity: Create Liquidity with its preview, provisioning and
execute; liquidity operations with withdrawal.

Thin views: parse a form, call one service or selector, render a page or one of its
partials (`page.html#partial`, django-template-partials). An HTMX request gets the partial
it swaps in, any other request the full page, so everything also works without
JavaScript. Every POST is CSRF-protected; every page needs a staff user with the
liquidity permission (403 otherwise, the login page when anonymous); provisioning market
makers also needs the market-maker permission.
"""

from dataclasses import dataclass
from decimal import Decimal
from uuid import uuid4

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.http import client_ip, done, render_page, staff_required
from liquidity import selectors
from liquidity.forms import (
    ExecuteForm,
    LiquidityForm,
    OperationFiltersForm,
    ProvisionCreateForm,
    ProvisionFundForm,
)
from liquidity.permissions import MANAGE_LIQUIDITY
from liquidity.plan import REFERENCE_SOURCE_LABELS
from liquidity.services import (
    InsufficientAssets,
    NothingToWithdraw,
    PlanChanged,
    liquidity_execute,
    liquidity_preview,
    liquidity_withdraw,
    withdraw_refusal,
)
from market.core.makers import maker_type_for, side_asset
from market.core.money import EUR, describe
from market.forms import apply_service_errors
from market.models import MarketMakerClient
from market.permissions import MANAGE_MARKET_MAKERS
from market.selectors import market_maker_rows
from market.services.ledger import parse_transfer
from market.services.market_makers import (
    fund_amounts,
    market_makers_create_bulk,
    market_makers_fund_bulk,
)
from market.services.orders import released_by_asset
from market.validation import IdempotencyKeyReused

OPERATIONS_PER_PAGE = 25

CREATE = "liquidity/create.html"
OPERATIONS = "liquidity/operations.html"
DETAIL = "liquidity/operation_detail.html"
WITHDRAW = "liquidity/withdraw_confirm.html"

backoffice = staff_required(MANAGE_LIQUIDITY)


# ============================================================================ create liquidity


def _preview(form: LiquidityForm):
    """The plan for a valid form, or None (the errors are then on the form)."""
    if not form.is_valid():
        return None
    try:
        return liquidity_preview(request=form.liquidity_request)
    except ValidationError as error:
        apply_service_errors(form, error)
        return None


@dataclass(frozen=True)
class FundChoice:
    """A maker that could fund a short side, with what it holds of the side's asset."""

    maker: MarketMakerClient
    available: Decimal


@dataclass(frozen=True)
class FundSummary:
    """What "Fund existing" would deposit, as the form stands: per selected maker (in
    primary-key order, as the service deposits) and in total; or why it cannot tell."""

    selected: int
    shares: tuple[Decimal, ...] = ()
    problem: str = ""

    @property
    def total(self) -> Decimal:
        return sum(self.shares, Decimal(0))

    @property
    def equal(self) -> bool:
        return len(set(self.shares)) <= 1


def _fund_summary(form: ProvisionFundForm, asset: str) -> FundSummary:
    """The deposits the fund form would make: `fund_amounts`, the service's own rule,
    on its raw values (so it can be shown before the form is submitted)."""
    choices = {str(choice.maker.pk) for choice in form.makers}
    selected = [pk for pk in form["market_makers"].value() or [] if str(pk) in choices]
    if not selected:
        return FundSummary(0)
    amount = form["amount"].value()
    given = {"total_amount": amount} if form.splits_total else {"amount_each": amount}
    try:
        shares = fund_amounts(asset=asset, count=len(selected), **given)
    except ValidationError as error:
        return FundSummary(len(selected), problem=" ".join(error.messages))
    return FundSummary(len(selected), tuple(shares))


def _provision_panel(shortfall, market_code: str, bound: dict | None) -> dict:
    """The provisioning forms of one short side: create new makers, or fund existing ones
    (every active maker of the side's type, with its balance: a constant number of
    queries)."""
    side = shortfall.side
    mm_type = maker_type_for(side)
    asset = side_asset(side, market_code)
    candidates = MarketMakerClient.objects.filter(mm_type=mm_type, is_active=True).order_by("pk")
    makers = [
        FundChoice(row.maker, row.balance(asset).available)
        for row in market_maker_rows(candidates)
    ]
    amount = f"{shortfall.shortfall:f}" if asset == EUR else f"{int(shortfall.shortfall)}"
    prefix = side.lower()
    name_prefix = "Liquidity provider" if side == "BID" else f"{asset} asset holder"
    bound = bound or {}
    fund_form = bound.get("fund") or ProvisionFundForm(
        prefix=prefix, makers=makers, initial={"amount": amount}
    )
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
        "fund_form": fund_form,
        "fund_summary": _fund_summary(fund_form, asset),
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
    the reason; success goes to the new operation. The preview's one-time key makes a
    second submit of the same form (a double click, a reload) go to the operation the
    first one made, even while the first is still running; a key reused for a different
    request re-shows the preview, with a new key, and places nothing."""
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
    except IdempotencyKeyReused as error:
        plan = _preview_if_parsed(form)
        notice = error.messages[0]
        if plan is not None:
            notice += " Below is the plan for these inputs: confirm it to place a new operation."
        return _workspace(request, form, plan, notice=notice, notice_level="error")
    except PlanChanged as error:
        return _workspace(
            request, form, error.plan, notice=error.messages[0], notice_level="warning"
        )
    except InsufficientAssets as error:
        return _workspace(
            request, form, error.plan, notice=error.messages[0], notice_level="error"
        )
    except ValidationError as error:
        apply_service_errors(form, error)
        return _workspace(request, form)
    if operation.replayed:
        messages.info(
            request,
            f"Liquidity operation {operation.ticket.ticket_id} was already executed from "
            "this preview; nothing new was placed.",
        )
        return done(request, reverse("liquidity:operation", args=[operation.pk]))
    messages.success(
        request,
        f"Liquidity operation {operation.ticket.ticket_id} placed {operation.orders_created} "
        f"orders on {operation.market.code}: BID {describe(EUR, operation.actual_bid_eur)}"
        f", ASK {describe(EUR, operation.actual_ask_eur)} "
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
    if not request.user.has_perm(MANAGE_MARKET_MAKERS):
        raise PermissionDenied
    form = LiquidityForm(request.POST)
    side = request.POST.get("side")
    if side not in ("BID", "ASK"):
        raise Http404("Unknown side.")
    if not form.is_valid():
        return _workspace(request, form)
    market_code = form.liquidity_request.market.code
    mm_type, asset = maker_type_for(side), side_asset(side, market_code)
    notice = ""
    if kind == "create":
        sub = ProvisionCreateForm(request.POST, prefix=side.lower())
        if sub.is_valid():
            try:
                created = market_makers_create_bulk(
                    count=sub.cleaned_data["count"],
                    mm_type=mm_type,
                    asset=asset,
                    total_amount=sub.cleaned_data["total_amount"],
                    name_prefix=sub.cleaned_data["name_prefix"],
                    created_by=request.user,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                apply_service_errors(sub, error, rename={"amount": "total_amount"})
            else:
                total = parse_transfer(asset, sub.cleaned_data["total_amount"])
                makers = [result.market_maker for result in created]
                notice = (
                    f"Created {_count(len(makers), 'market maker')} ({_codes(makers)}) "
                    f"holding {describe(asset, total)} in total."
                )
    else:
        sub = _bound_fund_form(request, side, mm_type)
        if sub.is_valid():
            amount = sub.cleaned_data["amount"]
            given = {"total_amount": amount} if sub.splits_total else {"amount_each": amount}
            try:
                tickets = market_makers_fund_bulk(
                    market_makers=sub.cleaned_data["market_makers"],
                    asset=asset,
                    actor=request.user,
                    ip=client_ip(request),
                    **given,
                )
            except ValidationError as error:
                apply_service_errors(sub, error, rename={"total_amount": "amount"})
            else:
                notice = _funded_notice(tickets, asset)
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


def _bound_fund_form(request, side: str, mm_type: str) -> ProvisionFundForm:
    """The posted "Fund existing" form of `side`, its choices the active makers of the
    side's type (an inactive one is not a choice)."""
    candidates = MarketMakerClient.objects.filter(mm_type=mm_type, is_active=True)
    return ProvisionFundForm(
        request.POST,
        prefix=side.lower(),
        makers=[FundChoice(maker, Decimal(0)) for maker in candidates.order_by("pk")],
    )


def _funded_notice(tickets, asset: str) -> str:
    shares = [Decimal(ticket.request_payload["amount"]) for ticket in tickets]
    total = describe(asset, sum(shares, Decimal(0)))
    if len(set(shares)) == 1:
        each = f"{describe(asset, shares[0])} each"
    else:
        each = " + ".join(describe(asset, share) for share in shares)
    return f"Funded {_count(len(tickets), 'market maker')} with {total} in total ({each})."


@backoffice
@require_POST
def provision_fund_summary(request):
    """The "Fund existing" summary of a side as its form stands (HTMX, on every change):
    what each selected maker would receive and the total. Changes nothing."""
    if not request.user.has_perm(MANAGE_MARKET_MAKERS):
        raise PermissionDenied
    form = LiquidityForm(request.POST)
    side = request.POST.get("side")
    if side not in ("BID", "ASK") or not form.is_valid():
        raise Http404("Unknown side or market.")
    asset = side_asset(side, form.liquidity_request.market.code)
    sub = _bound_fund_form(request, side, maker_type_for(side))
    context = {
        "p": {"side": side, "asset": asset},
        "fund_summary": _fund_summary(sub, asset),
    }
    return render(request, f"{CREATE}#fund-summary", context)


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


@backoffice
@require_GET
def operations(request):
    """Operations newest first, filtered by market, dates and creator, paginated."""
    filters = OperationFiltersForm(request.GET or None, creators=selectors.operation_creators())
    queryset = selectors.operations_list(filters=filters.filters())
    page = Paginator(queryset, OPERATIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"filters": filters, "page": page, "rows": selectors.operation_rows(page)}
    return render_page(request, OPERATIONS, "operations-table", context)


def _operation_or_404(pk: int) -> selectors.OperationRow:
    operation = selectors.operation_detail(operation_id=pk)
    if operation is None:
        raise Http404("No such liquidity operation.")
    return selectors.operation_rows([operation])[0]


def _detail_context(row: selectors.OperationRow) -> dict:
    operation = row.operation
    # Best price first on each side, bids before asks, as in a book.
    orders = sorted(
        selectors.operation_orders(operation=operation),
        key=lambda o: (o.side != "BUY", -o.price if o.side == "BUY" else o.price, o.pk),
    )
    makers = operation.market_makers_used or []
    refusal = withdraw_refusal(operation, orders_resting=operation.orders_resting)
    return {
        "operation": operation,
        "row": row,
        "orders": orders,
        "makers_used": makers,
        "can_withdraw": refusal is None,
        "withdraw_refusal": refusal,
        "bid_gap": operation.actual_bid_eur - operation.target_bid_eur,
        "ask_gap": operation.actual_ask_eur - operation.target_ask_eur,
        "ladder": row.ladder,
        "reference_label": REFERENCE_SOURCE_LABELS.get(
            operation.reference_source, ""
        ).capitalize(),
    }


@backoffice
@require_GET
def operation_detail(request, pk: int):
    return render_page(request, DETAIL, "operation-body", _detail_context(_operation_or_404(pk)))


@backoffice
@require_http_methods(["GET", "POST"])
def operation_withdraw(request, pk: int):
    """GET: the confirmation (for browsers without JavaScript), or, when nothing is left
    to withdraw, why, with no button. POST: cancel the operation's resting orders and
    release their funds; nothing left refuses, writing nothing."""
    row = _operation_or_404(pk)
    operation = row.operation
    if request.method == "GET":
        context = {
            "operation": operation,
            "row": row,
            "refusal": withdraw_refusal(operation, orders_resting=operation.orders_resting),
        }
        return render_page(request, WITHDRAW, "confirm-card", context)
    try:
        cancelled = liquidity_withdraw(
            operation=operation, user=request.user, ip=client_ip(request)
        )
    except NothingToWithdraw as error:
        messages.error(request, error.messages[0])
    else:
        freed = " and ".join(
            describe(asset, amount)
            for asset, amount in sorted(released_by_asset(cancelled).items())
        )
        messages.success(
            request,
            f"Withdrew {operation.ticket.ticket_id}: cancelled "
            f"{_count(len(cancelled), 'open order')}" + (f", released {freed}." if freed else "."),
        )
    if request.htmx:
        context = _detail_context(_operation_or_404(pk))
        context["flash"] = True
        return render(request, f"{DETAIL}#withdraw-response", context)
    return redirect("liquidity:operation", pk=pk)
