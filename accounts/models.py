"""Who may call the JSON API without a browser session: personal bearer tokens.

A token has one scope, fixed when it is issued: a *staff* token (issued by
`manage.py create_api_token`, to staff with the liquidity permission, after their second
factor) opens the back office's endpoints; a *trader* token (created by its owner on the
API tokens page) opens the trader endpoints, the owner's own account only. Neither opens
the other's endpoints: a user who is both holds one of each."""

import hashlib
import secrets

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token for the JSON API. Only its SHA-256 is stored; the token itself is
    shown once, when issued."""

    class Scope(models.TextChoices):
        STAFF = "staff", "Staff API"
        TRADER = "trader", "Trader API"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell tokens apart")
    name = models.CharField(max_length=100, blank=True)
    # The tokens issued before scopes existed were all staff tokens (create_api_token).
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.STAFF)
    # The create form's one-time key: a resubmitted form names the token it made (whose
    # secret was shown once, and is not stored) instead of making a second one.
    creation_key = models.CharField(max_length=64, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "creation_key"],
                condition=models.Q(creation_key__isnull=False),
                name="api_token_creation_key_per_user",
            )
        ]

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(
        cls, *, user, name: str = "", scope: str = Scope.STAFF, creation_key: str | None = None
    ) -> tuple["ApiToken", str]:
        """Create a token of `scope` for `user`; returns the row and the plain token (shown
        once). Who may hold which scope is the caller's check (`create_api_token`,
        `accounts.services.trader_token_create`)."""
        token = secrets.token_urlsafe(32)
        row = cls.objects.create(
            user=user,
            key_hash=cls.hash(token),
            prefix=token[:8],
            name=name,
            scope=scope,
            creation_key=creation_key,
        )
        return row, token
