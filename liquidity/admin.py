"""Django admin for liquidity operations: read-only history with the orders each placed."""

from django.contrib import admin

from liquidity.models import LiquidityOperation
from market.models import Order
from market.templatetags.money import certificates, eur


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
