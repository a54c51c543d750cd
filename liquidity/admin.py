"""Django admin for liquidity operations: read-only history with the orders each placed,
state and fill progress, and withdrawal through `liquidity_withdraw` (the service the
back-office pages use), recorded in each operation's History. Its extra pages are
templates under `templates/admin/liquidity/`."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.http import client_ip
from liquidity.models import LiquidityAlert, LiquidityOperation, LiquidityProgram, ProgramRefresh
from liquidity.permissions import MANAGE_LIQUIDITY
from liquidity.selectors import (
    fill_pct,
    operation_ladder,
    operation_rows,
    operation_state,
    with_progress,
)
from liquidity.services import NothingToWithdraw, liquidity_withdraw, withdraw_refusal
from market.core.money import describe
from market.services.orders import released_by_asset
from market.templatetags.money import amount, certificates, eur


@admin.register(LiquidityOperation)
class LiquidityOperationAdmin(admin.ModelAdmin):
    list_display = (
        "ticket",
        "market",
        "reference",
        "target_bid",
        "actual_bid",
        "target_ask",
        "actual_ask",
        "actual_ask_certificates",
        "orders_created",
        "state",
        "filled",
        "created_by",
        "created_at",
        "withdrawn_at",
    )
    list_filter = ("market", "created_at", "withdrawn_at")
    search_fields = ("ticket__ticket_id", "notes", "created_by__username")
    list_select_related = ("ticket", "market", "created_by")
    ordering = ("-id",)
    date_hierarchy = "created_at"
    readonly_fields = ("ladder_placed", "orders_placed")
    exclude = ("ladder",)  # shown as `ladder_placed`, not as raw JSON
    actions = ["withdraw_selected"]
    change_form_template = "admin/liquidity/liquidityoperation/change_form.html"

    def get_queryset(self, request):
        return with_progress(super().get_queryset(request))

    def has_manage_liquidity_permission(self, request) -> bool:
        return request.user.has_perm(MANAGE_LIQUIDITY)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Orders")
    def orders_placed(self, obj):
        """The orders the operation's ticket placed, best price first (one query)."""
        orders = obj.orders.select_related("owner__market_maker", "market").order_by(
            "side", "price", "id"
        )
        rows = (
            (
                reverse("admin:market_order_change", args=[order.pk]),
                order.pk,
                order.owner.market_maker.code,
                order.get_side_display(),
                eur(order.price),
                certificates(order.quantity),
                certificates(order.filled_quantity),
                amount(order.reserved, order.reserve_asset),
                order.get_status_display(),
            )
            for order in orders
        )
        return format_html(
            "<table><tr><th>Order</th><th>Market maker</th><th>Side</th><th>Price</th>"
            "<th>Quantity</th><th>Filled</th><th>Reserved</th><th>Status</th></tr>{}</table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                "<td>{}</td><td>{}</td><td>{}</td></tr>",
                rows,
            ),
        )

    @admin.display(description="Ladder")
    def ladder_placed(self, obj):
        """The levels placed (distance from the reference, share of each side)."""
        ladder = operation_ladder(obj)
        if ladder is None:
            return format_html("Cannot be read: <code>{}</code>", obj.ladder)
        return format_html(
            "<table><tr><th>Level</th><th>Distance</th><th>Share</th></tr>{}</table><p>{} {}</p>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{} %</td><td>{} %</td></tr>",
                (
                    (number, level["distance_pct"], level["share_pct"])
                    for number, level in enumerate(ladder.as_data(), start=1)
                ),
            ),
            ladder.as_text(),
            "(default)" if ladder.is_default else "(custom)",
        )

    @admin.display(description="Reference", ordering="reference_price")
    def reference(self, obj):
        return eur(obj.reference_price)

    @admin.display(description="Target bid", ordering="target_bid_eur")
    def target_bid(self, obj):
        return eur(obj.target_bid_eur)

    @admin.display(description="Actual bid", ordering="actual_bid_eur")
    def actual_bid(self, obj):
        return eur(obj.actual_bid_eur)

    @admin.display(description="Target ask", ordering="target_ask_eur")
    def target_ask(self, obj):
        return eur(obj.target_ask_eur)

    @admin.display(description="Actual ask", ordering="actual_ask_eur")
    def actual_ask(self, obj):
        return eur(obj.actual_ask_eur)

    @admin.display(description="Ask certificates", ordering="actual_ask_quantity")
    def actual_ask_certificates(self, obj):
        return certificates(obj.actual_ask_quantity)

    @admin.display(description="State")
    def state(self, obj):
        return operation_state(obj)

    @admin.display(description="Filled")
    def filled(self, obj):
        return f"{fill_pct(obj)} %"

    # --- withdrawal: an object tool on the change page, and a changelist action

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_withdraw": self.has_manage_liquidity_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "<int:object_id>/withdraw/",
                self.admin_site.admin_view(self.withdraw_view),
                name="liquidity_liquidityoperation_withdraw",
            ),
            *super().get_urls(),
        ]

    def _confirmation(
        self, request, operations, *, title, back_url, action="", selected=(), skipped=""
    ):
        context = {
            "skipped": skipped,
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "rows": operation_rows(operations),
            "back_url": back_url,
            "submit_label": "Withdraw",
            "action": action,
            "selected": selected,
        }
        return TemplateResponse(
            request, "admin/liquidity/liquidityoperation/withdraw.html", context
        )

    def _withdraw(self, request, operations) -> None:
        """Withdraw each operation (one transaction each) and report what was released;
        one that turns out to have nothing left (filled meanwhile) is reported, unwritten."""
        cancelled, withdrawn = [], []
        for operation in operations:
            try:
                orders = liquidity_withdraw(
                    operation=operation, user=request.user, ip=client_ip(request)
                )
            except NothingToWithdraw as error:
                self.message_user(request, error.messages[0], messages.WARNING)
                continue
            released = ", ".join(
                describe(asset, total) for asset, total in released_by_asset(orders).items()
            )
            self.log_change(
                request,
                operation,
                f"Withdrawn: {len(orders)} order(s) cancelled"
                + (f", released {released}." if released else "."),
            )
            cancelled += orders
            withdrawn.append(operation)
        if not withdrawn:
            return
        freed = ", ".join(
            describe(asset, total) for asset, total in sorted(released_by_asset(cancelled).items())
        )
        names = ", ".join(f"#{operation.pk}" for operation in withdrawn)
        self.message_user(
            request,
            f"Withdrew operation(s) {names}: {len(cancelled)} order(s) cancelled"
            + (f", released {freed}." if freed else "."),
            messages.SUCCESS,
        )

    @staticmethod
    def _refusal(operation) -> str | None:
        return withdraw_refusal(operation, orders_resting=operation.orders_resting)

    def withdraw_view(self, request, object_id):
        if not self.has_manage_liquidity_permission(request):
            raise PermissionDenied
        operation = get_object_or_404(self.get_queryset(request), pk=object_id)
        change_url = reverse("admin:liquidity_liquidityoperation_change", args=[operation.pk])
        if refusal := self._refusal(operation):
            # Nothing to withdraw: no confirmation page, no ticket; the change page says why.
            self.message_user(request, refusal, messages.ERROR)
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            self._withdraw(request, [operation])
            return HttpResponseRedirect(change_url)
        return self._confirmation(
            request, [operation], title=f"Withdraw operation #{operation.pk}", back_url=change_url
        )

    @admin.action(description="Withdraw selected operations", permissions=["manage_liquidity"])
    def withdraw_selected(self, request, queryset):
        """Withdraws the selected operations that still have resting orders; the others
        (withdrawn, filled, emptied by deactivation) are skipped and counted."""
        selected = list(queryset)
        operations = [operation for operation in selected if not self._refusal(operation)]
        skipped = len(selected) - len(operations)
        note = (
            f"Skipped {skipped} operation(s) with nothing left to withdraw "
            "(withdrawn, filled or cancelled)."
            if skipped
            else ""
        )
        if not operations:
            self.message_user(
                request,
                "None of the selected operations has open orders: nothing to withdraw.",
                messages.ERROR,
            )
            return None
        if "apply" in request.POST:
            self._withdraw(request, operations)
            if note:
                self.message_user(request, note, messages.INFO)
            return None
        return self._confirmation(
            request,
            operations,
            title="Withdraw liquidity operations",
            back_url=reverse("admin:liquidity_liquidityoperation_changelist"),
            action="withdraw_selected",
            selected=[operation.pk for operation in operations],
            skipped=note,
        )


