"""Django admin for the market (SPEC §10): every model, money with € and thousands separators.

Ledger entries, trades, balances and tickets are read-only everywhere. Money moves and
market-maker actions go through the services, which write the audit tickets.
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from market.models import (
    Asset,
    Balance,
    Holder,
    LedgerEntry,
    Market,
    MarketMakerClient,
    Order,
    TicketLog,
    Trade,
)
from market.services import ledger
from market.services.audit import ticket_record, tickets_record
from market.services.market_makers import (
    balance_annotations,
    market_maker_create,
    market_maker_deactivate,
    market_maker_fund,
    market_maker_funding_parse,
    market_maker_reactivate,
    market_maker_withdraw,
    market_makers_fund_bulk,
    market_makers_with_balances,
    open_order_counts,
)
from market.services.orders import orders_cancel
from market.templatetags.money import certificates, eur

admin.site.site_header = "Carbon Cash Market back office"
admin.site.site_title = "Carbon Cash Market"
admin.site.index_title = "Back office"


def amount_for(asset: str, value) -> str:
    """EUR as €1,234.56, certificates as 1,234."""
    return eur(value) if asset == Asset.EUR else certificates(value)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def add_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form: on its field if the form has one."""
    errors = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
    for field, texts in errors.items():
        target = field if field in form.fields else None
        if field == NON_FIELD_ERRORS:
            target = None
        form.add_error(target, texts)


def percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f} %"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted through the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BalanceColumns:
    """Changelist columns over `balance_annotations` (EUR / CEA / EUA, available / locked)."""

    @admin.display(description="EUR available / locked", ordering="eur_available")
    def eur_balance(self, obj):
        return f"{eur(obj.eur_available)} / {eur(obj.eur_locked)}"

    @admin.display(description="CEA available / locked", ordering="cea_available")
    def cea_balance(self, obj):
        return f"{certificates(obj.cea_available)} / {certificates(obj.cea_locked)}"

    @admin.display(description="EUA available / locked", ordering="eua_available")
    def eua_balance(self, obj):
        return f"{certificates(obj.eua_available)} / {certificates(obj.eua_locked)}"


# ---------------------------------------------------------------------------- markets


class MarketForm(forms.ModelForm):
    class Meta:
        model = Market
        fields = (
            "tick_size",
            "default_reference_price",
            "buy_fee_rate",
            "sell_fee_rate",
            "trading_enabled",
        )

    def clean(self):
        cleaned = super().clean()
        tick = cleaned.get("tick_size")
        if tick and self.instance.pk and "tick_size" in self.changed_data:
            prices = (
                Order.objects.filter(market=self.instance, status__in=Order.RESTING)
                .values_list("price", flat=True)
                .distinct()
            )
            off_tick = sorted(price for price in prices if price is not None and price % tick)
            if off_tick:
                self.add_error(
                    "tick_size",
                    f"{len(off_tick)} resting price level(s) are not on a {tick} tick "
                    f"(e.g. {eur(off_tick[0])}); cancel those orders first.",
                )
        return cleaned


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    form = MarketForm
    list_display = (
        "code",
        "tick",
        "reference_price",
        "buy_fee",
        "sell_fee",
        "trading_enabled",
    )
    list_filter = ("trading_enabled",)
    search_fields = ("code",)
    ordering = ("code",)
    fields = (
        "code",
        "tick_size",
        "default_reference_price",
        "buy_fee_rate",
        "sell_fee_rate",
        "trading_enabled",
        "book_version",
    )
    readonly_fields = ("code", "book_version")
    SETTINGS = MarketForm.Meta.fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Tick", ordering="tick_size")
    def tick(self, obj):
        return eur(obj.tick_size)

    @admin.display(description="Default reference", ordering="default_reference_price")
    def reference_price(self, obj):
        return eur(obj.default_reference_price)

    @admin.display(description="Buy fee", ordering="buy_fee_rate")
    def buy_fee(self, obj):
        return percent(obj.buy_fee_rate)

    @admin.display(description="Sell fee", ordering="sell_fee_rate")
    def sell_fee(self, obj):
        return percent(obj.sell_fee_rate)

    def save_model(self, request, obj, form, change):
        before = Market.objects.values(*self.SETTINGS).get(pk=obj.pk)
        # Only the settings: book_version is bumped concurrently by the matching engine.
        obj.save(update_fields=self.SETTINGS)
        ticket_record(
            action_type="MARKET_SETTINGS_CHANGED",
            entity_type="Market",
            entity_id=obj.pk,
            user=request.user,
            payload={field: str(form.cleaned_data[field]) for field in form.changed_data},
            before={field: str(value) for field, value in before.items()},
            after={field: str(getattr(obj, field)) for field in self.SETTINGS},
            tags=["market", obj.code],
            ip=client_ip(request),
        )


