"""Reads on API tokens for the pages."""

from accounts.models import ApiToken


def api_tokens_of(user) -> list[ApiToken]:
    """`user`'s tokens, newest first (revoked ones too: when they were used, revoked)."""
    return list(ApiToken.objects.filter(user=user).order_by("-created_at", "-pk"))