# --- liquidity programs: read-only here; they are changed through the back-office pages
# (`liquidity.views_programs`), which go through the services, audited.


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LiquidityProgram)
class LiquidityProgramAdmin(_ReadOnly):
    list_display = (
        "name",
        "market",
        "state",
        "bid_target",
        "ask_target",
        "last_refresh_at",
        "next_refresh_at",
        "consecutive_failures",
        "back_office",
    )
    list_filter = ("state", "market", "reference_mode")
    search_fields = ("name", "notes")
    list_select_related = ("market",)
    readonly_fields = ("back_office",)
    ordering = ("-id",)

    @admin.display(description="Back office")
    def back_office(self, obj):
        return format_html(
            '<a href="{}">Status, settings and actions</a>',
            reverse("liquidity:program", args=[obj.pk]),
        )

    @admin.display(description="BID target", ordering="bid_target_eur")
    def bid_target(self, obj):
        return eur(obj.bid_target_eur)

    @admin.display(description="ASK target", ordering="ask_target_eur")
    def ask_target(self, obj):
        return eur(obj.ask_target_eur)


@admin.register(ProgramRefresh)
class ProgramRefreshAdmin(_ReadOnly):
    list_display = (
        "created_at",
        "program",
        "outcome",
        "reason",
        "orders_withdrawn",
        "orders_placed",
        "worker",
    )
    list_filter = ("outcome", "program")
    search_fields = ("reason", "program__name", "worker")
    list_select_related = ("program__market",)
    date_hierarchy = "created_at"
    ordering = ("-id",)


@admin.register(LiquidityAlert)
class LiquidityAlertAdmin(_ReadOnly):
    list_display = ("created_at", "program", "kind", "subject", "message", "resolved_at")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter), "program")
    search_fields = ("message", "subject", "program__name")
    list_select_related = ("program__market",)
    ordering = ("-id",)
