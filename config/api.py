"""The JSON API at /api/v1/: the staff endpoints by staff token or session (with CSRF);
the trader endpoints (`market.api_trader`) and market data by trader token or session
(`config.api_auth`). A token opens only the endpoints of its scope.

Every authenticated call counts against the user's `RATE_LIMITS["api"]`; past it,
`429 {"error": "rate_limited", "detail": ..., "retry_after": seconds}` with `Retry-After`.
A session must have passed the second factor where staff need one (a token was issued
to a user who had, see `create_api_token`).

Amounts, prices and percentages may be sent as JSON numbers or as decimal strings: a
JSON number is read exactly from its text (`ExactJsonParser`), then checked by the one
strict parser like a string. Responses carry money and prices as decimal strings.

Errors are JSON with a 4xx status, never a 500 for bad input:
`{"error": "validation_error", "detail": {field: [messages]}}` for input a user can fix
(`"bad_request"` for a body that is not JSON), `{"detail": [...]}` (422) for a request that
does not match the schema, `{"detail": "..."}` for 401 / 403. Every response is declared
in the OpenAPI schema (`liquidity.api`, `market.api`) and checked by schemathesis.
"""

import json
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from ninja import NinjaAPI
from ninja.errors import AuthorizationError, HttpError
from ninja.parser import Parser
from ninja.security import APIKeyCookie, HttpBearer

from accounts.models import ApiToken
from accounts.two_factor import second_factor_missing
from config.api_auth import wrong_scope
from config.throttle import RateLimited, count_call
from liquidity.permissions import MANAGE_LIQUIDITY
from market.permissions import MANAGE_MARKET_MAKERS

# The staff API is the back office's: liquidity management and the market data it needs;
# the market makers' endpoints ask for the permission their pages ask for.
API_PERMISSION = MANAGE_LIQUIDITY
STAFF_PERMISSIONS = {
    MANAGE_LIQUIDITY: "the liquidity permission",
    MANAGE_MARKET_MAKERS: "the market-maker permission",
}


def api_user_allowed(user, permission: str = API_PERMISSION) -> bool:
    """Whether `user` may call the staff endpoints that need `permission`: active staff
    holding it."""
    return user.is_active and user.is_staff and user.has_perm(permission)


def staff_api_user(user) -> bool:
    """Whether `user` may hold a staff token: allowed on some of the staff endpoints."""
    return any(api_user_allowed(user, permission) for permission in STAFF_PERMISSIONS)


class StaffToken(HttpBearer):
    """`Authorization: Bearer <token>` issued by `manage.py create_api_token`, of a user
    holding `permission`."""

    def __init__(self, permission: str = API_PERMISSION):
        super().__init__()
        self.permission = permission

    def authenticate(self, request, token):
        row = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=ApiToken.hash(token), revoked_at__isnull=True)
            .first()
        )
        if row is None:
            return None
        if row.scope != ApiToken.Scope.STAFF:
            raise AuthorizationError(message=wrong_scope(row))
        if not api_user_allowed(row.user, self.permission):
            needed = STAFF_PERMISSIONS[self.permission]
            raise AuthorizationError(message=f"This token's user is not staff with {needed}.")
        count_call(row.user)
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
        request.user = row.user
        return row.user


class StaffSession(APIKeyCookie):
    """The back office's login session of a user holding `permission`; unsafe methods
    need the CSRF token."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, permission: str = API_PERMISSION):
        super().__init__()
        self.permission = permission

    def _get_key(self, request):
        if not request.user.is_authenticated:
            return None
        return super()._get_key(request)

    def authenticate(self, request, key):
        if not request.user.is_authenticated:
            return None
        if not api_user_allowed(request.user, self.permission):
            raise AuthorizationError(
                message=f"Staff with {STAFF_PERMISSIONS[self.permission]} only."
            )
        if second_factor_missing(request):
            raise AuthorizationError(
                message="Pass two-factor sign-in first (/accounts/two-factor/), or use a token."
            )
        count_call(request.user)
        return request.user


# No amount, price, count or id comes near 10^1000: a number beyond is refused as the body
# it spoils (400), before anything builds an integer of a million digits from `1e999999`.
MAX_EXPONENT = 1000


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number.")


def _exact_number(text: str) -> Decimal:
    number = Decimal(text)
    if abs(number.adjusted()) > MAX_EXPONENT:
        raise ValueError(f"{text[:20]} is beyond 10^{MAX_EXPONENT}.")
    return number


class ExactJsonParser(Parser):
    """JSON bodies with every number that has a fraction or an exponent read as a `Decimal`
    from its text: `1000.5` is €1,000.50 exactly, never a binary float (which would be
    1000.5 here but 0.1 + 0.2 elsewhere). `NaN` and `Infinity`, which Python's json
    would accept, are refused as the JSON they are not (400 `bad_request`), and so are
    numbers beyond `MAX_EXPONENT`."""

    def parse_body(self, request):
        return json.loads(request.body, parse_float=_exact_number, parse_constant=_no_constant)


api = NinjaAPI(
    title="Carbon Cash Market API",
    version="1",
    description=(
        "Liquidity management and market data for back-office staff. Authenticate with "
        "`Authorization: Bearer <token>` (issue one with `manage.py create_api_token "
        "--username NAME`) or a staff session. Amounts may be sent as JSON numbers (read "
        "exactly as written) or decimal strings; responses carry money as decimal strings. "
        "Traders: the Trading endpoints, with a trader token from /accounts/tokens/ "
        "(docs/trader-api.md)."
    ),
    auth=[StaffToken(), StaffSession()],
    parser=ExactJsonParser(),
    urls_namespace="api",
)


@api.exception_handler(ValidationError)
def validation_error(request, error: ValidationError):
    detail = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    return api.create_response(
        request, {"error": "validation_error", "detail": detail}, status=400
    )


@api.exception_handler(RateLimited)
def rate_limited(request, error: RateLimited):
    response = api.create_response(
        request,
        {"error": "rate_limited", "detail": str(error), "retry_after": error.retry_after},
        status=429,
    )
    response["Retry-After"] = str(error.retry_after)
    return response


@api.exception_handler(HttpError)
def http_error(request, error: HttpError):
    """A body that is not JSON (ninja's 400) in the API's error shape; 401 / 403 and the
    rest as ninja answers them."""
    if error.status_code == 400:
        return api.create_response(
            request, {"error": "bad_request", "detail": {"__all__": [str(error)]}}, status=400
        )
    return api.create_response(request, {"detail": str(error)}, status=error.status_code)


api.add_router("/liquidity/", "liquidity.api.router")
api.add_router("/liquidity/", "liquidity.api_programs.router")
api.add_router("/market/", "market.api.router")
api.add_router(
    "/market-makers",
    "market.api_market_makers.router",
    auth=[StaffToken(MANAGE_MARKET_MAKERS), StaffSession(MANAGE_MARKET_MAKERS)],
)
api.add_router("/", "market.api_trader.router")
