"""Django admin for liquidity operations: read-only history with the orders each placed,
state and fill progress, and withdrawal (SPEC §7) through `liquidity_withdraw`."""

from collections import defaultdict
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse

from liquidity.models import LiquidityOperation
from liquidity.selectors import fill_pct, operation_state, with_progress
from liquidity.services import liquidity_withdraw
from market.admin import amount_for, client_ip
from market.models import Order
from market.templatetags.money import certificates, eur

MANAGE_LIQUIDITY = "liquidity.manage_liquidity"

OPERATION_CHANGE_FORM = engines["django"].from_string(
    """{% extends "admin/change_form.html" %}
{% block object-tools-items %}{% if can_withdraw and original.orders_resting %}
<li><a href="{% url 'admin:liquidity_liquidityoperation_withdraw' original.pk %}">Withdraw</a>
</li>{% endif %}{{ block.super }}{% endblock %}"""
)

WITHDRAW_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}{% load admin_urls %}
{% block bodyclass %}{{ block.super }} app-{{ opts.app_label }}
model-{{ opts.model_name }} delete-confirmation{% endblock %}
{% block breadcrumbs %}<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url 'admin:app_list' app_label=opts.app_label %}">
{{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">
{{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; {{ title }}
</div>{% endblock %}
{% block content %}<div id="content-main">
<p>Withdrawing cancels each operation's still-open orders and releases what they
reserve back to the market makers' available balances. Filled quantities stay filled.</p>
<table>
<thead><tr><th>Operation</th><th>Ticket</th><th>Market</th><th>Created</th><th>State</th>
<th>Filled</th><th>Open orders</th></tr></thead>
<tbody>{% for operation in operations %}<tr>
<td>#{{ operation.pk }}</td><td>{{ operation.ticket.ticket_id }}</td>
<td>{{ operation.market.code }}</td><td>{{ operation.created_at }}</td>
<td>{{ operation.state }}</td><td>{{ operation.fill_pct }} %</td>
<td>{{ operation.orders_resting }}</td></tr>{% endfor %}</tbody>
</table>
<form method="post">{% csrf_token %}
{% for pk in selected %}<input type="hidden" name="_selected_action" value="{{ pk }}">{% endfor %}
{% if action %}<input type="hidden" name="action" value="{{ action }}">
<input type="hidden" name="apply" value="yes">{% endif %}
<div class="submit-row"><input type="submit" class="default" value="Withdraw">
<a href="{{ back_url }}" class="button cancel-link">Cancel</a></div>
</form></div>{% endblock %}"""
)


class LiquidityOrderInline(admin.TabularInline):
    model = Order
    fk_name = "liquidity_operation"
    fields = (
        "id",
        "owner",
        "side",
        "limit_price",
        "quantity_ordered",
        "quantity_filled",
        "reserved_amount",
        "status",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("side", "price", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner", "market")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Price")
    def limit_price(self, obj):
        return eur(obj.price)

    @admin.display(description="Quantity")
    def quantity_ordered(self, obj):
        return certificates(obj.quantity)

    @admin.display(description="Filled")
    def quantity_filled(self, obj):
        return certificates(obj.filled_quantity)

    @admin.display(description="Reserved")
    def reserved_amount(self, obj):
        return eur(obj.reserved) if obj.side == Order.Side.BUY else certificates(obj.reserved)


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
    inlines = [LiquidityOrderInline]
    actions = ["withdraw_selected"]
    change_form_template = OPERATION_CHANGE_FORM

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

    def _confirmation(self, request, operations, *, title, back_url, action="", selected=()):
        for operation in operations:
            operation.state = operation_state(operation)
            operation.fill_pct = fill_pct(operation)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "operations": operations,
            "back_url": back_url,
            "action": action,
            "selected": selected,
        }
        return TemplateResponse(request, WITHDRAW_PAGE, context)

    def _withdraw(self, request, operations) -> None:
        """Withdraw each operation (one transaction each) and report what was released."""
        cancelled, released = 0, defaultdict(Decimal)
        for operation in operations:
            orders = liquidity_withdraw(
                operation=operation, user=request.user, ip=client_ip(request)
            )
            cancelled += len(orders)
            for order in orders:
                released[order.reserve_asset] += order.released
        freed = ", ".join(
            f"{amount_for(asset, amount)} {asset}" for asset, amount in sorted(released.items())
        )
        names = ", ".join(f"#{operation.pk}" for operation in operations)
        self.message_user(
            request,
            f"Withdrew operation(s) {names}: {cancelled} order(s) cancelled"
            + (f", released {freed}." if freed else "."),
            messages.SUCCESS,
        )

    def withdraw_view(self, request, object_id):
        if not self.has_manage_liquidity_permission(request):
            raise PermissionDenied
        operation = get_object_or_404(self.get_queryset(request), pk=object_id)
        change_url = reverse("admin:liquidity_liquidityoperation_change", args=[operation.pk])
        if request.method == "POST":
            self._withdraw(request, [operation])
            return HttpResponseRedirect(change_url)
        return self._confirmation(
            request, [operation], title=f"Withdraw operation #{operation.pk}", back_url=change_url
        )

    @admin.action(description="Withdraw selected operations", permissions=["manage_liquidity"])
    def withdraw_selected(self, request, queryset):
        operations = list(queryset)
        if "apply" in request.POST:
            self._withdraw(request, operations)
            return None
        return self._confirmation(
            request,
            operations,
            title="Withdraw liquidity operations",
            back_url=reverse("admin:liquidity_liquidityoperation_changelist"),
            action="withdraw_selected",
            selected=[operation.pk for operation in operations],
        )