# ---------------------------------------------------------------------------- holders


class BalanceInline(admin.TabularInline):
    model = Balance
    fields = ("asset", "available_amount", "locked_amount")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Available")
    def available_amount(self, obj):
        return amount_for(obj.asset, obj.available)

    @admin.display(description="Locked")
    def locked_amount(self, obj):
        return amount_for(obj.asset, obj.locked)


HOLDER_CHANGE_FORM = engines["django"].from_string(
    """{% extends "admin/change_form.html" %}
{% block object-tools-items %}{% if can_transfer and original.kind == "TRADER" %}
<li><a href="{% url 'admin:market_holder_deposit' original.pk %}">Deposit</a></li>
<li><a href="{% url 'admin:market_holder_withdraw' original.pk %}">Withdraw</a></li>
{% endif %}{{ block.super }}{% endblock %}"""
)

HOLDER_TRANSFER_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}{% load admin_urls money %}
{% block bodyclass %}{{ block.super }} app-{{ opts.app_label }}
model-{{ opts.model_name }}{% endblock %}
{% block breadcrumbs %}<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url 'admin:app_list' app_label=opts.app_label %}">
{{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">
{{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; <a href="{{ back_url }}">{{ holder }}</a>
&rsaquo; {{ title }}
</div>{% endblock %}
{% block content %}<div id="content-main">
<table>
<thead><tr><th>Holder</th><th>User</th>
<th>EUR available / locked</th><th>CEA available / locked</th><th>EUA available / locked</th>
</tr></thead>
<tbody><tr><td>{{ holder.name }}</td><td>{{ holder.user|default:"—" }}</td>
<td>{{ holder.eur_available|eur }} / {{ holder.eur_locked|eur }}</td>
<td>{{ holder.cea_available|certificates }} / {{ holder.cea_locked|certificates }}</td>
<td>{{ holder.eua_available|certificates }} / {{ holder.eua_locked|certificates }}</td>
</tr></tbody>
</table>
<form method="post">{% csrf_token %}
{% if form.non_field_errors %}
<p class="errornote">{{ form.non_field_errors|join:" " }}</p>{% endif %}
<fieldset class="module aligned">{% for field in form %}<div class="form-row">
{{ field.errors }}<div class="flex-container">{{ field.label_tag }} {{ field }}</div>
{% if field.help_text %}<div class="help">{{ field.help_text }}</div>{% endif %}
</div>{% endfor %}</fieldset>
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}">
<a href="{{ back_url }}" class="button cancel-link">Cancel</a></div>
</form></div>{% endblock %}"""
)

FUND_HOLDERS_PERMISSION = "market.change_balance"


class HolderTransferForm(forms.Form):
    """A staff deposit into, or withdrawal from, a trader's available balance."""

    asset = forms.ChoiceField(choices=Asset.choices)
    amount = forms.CharField(
        help_text="EUR with at most two decimals; certificates in whole units."
    )
    note = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why: a bank transfer reference, a correction… Kept on the audit ticket.",
    )


@admin.register(Holder)
class HolderAdmin(BalanceColumns, ReadOnlyAdmin):
    """Read-only, except that staff with `market.change_balance` deposit into and withdraw
    from a trader's available balance (object tools on the change page), through
    `market.services.ledger`, which audits each move."""

    list_display = ("name", "kind", "user", "eur_balance", "cea_balance", "eua_balance")
    list_filter = ("kind",)
    search_fields = ("name", "user__username")
    list_select_related = ("user",)
    ordering = ("id",)
    inlines = [BalanceInline]
    change_form_template = HOLDER_CHANGE_FORM

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**balance_annotations("pk"))

    def has_transfer_permission(self, request) -> bool:
        return request.user.has_perm(FUND_HOLDERS_PERMISSION)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_transfer": self.has_transfer_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/deposit/",
                view(self.deposit_view),
                name="market_holder_deposit",
            ),
            path(
                "<int:object_id>/withdraw/",
                view(self.withdraw_view),
                name="market_holder_withdraw",
            ),
            *super().get_urls(),
        ]

    def deposit_view(self, request, object_id):
        return self._transfer_view(request, object_id, withdraw=False)

    def withdraw_view(self, request, object_id):
        return self._transfer_view(request, object_id, withdraw=True)

    def _transfer_view(self, request, object_id, *, withdraw: bool):
        if not self.has_transfer_permission(request):
            raise PermissionDenied
        traders = self.get_queryset(request).filter(kind=Holder.Kind.TRADER)
        holder = get_object_or_404(traders.select_related("user"), pk=object_id)
        back_url = reverse("admin:market_holder_change", args=[holder.pk])
        form = HolderTransferForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            service = ledger.withdraw if withdraw else ledger.deposit
            data = form.cleaned_data
            try:
                ticket = service(
                    holder=holder,
                    asset=data["asset"],
                    amount=data["amount"],
                    actor=request.user,
                    ip=client_ip(request),
                    note=data["note"],
                )
            except ValidationError as error:
                add_errors(form, error)
            else:
                asset = ticket.request_payload["asset"]
                amount = amount_for(asset, ticket.request_payload["amount"])
                available = amount_for(asset, ticket.after_state["available"])
                self.message_user(
                    request,
                    f"{'Withdrew' if withdraw else 'Deposited'} {amount} {asset} "
                    f"{'from' if withdraw else 'into'} {holder} ({ticket.ticket_id}). "
                    f"Available {asset}: {available}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(back_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{'Withdraw from' if withdraw else 'Deposit into'} {holder}",
            "holder": holder,
            "form": form,
            "submit_label": "Withdraw" if withdraw else "Deposit",
            "back_url": back_url,
        }
        return TemplateResponse(request, HOLDER_TRANSFER_PAGE, context)


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("holder", "holder_kind", "asset", "available_amount", "locked_amount")
    list_filter = ("asset", "holder__kind")
    search_fields = ("holder__name",)
    list_select_related = ("holder",)
    ordering = ("holder_id", "asset")

    @admin.display(description="Holder kind", ordering="holder__kind")
    def holder_kind(self, obj):
        return obj.holder.get_kind_display()

    @admin.display(description="Available", ordering="available")
    def available_amount(self, obj):
        return amount_for(obj.asset, obj.available)

    @admin.display(description="Locked", ordering="locked")
    def locked_amount(self, obj):
        return amount_for(obj.asset, obj.locked)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "holder",
        "asset",
        "kind",
        "available_change",
        "locked_change",
        "order_id",
        "trade_id",
        "ticket",
    )
    list_filter = ("kind", "asset", "holder__kind")
    search_fields = ("holder__name", "ticket__ticket_id")
    list_select_related = ("holder", "ticket")
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(description="Available Δ", ordering="available_delta")
    def available_change(self, obj):
        return amount_for(obj.asset, obj.available_delta)

    @admin.display(description="Locked Δ", ordering="locked_delta")
    def locked_change(self, obj):
        return amount_for(obj.asset, obj.locked_delta)


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "market",
        "aggressor_side",
        "trade_price",
        "trade_quantity",
        "trade_value",
        "buyer",
        "seller",
        "fees",
        "ticket",
    )
    list_filter = ("market", "aggressor_side")
    search_fields = ("buyer__name", "seller__name", "ticket__ticket_id")
    list_select_related = ("market", "buyer", "seller", "ticket")
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(description="Price", ordering="price")
    def trade_price(self, obj):
        return eur(obj.price)

    @admin.display(description="Quantity", ordering="quantity")
    def trade_quantity(self, obj):
        return certificates(obj.quantity)

    @admin.display(description="Value", ordering="value")
    def trade_value(self, obj):
        return eur(obj.value)

    @admin.display(description="Fees (buyer / seller)")
    def fees(self, obj):
        return f"{eur(obj.buyer_fee)} / {eur(obj.seller_fee)}"


