"""Django admin for the market: every model, money with € and thousands separators.

Ledger entries, trades, balances and tickets are read-only everywhere. Whatever moves money
or changes a market maker or a market goes through the same services and forms as the
back-office pages (`market.services`, `market.forms`), which write the audit tickets; the
admin adds each action to the object's History. Its extra pages are templates under
`templates/admin/market/`.
"""

from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.csv_export import csv_refused, csv_response
from config.http import client_ip
from market.core.money import EUR, describe
from market.forms import (
    AssetAmountForm,
    HolderTransferForm,
    MarketForm,
    MarketMakerCreateForm,
    MarketMakerDeactivateForm,
    MarketMakerEditForm,
    apply_service_errors,
)
from market.models import (
    Balance,
    Holder,
    LedgerEntry,
    Market,
    MarketMakerClient,
    Order,
    TicketLog,
    Trade,
)
from market.permissions import CANCEL_ORDERS, FUND_TRADERS, MANAGE_MARKET_MAKERS
from market.selectors import (
    asset_codes,
    balance_annotation,
    balance_annotations,
    market_maker_rows,
)
from market.services import ledger
from market.services.market_makers import (
    deactivate_refusal,
    fund_refusal,
    market_maker_create,
    market_maker_deactivate,
    market_maker_fund,
    market_maker_reactivate,
    market_maker_update,
    market_maker_withdraw,
    market_makers_fund_bulk,
)
from market.services.markets import market_create, market_settings_update
from market.services.orders import orders_cancel_by_staff
from market.templatetags.money import amount, certificates, eur


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


class ServiceWrittenAdmin(admin.ModelAdmin):
    """An admin whose add and change forms are written by a service (`write`), which also
    records the audit ticket. The forms run the services' checks in `clean`; should the
    service still refuse (the book moved in between), the transaction is rolled back and
    the page shows the form again as typed, with the service's messages next to the
    fields they name."""

    def write(self, request, form, change):
        """Create or change the object through its service and return it; raises the
        service's ValidationError."""
        raise NotImplementedError

    def save_form(self, request, form, change):
        try:
            return self.write(request, form, change)
        except ValidationError as error:
            raise _ServiceRefused(error) from None

    def save_model(self, request, obj, form, change):
        """Written by the service in `save_form`."""

    def save_related(self, request, form, formsets, change):
        """Written by the service in `save_form`: no inline or many-to-many rows here."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _ServiceRefused as refused:
            # Django's own view (and its atomic block) again, with a form that carries
            # the refusal as its errors: nothing is written, the input is kept.
            request.service_refusal = refused.error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, "service_refusal", None)
        if refusal is None:
            return form_class

        class RefusedForm(form_class):
            def full_clean(self):
                super().full_clean()
                if self.is_bound:
                    apply_service_errors(self, refusal)

        return RefusedForm


class _ServiceRefused(Exception):
    """A service refused what a valid admin form asked for."""

    def __init__(self, error: ValidationError):
        super().__init__(error)
        self.error = error


class BalanceColumns:
    """One changelist column per asset (available / locked), over `balance_annotations`:
    the assets are the markets' rows, so a new market adds a column."""

    balance_columns_after = 0  # where in `list_display` the columns go

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**balance_annotations(self.holder_ref))

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        at = self.balance_columns_after
        return [*columns[:at], *(_balance_column(asset) for asset in asset_codes()), *columns[at:]]


def _balance_column(asset: str):
    available, locked = balance_annotation(asset, "available"), balance_annotation(asset, "locked")

    @admin.display(description=f"{asset} available / locked", ordering=available)
    def column(obj):
        return f"{amount(getattr(obj, available), asset)} / {amount(getattr(obj, locked), asset)}"

    column.__name__ = f"balance_{asset.lower()}"
    return column


def _page(admin_obj, request, template: str, **context):
    """One of the admin's own pages (`templates/admin/market/…`)."""
    return TemplateResponse(
        request,
        template,
        {**admin_obj.admin_site.each_context(request), "opts": admin_obj.opts, **context},
    )


