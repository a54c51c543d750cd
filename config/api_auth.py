"""Who may call the trader endpoints of the API, and the market data both APIs share.

A token has one scope (`accounts.models.ApiToken.Scope`): a trader token opens the trader
endpoints (`market.api_trader`) and the market data (`market.api`), for its owner's own
account; a staff token opens the staff endpoints (`config.api.StaffToken`) and the market
data. A token of the other scope is refused with 403 and a message naming the right one.
Everyone signed in may trade, so a trader session (any active user's, CSRF-checked on
unsafe methods) opens the trader endpoints and the market data too.

Every authenticated call counts against the user's `RATE_LIMITS["api"]`
(`config.throttle.count_call`).
"""

from django.conf import settings
from django.utils import timezone
from ninja.errors import AuthorizationError
from ninja.security import APIKeyCookie, HttpBearer

from accounts.models import ApiToken
from config.throttle import count_call


def wrong_scope(row: ApiToken) -> str:
    """Why a token of the other scope is refused, and which one to use instead."""
    if row.scope == ApiToken.Scope.TRADER:
        return (
            "This is a trader token: it opens the trader endpoints (/api/v1/balances, "
            "/api/v1/orders, /api/v1/trades) and market data, not the staff endpoints."
        )
    return (
        "This is a staff token: the trader endpoints need a trader token, created on "
        "your API tokens page (/accounts/tokens/)."
    )


def _token_row(token: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("user")
        .filter(key_hash=ApiToken.hash(token), revoked_at__isnull=True)
        .first()
    )


def _accept_trader_token(request, row: ApiToken):
    if not row.user.is_active:
        raise AuthorizationError(message="This token's user is inactive.")
    count_call(row.user)
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    request.user = row.user
    return row.user


class TraderToken(HttpBearer):
    """`Authorization: Bearer <token>` with a trader token (made on /accounts/tokens/)."""

    def authenticate(self, request, token):
        row = _token_row(token)
        if row is None:
            return None
        if row.scope != ApiToken.Scope.TRADER:
            raise AuthorizationError(message=wrong_scope(row))
        return _accept_trader_token(request, row)


class MarketDataToken(HttpBearer):
    """A trader token, or a staff token under the staff endpoints' own rules."""

    def authenticate(self, request, token):
        row = _token_row(token)
        if row is None:
            return None
        if row.scope == ApiToken.Scope.TRADER:
            return _accept_trader_token(request, row)
        # Imported here: `config.api` imports this module, and its routers import it.
        from config.api import StaffToken

        return StaffToken().authenticate(request, token)


class TraderSession(APIKeyCookie):
    """The signed-in user's session (everyone signed in may trade, as on the cash market
    pages); unsafe methods need the CSRF token."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request):
        if not request.user.is_authenticated:
            return None
        return super()._get_key(request)

    def authenticate(self, request, key):
        if not request.user.is_authenticated:
            return None
        count_call(request.user)
        return request.user


TRADER_AUTH = [TraderToken(), TraderSession()]
MARKET_DATA_AUTH = [MarketDataToken(), TraderSession()]