@admin.register(TicketLog)
class TicketLogAdmin(ReadOnlyAdmin):
    list_display = (
        "ticket_id",
        "created_at",
        "action_type",
        "entity_type",
        "entity_id",
        "user",
        "market_maker",
        "status",
        "ip_address",
    )
    list_filter = ("action_type", "status", "entity_type")
    search_fields = ("ticket_id", "entity_id", "user__username", "market_maker__code")
    list_select_related = ("user", "market_maker")
    ordering = ("-id",)
    show_full_result_count = False


# ---------------------------------------------------------------------------- orders


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "market",
        "owner",
        "side",
        "order_type",
        "limit_price",
        "order_quantity",
        "filled",
        "reserved_amount",
        "status",
        "liquidity_operation_ref",
    )
    list_filter = ("market", "side", "order_type", "status", "owner__kind")
    search_fields = ("owner__name", "client_order_id", "status_reason")
    list_select_related = ("market", "owner")
    ordering = ("-id",)
    show_full_result_count = False
    actions = ["cancel_selected"]

    def has_cancel_permission(self, request):
        return request.user.has_perm("market.change_order")

    @admin.display(description="Price", ordering="price")
    def limit_price(self, obj):
        return eur(obj.price) if obj.price is not None else "market"

    @admin.display(description="Quantity", ordering="quantity")
    def order_quantity(self, obj):
        if obj.quantity is None and obj.eur_budget is not None:
            return f"budget {eur(obj.eur_budget)}"
        return certificates(obj.quantity)

    @admin.display(description="Filled", ordering="filled_quantity")
    def filled(self, obj):
        return certificates(obj.filled_quantity)

    @admin.display(description="Reserved", ordering="reserved")
    def reserved_amount(self, obj):
        return eur(obj.reserved) if obj.side == Order.Side.BUY else certificates(obj.reserved)

    @admin.display(description="Liquidity operation", ordering="liquidity_operation_id")
    def liquidity_operation_ref(self, obj):
        return obj.liquidity_operation_id or "—"

    @admin.action(description="Cancel selected orders", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        ids = list(queryset.filter(status__in=Order.RESTING).values_list("pk", flat=True))
        with transaction.atomic():
            cancelled = orders_cancel(orders=ids, reason="cancelled by staff")
            makers = dict(
                MarketMakerClient.objects.filter(
                    holder_id__in={order.owner_id for order in cancelled}
                ).values_list("holder_id", "pk")
            )
            tickets = tickets_record(
                [
                    TicketLog(
                        action_type="ORDER_CANCELLED",
                        entity_type="Order",
                        entity_id=str(order.pk),
                        user=request.user,
                        market_maker_id=makers.get(order.owner_id),
                        request_payload={"order_id": order.pk, "via": "admin"},
                        after_state={
                            "status": Order.Status.CANCELLED,
                            "released": str(order.released),
                        },
                        tags=["order", "staff"],
                        ip_address=client_ip(request),
                    )
                    for order in cancelled
                ]
            )
        skipped = queryset.count() - len(cancelled)
        if cancelled:
            self.message_user(
                request,
                f"Cancelled {len(cancelled)} order(s) and released their reservations "
                f"(tickets {tickets[0].ticket_id} … {tickets[-1].ticket_id}).",
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request, f"{skipped} selected order(s) were no longer open.", messages.WARNING
            )


# ---------------------------------------------------------------------------- market makers

INTERMEDIATE_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}{% load admin_urls money %}
{% block bodyclass %}{{ block.super }} app-{{ opts.app_label }}
model-{{ opts.model_name }}{% endblock %}
{% block breadcrumbs %}<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url 'admin:app_list' app_label=opts.app_label %}">
{{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">
{{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; {{ title }}
</div>{% endblock %}
{% block content %}<div id="content-main">
<table>
<thead><tr><th>Code</th><th>Name</th><th>Type</th><th>Active</th>
<th>EUR available / locked</th><th>CEA available / locked</th><th>EUA available / locked</th>
<th>Open orders</th></tr></thead>
<tbody>{% for maker in makers %}<tr>
<td>{{ maker.code }}</td><td>{{ maker.name }}</td><td>{{ maker.get_mm_type_display }}</td>
<td>{{ maker.is_active|yesno:"yes,no" }}</td>
<td>{{ maker.eur_available|eur }} / {{ maker.eur_locked|eur }}</td>
<td>{{ maker.cea_available|certificates }} / {{ maker.cea_locked|certificates }}</td>
<td>{{ maker.eua_available|certificates }} / {{ maker.eua_locked|certificates }}</td>
<td>{{ maker.open_orders }}</td></tr>{% endfor %}</tbody>
</table>
<form method="post">{% csrf_token %}
{% if form.non_field_errors %}
<p class="errornote">{{ form.non_field_errors|join:" " }}</p>{% endif %}
<fieldset class="module aligned">{% for field in form %}<div class="form-row">
{{ field.errors }}<div class="flex-container">{{ field.label_tag }} {{ field }}</div>
{% if field.help_text %}<div class="help">{{ field.help_text }}</div>{% endif %}
</div>{% endfor %}</fieldset>
{% for pk in selected %}<input type="hidden" name="_selected_action" value="{{ pk }}">{% endfor %}
{% if action %}<input type="hidden" name="action" value="{{ action }}">
<input type="hidden" name="apply" value="yes">{% endif %}
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}">
<a href="{{ back_url }}" class="button cancel-link">Cancel</a></div>
</form></div>{% endblock %}"""
)


class MarketMakerCreateForm(forms.ModelForm):
    """Identity plus type-specific initial funding, checked by the service's own rules."""

    eur = forms.CharField(
        label="EUR amount", required=False, help_text="Liquidity providers only, e.g. 250000.00."
    )
    cea = forms.CharField(
        label="CEA certificates", required=False, help_text="Asset holders only, whole units."
    )
    eua = forms.CharField(
        label="EUA certificates", required=False, help_text="Asset holders only, whole units."
    )

    class Meta:
        model = MarketMakerClient
        fields = ("name", "mm_type", "description")

    def funding(self) -> dict:
        return {asset: self.cleaned_data.get(asset.lower()) for asset in Asset.values}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("mm_type"):
            try:
                market_maker_funding_parse(mm_type=cleaned["mm_type"], funding=self.funding())
            except ValidationError as error:
                add_errors(self, error)
        return cleaned


class TransferForm(forms.Form):
    asset = forms.ChoiceField()
    amount = forms.CharField(
        help_text="EUR with at most two decimals; certificates in whole units."
    )

    def __init__(self, *args, assets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["asset"].choices = [(asset, asset) for asset in assets]


class DeactivateForm(forms.Form):
    cancel_open_orders = forms.BooleanField(
        required=False,
        label="Cancel open orders",
        help_text="Needed when a market maker has open orders: they are cancelled and "
        "their reservations released.",
    )


@admin.register(MarketMakerClient)
class MarketMakerClientAdmin(BalanceColumns, admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "mm_type",
        "is_active",
        "eur_balance",
        "cea_balance",
        "eua_balance",
        "created_by",
        "created_at",
        "operations",
    )
    list_display_links = ("code", "name")
    list_filter = ("mm_type", "is_active")
    search_fields = ("code", "name", "description")
    list_select_related = ("created_by",)
    ordering = ("id",)
    actions = ["fund_selected", "deactivate_selected", "reactivate_selected"]
    add_fieldsets = (
        (None, {"fields": ("name", "mm_type", "description")}),
        (
            "Initial funding",
            {
                "fields": ("eur", "cea", "eua"),
                "description": "Liquidity providers hold EUR and bid; asset holders hold "
                "CEA / EUA and offer.",
            },
        ),
    )
    fieldsets = (
        (None, {"fields": ("code", "name", "description", "mm_type", "is_active")}),
        ("Balances", {"fields": ("balances", "operations")}),
        ("History", {"fields": ("created_by", "created_at", "updated_at")}),
    )
    change_readonly_fields = (
        "code",
        "mm_type",
        "is_active",
        "balances",
        "operations",
        "created_by",
        "created_at",
        "updated_at",
    )

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return market_makers_with_balances(super().get_queryset(request))

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.change_readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = MarketMakerCreateForm
        return super().get_form(request, obj, **kwargs)

    # --- creating and editing through the services

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        data = form.cleaned_data
        return market_maker_create(
            name=data["name"],
            mm_type=data["mm_type"],
            description=data.get("description", ""),
            funding=form.funding(),
            created_by=request.user,
            ip=client_ip(request),
        )

    def save_model(self, request, obj, form, change):
        if not change:
            return
        before = MarketMakerClient.objects.values("name", "description").get(pk=obj.pk)
        obj.save(update_fields=["name", "description", "updated_at"])
        Holder.objects.filter(pk=obj.holder_id).update(name=obj.name)
        ticket_record(
            action_type="MM_UPDATED",
            entity_type="MarketMakerClient",
            entity_id=obj.pk,
            user=request.user,
            market_maker=obj,
            payload={field: form.cleaned_data[field] for field in form.changed_data},
            before=before,
            after={"name": obj.name, "description": obj.description},
            tags=["market_maker"],
            ip=client_ip(request),
        )

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"Ticket {obj.ticket.ticket_id}.", messages.INFO)
        return super().response_add(request, obj, post_url_continue)

    # --- columns

    @admin.display(description="Balances")
    def balances(self, obj):
        rows = [
            (
                asset,
                amount_for(asset, getattr(obj, f"{asset.lower()}_available")),
                amount_for(asset, getattr(obj, f"{asset.lower()}_locked")),
            )
            for asset in Asset.values
        ]
        return format_html(
            "<table><tr><th>Asset</th><th>Available</th><th>Locked</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="Operations")
    def operations(self, obj):
        if obj.pk is None:
            return "—"
        links = (
            [("fund", "Fund"), ("withdraw", "Withdraw")]
            if obj.is_active
            else [("withdraw", "Withdraw")]
        )
        links.append(
            ("deactivate", "Deactivate") if obj.is_active else ("reactivate", "Reactivate")
        )
        return format_html_join(
            " · ",
            '<a href="{}">{}</a>',
            (
                (reverse(f"admin:market_marketmakerclient_{name}", args=[obj.pk]), label)
                for name, label in links
            ),
        )

    # --- per-object pages: fund, withdraw, deactivate

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/fund/",
                view(self.fund_view),
                name="market_marketmakerclient_fund",
            ),
            path(
                "<path:object_id>/withdraw/",
                view(self.withdraw_view),
                name="market_marketmakerclient_withdraw",
            ),
            path(
                "<path:object_id>/deactivate/",
                view(self.deactivate_view),
                name="market_marketmakerclient_deactivate",
            ),
            path(
                "<path:object_id>/reactivate/",
                view(self.reactivate_view),
                name="market_marketmakerclient_reactivate",
            ),
            *super().get_urls(),
        ]

    def _maker_for(self, request, object_id) -> MarketMakerClient:
        maker = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, maker):
            raise PermissionDenied
        return maker

    def _page(
        self, request, *, title, form, makers, submit_label, back_url, action="", selected=()
    ):
        counts = open_order_counts(makers)
        for maker in makers:
            maker.open_orders = counts[maker.pk]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "form": form,
            "makers": makers,
            "submit_label": submit_label,
            "back_url": back_url,
            "action": action,
            "selected": selected,
        }
        return TemplateResponse(request, INTERMEDIATE_PAGE, context)

    def _change_url(self, maker) -> str:
        return reverse("admin:market_marketmakerclient_change", args=[maker.pk])

    def _transfer_view(self, request, object_id, *, withdraw: bool):
        maker = self._maker_for(request, object_id)
        assets = Asset.values if withdraw else maker.funding_assets
        form = TransferForm(request.POST if request.method == "POST" else None, assets=assets)
        if request.method == "POST" and form.is_valid():
            service = market_maker_withdraw if withdraw else market_maker_fund
            try:
                ticket = service(
                    market_maker=maker,
                    asset=form.cleaned_data["asset"],
                    amount=form.cleaned_data["amount"],
                    actor=request.user,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                add_errors(form, error)
            else:
                verb = "Withdrew" if withdraw else "Deposited"
                amount = amount_for(
                    ticket.request_payload["asset"], ticket.request_payload["amount"]
                )
                self.message_user(
                    request,
                    f"{verb} {amount} {ticket.request_payload['asset']} "
                    f"{'from' if withdraw else 'into'} {maker.code} ({ticket.ticket_id}).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._change_url(maker))
        return self._page(
            request,
            title=f"{'Withdraw from' if withdraw else 'Fund'} {maker}",
            form=form,
            makers=[maker],
            submit_label="Withdraw" if withdraw else "Fund",
            back_url=self._change_url(maker),
        )

    def fund_view(self, request, object_id):
        return self._transfer_view(request, object_id, withdraw=False)

    def withdraw_view(self, request, object_id):
        return self._transfer_view(request, object_id, withdraw=True)

    def deactivate_view(self, request, object_id):
        maker = self._maker_for(request, object_id)
        form = DeactivateForm(request.POST if request.method == "POST" else None)
        if (
            request.method == "POST"
            and form.is_valid()
            and self._deactivate(request, [maker], form)
        ):
            return HttpResponseRedirect(self._change_url(maker))
        return self._page(
            request,
            title=f"Deactivate {maker}",
            form=form,
            makers=[maker],
            submit_label="Deactivate",
            back_url=self._change_url(maker),
        )

    def _deactivate(self, request, makers, form) -> bool:
        """Deactivate each maker; errors go on the form. True if all were deactivated."""
        done, confirmed = [], form.cleaned_data["cancel_open_orders"]
        for maker in makers:
            try:
                ticket = market_maker_deactivate(
                    market_maker=maker,
                    actor=request.user,
                    cancel_open_orders=confirmed,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                add_errors(form, error)
            else:
                cancelled = len(ticket.after_state["cancelled_order_ids"])
                done.append(f"{maker.code} ({ticket.ticket_id}, {cancelled} order(s) cancelled)")
        if done:
            self.message_user(request, "Deactivated " + ", ".join(done) + ".", messages.SUCCESS)
        return not form.errors

    def reactivate_view(self, request, object_id):
        maker = self._maker_for(request, object_id)
        form = forms.Form(request.POST if request.method == "POST" else None)
        if (
            request.method == "POST"
            and form.is_valid()
            and self._reactivate(request, [maker], form)
        ):
            return HttpResponseRedirect(self._change_url(maker))
        return self._page(
            request,
            title=f"Reactivate {maker}",
            form=form,
            makers=[maker],
            submit_label="Reactivate",
            back_url=self._change_url(maker),
        )

    def _reactivate(self, request, makers, form) -> bool:
        """Reactivate each maker; errors go on the form. True if all were reactivated."""
        done = []
        for maker in makers:
            try:
                ticket = market_maker_reactivate(
                    market_maker=maker, actor=request.user, ip=client_ip(request)
                )
            except ValidationError as error:
                add_errors(form, error)
            else:
                done.append(f"{maker.code} ({ticket.ticket_id})")
        if done:
            self.message_user(request, "Reactivated " + ", ".join(done) + ".", messages.SUCCESS)
        return not form.errors

    # --- changelist actions with an intermediate form

    def _action_page(self, request, queryset, *, action, title, form, submit_label):
        return self._page(
            request,
            title=title,
            form=form,
            makers=list(queryset),
            submit_label=submit_label,
            back_url=reverse("admin:market_marketmakerclient_changelist"),
            action=action,
            selected=[maker.pk for maker in queryset],
        )

    @admin.action(description="Fund selected market makers", permissions=["change"])
    def fund_selected(self, request, queryset):
        makers = list(queryset)
        assets = [
            asset for asset in Asset.values if any(asset in m.funding_assets for m in makers)
        ]
        form = TransferForm(request.POST if "apply" in request.POST else None, assets=assets)
        form.fields["amount"].label = "Amount each"
        if form.is_valid():
            try:
                tickets = market_makers_fund_bulk(
                    market_makers=makers,
                    asset=form.cleaned_data["asset"],
                    amount_each=form.cleaned_data["amount"],
                    actor=request.user,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                add_errors(form, error)
            else:
                asset = form.cleaned_data["asset"]
                each = amount_for(asset, tickets[0].request_payload["amount"])
                self.message_user(
                    request,
                    f"Deposited {each} {asset} into each of {len(tickets)} market maker(s).",
                    messages.SUCCESS,
                )
                return None
        return self._action_page(
            request,
            queryset,
            action="fund_selected",
            title="Fund market makers",
            form=form,
            submit_label="Fund",
        )

    @admin.action(description="Deactivate selected market makers", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        form = DeactivateForm(request.POST if "apply" in request.POST else None)
        if form.is_valid() and self._deactivate(
            request, [maker for maker in queryset if maker.is_active], form
        ):
            return None
        return self._action_page(
            request,
            queryset,
            action="deactivate_selected",
            title="Deactivate market makers",
            form=form,
            submit_label="Deactivate",
        )

    @admin.action(description="Reactivate selected market makers", permissions=["change"])
    def reactivate_selected(self, request, queryset):
        makers = [maker for maker in queryset if not maker.is_active]
        skipped = len(queryset) - len(makers)
        form = forms.Form({})
        form.is_valid()
        self._reactivate(request, makers, form)
        for message in form.non_field_errors():
            self.message_user(request, message, messages.ERROR)
        if skipped:
            self.message_user(
                request, f"{skipped} selected market maker(s) were already active.", messages.INFO
            )