# ---------------------------------------------------------------------------- markets


@admin.register(Market)
class MarketAdmin(ServiceWrittenAdmin):
    """Markets are rows: staff add one (`market_create`, which gives every holder a
    balance of its certificate) and change its settings (`market_settings_update`)."""

    form = MarketForm
    list_display = (
        "code",
        "name",
        "tick",
        "reference_price",
        "buy_fee",
        "sell_fee",
        "trading_enabled",
    )
    list_filter = ("trading_enabled",)
    search_fields = ("code", "name")
    ordering = ("code",)
    readonly_fields = ("book_version",)

    def get_fields(self, request, obj=None):
        fields = list(MarketForm.Meta.fields)
        return fields if obj is None else [*fields, "book_version"]

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

    def write(self, request, form, change):
        data = form.cleaned_data
        if not change:
            market, _ = market_create(
                code=data["code"],
                name=data["name"],
                **{name: data[name] for name in MarketForm.SETTINGS},
                actor=request.user,
                ip=client_ip(request),
            )
            return market
        market_settings_update(
            market=form.instance,
            changes={name: data[name] for name in MarketForm.SETTINGS},
            actor=request.user,
            ip=client_ip(request),
        )
        return form.instance


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
        return amount(obj.available, obj.asset)

    @admin.display(description="Locked")
    def locked_amount(self, obj):
        return amount(obj.locked, obj.asset)


