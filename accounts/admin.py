"""API tokens in the admin: listed (never the secret, which is not stored: only its hash),
revoked with an audit ticket. They are issued by `manage.py create_api_token`."""

from django.contrib import admin, messages

from accounts.models import ApiToken
from accounts.services import api_tokens_revoke
from config.http import client_ip


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix_shown", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    fields = ("prefix_shown", "name", "user", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_selected"]
    ordering = ("-created_at",)

    @admin.display(description="token", ordering="prefix")
    def prefix_shown(self, token):
        return f"{token.prefix}…"

    def has_add_permission(self, request):
        return False  # issued by create_api_token, which shows the secret once

    def has_delete_permission(self, request, obj=None):
        return False  # revoked instead: the row keeps when it was used and revoked

    @admin.action(description="Revoke selected API tokens", permissions=["change"])
    def revoke_selected(self, request, queryset):
        result = api_tokens_revoke(
            token_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user,
            ip=client_ip(request),
        )
        for token, ticket in zip(result.revoked, result.tickets, strict=True):
            self.log_change(request, token, f"Revoked ({ticket.ticket_id}).")
        if result.revoked:
            self.message_user(
                request,
                f"Revoked {len(result.revoked)} API token(s) "
                f"(tickets {result.tickets[0].ticket_id} … {result.tickets[-1].ticket_id}).",
                messages.SUCCESS,
            )
        if result.already_revoked:
            self.message_user(
                request,
                f"{len(result.already_revoked)} selected token(s) were revoked already.",
                messages.WARNING,
            )