@admin.register(Holder)
class HolderAdmin(BalanceColumns, ReadOnlyAdmin):
    """Read-only, except that staff allowed to fund traders deposit into and withdraw from
    a trader's available balance (object tools on the change page), through
    `market.services.ledger`, which audits each move."""

    list_display = ("name", "kind", "user")
    balance_columns_after = 3
    holder_ref = "pk"
    list_filter = ("kind",)
    search_fields = ("name", "user__username")
    list_select_related = ("user",)
    ordering = ("id",)
    inlines = [BalanceInline]
    change_form_template = "admin/market/holder/change_form.html"

    def has_transfer_permission(self, request) -> bool:
        return request.user.has_perm(FUND_TRADERS)

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
                "<int:object_id>/deposit/", view(self.deposit_view), name="market_holder_deposit"
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
        traders = Holder.objects.filter(kind=Holder.Kind.TRADER).select_related("user")
        holder = get_object_or_404(traders, pk=object_id)
        back_url = reverse("admin:market_holder_change", args=[holder.pk])
        form = HolderTransferForm(
            request.POST if request.method == "POST" else None, assets=asset_codes()
        )
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
                apply_service_errors(form, error)
            else:
                asset = ticket.request_payload["asset"]
                moved = describe(asset, Decimal(ticket.request_payload["amount"]))
                available = amount(ticket.after_state["available"], asset)
                done = (
                    f"{'Withdrew' if withdraw else 'Deposited'} {moved} "
                    f"{'from' if withdraw else 'into'} {holder} ({ticket.ticket_id})"
                )
                self.log_change(request, holder, done + ".")
                self.message_user(
                    request, f"{done}. Available {asset}: {available}.", messages.SUCCESS
                )
                return HttpResponseRedirect(back_url)
        return _page(
            self,
            request,
            "admin/market/holder/transfer.html",
            title=f"{'Withdraw from' if withdraw else 'Deposit into'} {holder}",
            holder=holder,
            balances=Balance.objects.filter(holder=holder).order_by("asset"),
            form=form,
            submit_label="Withdraw" if withdraw else "Deposit",
            back_url=back_url,
        )


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
        return amount(obj.available, obj.asset)

    @admin.display(description="Locked", ordering="locked")
    def locked_amount(self, obj):
        return amount(obj.locked, obj.asset)


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
        return amount(obj.available_delta, obj.asset)

    @admin.display(description="Locked Δ", ordering="locked_delta")
    def locked_change(self, obj):
        return amount(obj.locked_delta, obj.asset)


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
    change_list_template = "admin/market/ticketlog/change_list.html"

    # The CSV export: the changelist's rows (its filters, search and ordering), every page.
    EXPORT_COLUMNS = {
        "Ticket": "ticket_id",
        "Created at (UTC)": "created_at",
        "Action type": "action_type",
        "Entity type": "entity_type",
        "Entity ID": "entity_id",
        "User": "user__username",
        "Market maker": "market_maker__code",
        "Status": "status",
        "Tags": "tags",
        "IP address": "ip_address",
        "Related tickets": "related_ticket_ids",
        "Request payload": "request_payload",
        "After state": "after_state",
    }

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [path("export/", export, name="market_ticketlog_export"), *super().get_urls()]

    def export_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        # Every page: a page number past the end (a stale link) exports all the same.
        request.GET = request.GET.copy()
        request.GET.pop(PAGE_VAR, None)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return csv_refused("The filters of this list are not valid.")
        rows = (
            changelist.get_queryset(request)
            .values_list(*self.EXPORT_COLUMNS.values())
            .iterator(chunk_size=500)
        )
        return csv_response("audit-tickets", tuple(self.EXPORT_COLUMNS), rows)


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
        "ticket",
    )
    list_filter = ("market", "side", "order_type", "status", "owner__kind")
    search_fields = ("owner__name", "client_order_id", "status_reason", "ticket__ticket_id")
    list_select_related = ("market", "owner", "ticket")
    ordering = ("-id",)
    show_full_result_count = False
    actions = ["cancel_selected"]

    def has_cancel_permission(self, request):
        return request.user.has_perm(CANCEL_ORDERS)

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
        return amount(obj.reserved, EUR if obj.side == Order.Side.BUY else obj.market.code)

    @admin.action(description="Cancel selected orders", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        ids = list(queryset.filter(status__in=Order.RESTING).values_list("pk", flat=True))
        cancelled, tickets = orders_cancel_by_staff(
            order_ids=ids, user=request.user, ip=client_ip(request), via="admin"
        )
        by_id = {order.pk: order for order in queryset.filter(pk__in=[c.id for c in cancelled])}
        for order, ticket in zip(cancelled, tickets, strict=True):
            released = describe(order.reserve_asset, order.released)
            self.log_change(
                request, by_id[order.id], f"Cancelled; {released} released ({ticket.ticket_id})."
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


@admin.register(MarketMakerClient)
class MarketMakerClientAdmin(BalanceColumns, ServiceWrittenAdmin):
    """Market makers through the back office's services and forms: create (with funding),
    edit the name and description, fund, withdraw, deactivate, reactivate."""

    list_display = (
        "code",
        "name",
        "mm_type",
        "is_active",
        "created_by",
        "created_at",
        "operations",
    )
    balance_columns_after = 4
    holder_ref = "holder_id"
    list_display_links = ("code", "name")
    list_filter = ("mm_type", "is_active")
    search_fields = ("code", "name", "description")
    list_select_related = ("created_by",)
    ordering = ("id",)
    actions = ["fund_selected", "deactivate_selected", "reactivate_selected"]
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

    def get_fieldsets(self, request, obj=None):
        if obj is not None:
            return self.fieldsets
        form = MarketMakerCreateForm()
        funding = [field.name for field in [form.eur_field, *form.certificate_fields]]
        return (
            (None, {"fields": ("name", "mm_type", "description")}),
            (
                "Initial funding",
                {
                    "fields": funding,
                    "description": "Liquidity providers hold EUR and bid; asset holders hold "
                    "certificates and offer.",
                },
            ),
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.change_readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = MarketMakerCreateForm if obj is None else MarketMakerEditForm
        kwargs["fields"] = None  # the form's own fields, funding inputs included
        return super().get_form(request, obj, **kwargs)

    # --- creating and editing through the services

    def write(self, request, form, change):
        data = form.cleaned_data
        if change:
            market_maker_update(
                market_maker=form.instance,
                name=data["name"],
                description=data.get("description", ""),
                actor=request.user,
                ip=client_ip(request),
            )
            return form.instance
        created = market_maker_create(
            name=data["name"],
            mm_type=data["mm_type"],
            description=data.get("description", ""),
            funding=form.funding(),
            created_by=request.user,
            ip=client_ip(request),
        )
        self.message_user(request, f"Ticket {created.ticket.ticket_id}.", messages.INFO)
        return created.market_maker

    # --- columns

    @admin.display(description="Balances")
    def balances(self, obj):
        (row,) = market_maker_rows([obj])
        return format_html(
            "<table><tr><th>Asset</th><th>Available</th><th>Locked</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (b.asset, amount(b.available, b.asset), amount(b.locked, b.asset))
                    for b in row.balances
                ),
            ),
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

    # --- per-object pages: fund, withdraw, deactivate, reactivate

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                f"<path:object_id>/{name}/",
                view(getattr(self, f"{name}_view")),
                name=f"market_marketmakerclient_{name}",
            )
            for name in ("fund", "withdraw", "deactivate", "reactivate")
        ] + super().get_urls()

    def _maker_for(self, request, object_id) -> MarketMakerClient:
        maker = get_object_or_404(MarketMakerClient, pk=object_id)
        if not request.user.has_perm(MANAGE_MARKET_MAKERS):
            raise PermissionDenied
        return maker

    def _maker_page(self, request, *, title, form, makers, submit_label, back_url, **context):
        return _page(
            self,
            request,
            "admin/market/marketmakerclient/action.html",
            title=title,
            form=form,
            rows=market_maker_rows(makers),
            assets=asset_codes(),
            submit_label=submit_label,
            back_url=back_url,
            **context,
        )

    def _change_url(self, maker) -> str:
        return reverse("admin:market_marketmakerclient_change", args=[maker.pk])

    def _refuse(self, request, maker, refusal: str):
        """An action that would do nothing on `maker`: back to its page, saying why."""
        self.message_user(request, refusal, messages.ERROR)
        return HttpResponseRedirect(self._change_url(maker))

    def _transfer_view(self, request, object_id, *, withdraw: bool):
        maker = self._maker_for(request, object_id)
        if not withdraw and (refusal := fund_refusal(maker)):
            return self._refuse(request, maker, refusal)
        assets = [asset for asset in asset_codes() if withdraw or maker.may_hold(asset)]
        form = AssetAmountForm(request.POST if request.method == "POST" else None, assets=assets)
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
                apply_service_errors(form, error)
            else:
                asset = ticket.request_payload["asset"]
                moved = describe(asset, Decimal(ticket.request_payload["amount"]))
                done = (
                    f"{'Withdrew' if withdraw else 'Deposited'} {moved} "
                    f"{'from' if withdraw else 'into'} {maker.code} ({ticket.ticket_id})."
                )
                self.log_change(request, maker, done)
                self.message_user(request, done, messages.SUCCESS)
                return HttpResponseRedirect(self._change_url(maker))
        return self._maker_page(
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
        if refusal := deactivate_refusal(maker):
            return self._refuse(request, maker, refusal)
        form = MarketMakerDeactivateForm(request.POST if request.method == "POST" else None)
        if (
            request.method == "POST"
            and form.is_valid()
            and self._deactivate(request, [maker], form)
        ):
            return HttpResponseRedirect(self._change_url(maker))
        return self._maker_page(
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
                apply_service_errors(form, error)
            else:
                cancelled = len(ticket.after_state["cancelled_order_ids"])
                self.log_change(
                    request,
                    maker,
                    f"Deactivated; {cancelled} open order(s) cancelled ({ticket.ticket_id}).",
                )
                done.append(f"{maker.code} ({ticket.ticket_id}, {cancelled} order(s) cancelled)")
        if done:
            self.message_user(request, "Deactivated " + ", ".join(done) + ".", messages.SUCCESS)
        return not form.errors

    def reactivate_view(self, request, object_id):
        maker = self._maker_for(request, object_id)
        if request.method == "POST" and self._reactivate(request, [maker]):
            return HttpResponseRedirect(self._change_url(maker))
        return self._maker_page(
            request,
            title=f"Reactivate {maker}",
            form=None,
            makers=[maker],
            submit_label="Reactivate",
            back_url=self._change_url(maker),
        )

    def _reactivate(self, request, makers) -> bool:
        """Reactivate each maker; refusals become error messages. True if all were."""
        done, refused = [], False
        for maker in makers:
            try:
                ticket = market_maker_reactivate(
                    market_maker=maker, actor=request.user, ip=client_ip(request)
                )
            except ValidationError as error:
                refused = True
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.log_change(request, maker, f"Reactivated ({ticket.ticket_id}).")
                done.append(f"{maker.code} ({ticket.ticket_id})")
        if done:
            self.message_user(request, "Reactivated " + ", ".join(done) + ".", messages.SUCCESS)
        return not refused

    # --- changelist actions with an intermediate form

    def _action_page(self, request, makers, *, action, title, form, submit_label, skipped=""):
        return self._maker_page(
            request,
            title=title,
            form=form,
            makers=makers,
            submit_label=submit_label,
            back_url=reverse("admin:market_marketmakerclient_changelist"),
            action=action,
            selected=[maker.pk for maker in makers],
            skipped=skipped,
        )

    def _active_selection(self, request, queryset, *, refusal):
        """The active makers of a selection, and a note naming the inactive ones the
        action skips: funding or deactivating an inactive maker would do nothing, so a
        mixed selection acts on its active makers only, and one with none refuses
        (an error message, no page)."""
        makers = list(queryset.order_by("pk"))
        active = [maker for maker in makers if maker.is_active]
        inactive = [maker.code for maker in makers if not maker.is_active]
        if not active:
            self.message_user(request, refusal, messages.ERROR)
        skipped = (
            f"Skipped {len(inactive)} inactive market maker(s): {', '.join(inactive)}."
            if inactive
            else ""
        )
        return active, skipped

    @admin.action(description="Fund selected market makers", permissions=["change"])
    def fund_selected(self, request, queryset):
        makers, skipped = self._active_selection(
            request,
            queryset,
            refusal="None of the selected market makers is active: inactive market makers "
            "cannot be funded.",
        )
        if not makers:
            return None
        assets = [asset for asset in asset_codes() if any(m.may_hold(asset) for m in makers)]
        form = AssetAmountForm(
            request.POST if "apply" in request.POST else None,
            assets=assets,
            amount_label="Amount each",
        )
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
                apply_service_errors(form, error)
            else:
                asset = form.cleaned_data["asset"]
                each = describe(asset, Decimal(tickets[0].request_payload["amount"]))
                by_id = {maker.pk: maker for maker in makers}
                for ticket in tickets:
                    self.log_change(
                        request,
                        by_id[ticket.market_maker_id],
                        f"Deposited {each} ({ticket.ticket_id}).",
                    )
                self.message_user(
                    request,
                    f"Deposited {each} into each of {len(tickets)} market maker(s)."
                    + (f" {skipped}" if skipped else ""),
                    messages.SUCCESS,
                )
                return None
        return self._action_page(
            request,
            makers,
            action="fund_selected",
            title="Fund market makers",
            form=form,
            submit_label="Fund",
            skipped=skipped,
        )

    @admin.action(description="Deactivate selected market makers", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        makers, skipped = self._active_selection(
            request,
            queryset,
            refusal="None of the selected market makers is active: nothing to deactivate.",
        )
        if not makers:
            return None
        form = MarketMakerDeactivateForm(request.POST if "apply" in request.POST else None)
        if form.is_valid() and self._deactivate(request, makers, form):
            if skipped:
                self.message_user(request, skipped, messages.INFO)
            return None
        return self._action_page(
            request,
            makers,
            action="deactivate_selected",
            title="Deactivate market makers",
            form=form,
            submit_label="Deactivate",
            skipped=skipped,
        )

    @admin.action(description="Reactivate selected market makers", permissions=["change"])
    def reactivate_selected(self, request, queryset):
        makers = [maker for maker in queryset if not maker.is_active]
        skipped = len(queryset) - len(makers)
        self._reactivate(request, makers)
        if skipped:
            self.message_user(
                request, f"{skipped} selected market maker(s) were already active.", messages.INFO
            )
