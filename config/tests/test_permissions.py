"""Permissions matrix: every URL of the project × every kind of user.

Each row of `MATRIX` is one request (method, URL, data) and the exact answer expected for
each role, in the order of `ROLES`:

    anonymous · trader · another trader (owns nothing of the first) ·
    staff without the liquidity permission (is_staff, no permissions) · superuser

`Redirect(prefix)` is a 302 to a URL starting with `prefix`; `HX(prefix)` is htmx's
client-side redirect (200 with `HX-Redirect`). Every request runs in a savepoint that is
rolled back, so all roles see the same world, and the database must change exactly for
the roles listed in the row's `changes` (a refused request changes nothing).

`test_matrix_covers_every_url_pattern` walks the URL resolver and fails on any pattern no
row reaches, so a new URL cannot ship without its line here. The CSRF tests post to every
pattern without a token.
"""

import json
from dataclasses import dataclass, field

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache, caches
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken
from liquidity.models import LiquidityAlert, LiquidityOperation, LiquidityProgram, ProgramRefresh
from liquidity.programs import program_activate, program_create
from liquidity.services import liquidity_execute, liquidity_preview, liquidity_request_parse
from market.models import (
    Balance,
    LedgerEntry,
    Market,
    MarketMakerClient,
    Order,
    TicketLog,
    Trade,
)
from market.services.holders import trader_holder_for
from market.services.market_makers import market_maker_deactivate
from market.services.orders import order_place, order_request_parse
from market.tests import factories

ANON, TRADER, OTHER, STAFF, SUPER = ROLES = (
    "anonymous",
    "trader",
    "other_trader",
    "staff_no_perm",
    "superuser",
)
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
LOGGED_IN = frozenset({TRADER, OTHER, STAFF, SUPER})
MISSING = 987654321


@dataclass(frozen=True)
class Redirect:
    """A 302 to a URL that starts with `prefix`."""

    prefix: str

    def __repr__(self):
        return f"302→{self.prefix}"


@dataclass(frozen=True)
class HX:
    """htmx's client-side redirect: 200 with `HX-Redirect` starting with `prefix`."""

    prefix: str

    def __repr__(self):
        return f"HX→{self.prefix}"


LOGIN = Redirect("/accounts/login/?next=")
ADMIN_LOGIN = Redirect("/admin/login/?next=")
HX_LOGIN = HX("/accounts/login/?next=")
TWO_FACTOR_SETUP = Redirect("/accounts/two-factor/setup/?next=")


@dataclass(frozen=True)
class Row:
    method: str
    url: str  # a template over the world's ids, e.g. "/market/CEA/orders/{order}/cancel/"
    expect: tuple  # one answer per role, in ROLES order
    data: dict | None = None  # form fields (templates too)
    json: dict | None = None  # a JSON body instead
    htmx: bool = False
    changes: frozenset = field(default_factory=frozenset)  # roles whose request changes data

    @property
    def id(self) -> str:
        return f"{self.method} {self.url}{' (htmx)' if self.htmx else ''}"


def E(anon, trader, other, staff, superuser):
    return (anon, trader, other, staff, superuser)


ALL_200 = E(200, 200, 200, 200, 200)
PAGE = E(LOGIN, 200, 200, 200, 200)
PARTIAL = E(HX_LOGIN, 200, 200, 200, 200)
BACKOFFICE = E(LOGIN, 403, 403, 403, 200)
API = E(401, 403, 403, 403, 200)
TRADER_API = E(401, 200, 200, 200, 200)
OWN_ORDER = E(401, 200, 404, 404, 404)  # the first trader's order, by the trader API
ADMIN = E(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 403, 200)
ADMIN_READ_ONLY = E(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 403, 403)  # nobody may
ADMIN_SITE = E(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, 200)  # any staff member

LIQUIDITY_FORM = {
    "certificate_type": "CEA",
    "bid_amount_eur": "1000",
    "ask_amount_eur": "500",
    "reference_price": "",
    "notes": "matrix",
}
PROGRAM_FORM = {
    "name": "Matrix program",
    "certificate_type": "CEA",
    "bid_target_eur": "1000",
    "ask_target_eur": "1000",
    "ladder": "0.2:50, 0.4:30, 0.5:20",
    "reference_mode": "book",
    "refresh_interval_seconds": "60",
    "refresh_tolerance_pct": "0.5",
    "replenish_threshold_pct": "30",
    "replenish_delay_seconds": "30",
    "active_weekdays": ["1", "2", "3", "4", "5", "6", "7"],
    "timezone": "UTC",
    "alert_after_refreshes": "3",
}
ORDER_FORM = {
    "side": "BUY",
    "order_type": "LIMIT",
    "amount_mode": "quantity",
    "price": "12.50",
    "quantity": "2",
}


# --- the admin: the standard pages of every registered model --------------------------

# model path → (object id placeholder, may be added, may be deleted) for a superuser.
ADMIN_MODELS = {
    "auth/group": ("{group}", True, True),
    "auth/user": ("{user}", True, True),
    "market/market": ("{market}", True, False),
    "market/holder": ("{holder}", False, False),
    "market/balance": ("{balance}", False, False),
    "market/ledgerentry": ("{entry}", False, False),
    "market/trade": ("{trade}", False, False),
    "market/ticketlog": ("{ticket}", False, False),
    "market/order": ("{order}", False, False),
    "market/marketmakerclient": ("{lp}", True, False),
    "liquidity/liquidityoperation": ("{op}", False, False),
    # Programs are changed on their back-office pages (through the services): read-only.
    "liquidity/liquidityprogram": ("{program}", False, False),
    "liquidity/programrefresh": ("{refresh}", False, False),
    "liquidity/liquidityalert": ("{alert}", False, False),
    # Sign-in lockout records (django-axes): read and cleared, never added by hand.
    "axes/accessattempt": ("{attempt}", False, True),
    "axes/accesslog": ("{access_log}", False, True),
    "axes/accessfailurelog": ("{failure_log}", False, True),
    # Second-factor devices (django-otp): removed when a phone is lost; no secret shown.
    "otp_totp/totpdevice": ("{totp}", True, True),
    "otp_static/staticdevice": ("{static}", True, True),
    "accounts/apitoken": ("{token}", False, False),
}


def admin_model_rows() -> list[Row]:
    rows = []
    for model, (pk, addable, deletable) in ADMIN_MODELS.items():
        base = f"/admin/{model}/"
        rows += [
            Row("GET", base, ADMIN),
            Row("GET", f"{base}add/", ADMIN if addable else ADMIN_READ_ONLY),
            Row("GET", f"{base}{pk}/change/", ADMIN),
            Row("GET", f"{base}{pk}/history/", ADMIN),
            Row("GET", f"{base}{pk}/delete/", ADMIN if deletable else ADMIN_READ_ONLY),
            # The bare object URL redirects any staff member to the change page (where the
            # permission is checked).
            Row(
                "GET",
                f"{base}{pk}/",
                E(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, Redirect(base), Redirect(base)),
            ),
            Row("GET", f"{base}{MISSING}/change/", E(*ADMIN[:4], 302)),  # "doesn't exist"
        ]
    return rows


MATRIX: list[Row] = [
    # ---------------------------------------------------------------- landing and accounts
    Row("GET", "/", ALL_200),
    Row("GET", "/accounts/login/", ALL_200),
    Row(
        "POST",
        "/accounts/login/",
        E(*[Redirect("/")] * 5),
        data={"username": "alice", "password": "password"},
    ),
    Row("POST", "/accounts/login/", ALL_200, data={"username": "alice", "password": "wrong"}),
    Row("GET", "/accounts/logout/", E(405, 405, 405, 405, 405)),  # POST only
    Row("POST", "/accounts/logout/", E(*[Redirect("/accounts/login/")] * 5)),
    Row("GET", "/accounts/password_change/", PAGE),
    Row("POST", "/accounts/password_change/", PAGE, data={"old_password": "wrong"}),
    Row("GET", "/accounts/password_change/done/", PAGE),
    Row("GET", "/accounts/password_reset/", ALL_200),
    Row(
        "POST",
        "/accounts/password_reset/",
        E(*[Redirect("/accounts/password_reset/done/")] * 5),
        data={"email": "nobody@example.com"},
    ),
    Row("GET", "/accounts/password_reset/done/", ALL_200),
    Row("GET", "/accounts/reset/MQ/set-password/", ALL_200),  # an invalid link
    Row("GET", "/accounts/reset/done/", ALL_200),
    # ---------------------------------------------------------------- two-factor sign-in
    # Nobody in the world has enrolled: the pages offer the enrolment (a wrong code shows
    # the form again), and what needs a verified session sends there first.
    Row("GET", "/accounts/two-factor/", PAGE),
    Row("GET", "/accounts/two-factor/setup/", PAGE),
    Row("POST", "/accounts/two-factor/setup/", PAGE, data={"code": "000000"}),
    Row("GET", "/accounts/two-factor/verify/", E(LOGIN, *[TWO_FACTOR_SETUP] * 4)),
    Row("POST", "/accounts/two-factor/verify/", E(LOGIN, *[TWO_FACTOR_SETUP] * 4)),
    Row("POST", "/accounts/two-factor/recovery-codes/", E(LOGIN, *[TWO_FACTOR_SETUP] * 4)),
    Row("GET", "/accounts/two-factor/recovery-codes/", E(LOGIN, 405, 405, 405, 405)),
    Row("POST", "/accounts/two-factor/turn-off/", E(LOGIN, *[TWO_FACTOR_SETUP] * 4)),
    Row("GET", "/accounts/two-factor/turn-off/", E(LOGIN, 405, 405, 405, 405)),
    # The user's own API tokens: the first trader's token, revoked by its owner only.
    Row("GET", "/accounts/tokens/", PAGE),
    Row(
        "POST",
        "/accounts/tokens/{token}/revoke/",
        E(LOGIN, Redirect("/accounts/tokens/"), 404, 404, 404),
        changes=frozenset({TRADER}),
    ),
    Row("GET", "/accounts/tokens/{token}/revoke/", E(LOGIN, 405, 405, 405, 405)),
    # Anyone signed in creates trader tokens of their own (the page shows the secret once).
    Row(
        "POST",
        "/accounts/tokens/new/",
        E(LOGIN, 200, 200, 200, 200),
        data={"name": "matrix bot", "creation_key": "matrix"},
        changes=LOGGED_IN,
    ),
    Row("GET", "/accounts/tokens/new/", E(LOGIN, 405, 405, 405, 405)),
    # ---------------------------------------------------------------- the cash market
    Row("GET", "/market/", E(LOGIN, *[Redirect("/market/CEA/")] * 4)),
    Row("GET", "/market/CEA/", PAGE),
    Row("GET", "/market/cea/", E(LOGIN, *[Redirect("/market/CEA/")] * 4)),
    Row("GET", "/market/XYZ/", E(LOGIN, 404, 404, 404, 404)),
    Row("POST", "/market/CEA/", E(LOGIN, 405, 405, 405, 405)),
    Row("GET", "/market/CEA/book/", PARTIAL, htmx=True),
    Row("GET", "/market/CEA/book/", PAGE),  # without htmx: the whole page
    Row("GET", "/market/CEA/chart/?interval=1h", PARTIAL, htmx=True),
    Row("GET", "/market/CEA/chart/", PAGE),
    Row("GET", "/market/CEA/balances/", PARTIAL, htmx=True),
    Row("GET", "/market/EUA/balances/", PAGE),
    Row("GET", "/market/CEA/orders/?tab=history", PARTIAL, htmx=True),
    Row("GET", "/market/CEA/orders/", PAGE),
    Row(
        "POST",
        "/market/CEA/orders/new/",
        E(LOGIN, *[Redirect("/market/CEA/")] * 4),
        data=ORDER_FORM,
        changes=LOGGED_IN,  # each places its own order
    ),
    Row("GET", "/market/CEA/orders/new/", E(LOGIN, 405, 405, 405, 405)),
    Row(
        "POST",
        "/market/CEA/orders/new/",
        E(HX_LOGIN, 200, 200, 200, 200),
        data={**ORDER_FORM, "quantity": "-1"},
        htmx=True,
    ),
    Row("POST", "/market/CEA/orders/preview/", PARTIAL, data=ORDER_FORM, htmx=True),
    Row("POST", "/market/CEA/orders/preview/", PAGE, data={**ORDER_FORM, "review": "1"}),
    Row("GET", "/market/CEA/orders/preview/", E(LOGIN, 405, 405, 405, 405)),
    # The first trader's order: its owner cancels it, and so may a superuser (staff with
    # market.change_order); anyone else is told it is not theirs and nothing changes.
    Row(
        "POST",
        "/market/CEA/orders/{order}/cancel/",
        E(LOGIN, *[Redirect("/market/CEA/#my-orders")] * 4),
        changes=frozenset({TRADER, SUPER}),
    ),
    Row(
        "POST",
        "/market/CEA/orders/{order}/cancel/",
        E(HX_LOGIN, 200, 200, 200, 200),
        htmx=True,
        changes=frozenset({TRADER, SUPER}),
    ),
    Row(
        "POST",
        f"/market/CEA/orders/{MISSING}/cancel/",
        E(LOGIN, *[Redirect("/market/CEA/#my-orders")] * 4),
    ),
    Row("GET", "/market/CEA/orders/{order}/cancel/", E(LOGIN, 405, 405, 405, 405)),
    # My trades, its CSV, the statement and the fill-notice poll: each user's own rows only
    # (no URL names a trade or an order). Alice's bid was filled by Bob's sell: she alone
    # has a maker fill to be told of.
    Row("GET", "/market/my-trades/", PAGE),
    Row("GET", "/market/my-trades/?market=CEA&side=BUY&role=MAKER&date_from=2026-01-01", PAGE),
    Row("GET", "/market/my-trades/?role=CEA", PARTIAL, htmx=True),  # the error on its field
    Row("GET", "/market/my-trades/export.csv?role=MAKER", PAGE),
    Row("GET", "/market/my-trades/export.csv?side=nope", E(LOGIN, 400, 400, 400, 400)),
    Row("GET", "/market/my-trades/statement.csv?date_from=2026-01-01&date_to=2026-01-31", PAGE),
    Row("GET", "/market/my-trades/statement.csv?date_from=x", E(LOGIN, 400, 400, 400, 400)),
    Row("GET", "/market/my-trades/notices/", E(HX_LOGIN, 200, 204, 204, 204), htmx=True),
    Row("GET", "/market/my-trades/notices/", E(LOGIN, *[Redirect("/market/my-trades/")] * 4)),
    # Amending: only the owner (staff cancel, never amend, others' orders).
    Row(
        "GET",
        "/market/CEA/orders/{order}/amend/",
        E(LOGIN, 200, *[Redirect("/market/CEA/#my-orders")] * 3),
    ),
    Row("GET", "/market/CEA/orders/{order}/amend/", PARTIAL, htmx=True),
    Row(
        "POST",
        "/market/CEA/orders/{order}/amend/",
        E(LOGIN, *[Redirect("/market/CEA/#my-orders")] * 4),
        data={"price": "13.00", "quantity": "2"},
        changes=frozenset({TRADER}),
    ),
    Row(
        "POST",
        "/market/CEA/orders/{order}/amend/",
        PARTIAL,
        data={"price": "13.00", "quantity": "2", "preview": "1"},
        htmx=True,
    ),
    Row(
        "POST",
        "/market/CEA/orders/cancel-all/",
        E(LOGIN, *[Redirect("/market/CEA/#my-orders")] * 4),
        changes=frozenset({TRADER}),
    ),
    Row(
        "POST",
        "/market/CEA/orders/cancel-all/",
        PARTIAL,
        htmx=True,
        changes=frozenset({TRADER}),
    ),
    Row("GET", "/market/CEA/orders/cancel-all/", E(LOGIN, 405, 405, 405, 405)),
    # ---------------------------------------------------------------- the back office
    Row("GET", "/backoffice/liquidity/", BACKOFFICE),
    Row("GET", "/backoffice/liquidity/?market=CEA&page=2", BACKOFFICE),
    Row("GET", "/backoffice/liquidity/new/", BACKOFFICE),
    Row("GET", "/backoffice/liquidity/operations.csv?market=CEA&page=2", BACKOFFICE),
    Row("GET", "/backoffice/liquidity/programs/refreshes.csv", BACKOFFICE),
    Row(
        "GET",
        "/backoffice/liquidity/programs/refreshes.csv?outcome=nope",
        E(LOGIN, 403, 403, 403, 400),
    ),
    Row("POST", "/backoffice/liquidity/new/", E(LOGIN, 403, 403, 403, 405)),
    Row("POST", "/backoffice/liquidity/preview/", BACKOFFICE, data=LIQUIDITY_FORM),
    Row("POST", "/backoffice/liquidity/preview/", BACKOFFICE, data=LIQUIDITY_FORM, htmx=True),
    Row("GET", "/backoffice/liquidity/preview/", E(LOGIN, 403, 403, 403, 405)),
    Row(
        "POST",
        "/backoffice/liquidity/execute/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/")),
        data={**LIQUIDITY_FORM, "fingerprint": "{fingerprint}", "idempotency_key": "k-1"},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/backoffice/liquidity/execute/",
        BACKOFFICE,  # a stale fingerprint: the fresh preview again, nothing placed
        data={**LIQUIDITY_FORM, "fingerprint": "stale", "idempotency_key": "k-2"},
    ),
    Row(
        "POST",
        "/backoffice/liquidity/provision/create/",
        BACKOFFICE,
        data={
            **LIQUIDITY_FORM,
            "side": "ASK",
            "ask-count": "2",
            "ask-total_amount": "100",
            "ask-name_prefix": "Matrix holder",
        },
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/backoffice/liquidity/provision/fund/",
        BACKOFFICE,
        data={
            **LIQUIDITY_FORM,
            "side": "BID",
            "bid-market_makers": ["{lp}"],
            "bid-amount": "100",
        },
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/backoffice/liquidity/provision/fund/",
        E(LOGIN, 403, 403, 403, 404),
        data={**LIQUIDITY_FORM, "side": "NEITHER"},
    ),
    Row(
        "POST",
        "/backoffice/liquidity/provision/fund/summary/",
        BACKOFFICE,
        data={
            **LIQUIDITY_FORM,
            "side": "BID",
            "bid-market_makers": ["{lp}"],
            "bid-amount": "100",
        },
        htmx=True,
    ),
    Row("GET", "/backoffice/liquidity/{op}/", BACKOFFICE),
    Row("GET", f"/backoffice/liquidity/{MISSING}/", E(LOGIN, 403, 403, 403, 404)),
    # Liquidity programs: the list, the settings form, status, actions, the kill switch.
    Row("GET", "/backoffice/liquidity/programs/", BACKOFFICE),
    Row("GET", "/backoffice/liquidity/programs/new/", BACKOFFICE),
    Row(
        "POST",
        "/backoffice/liquidity/programs/new/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/programs/")),
        data=PROGRAM_FORM,
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/backoffice/liquidity/programs/new/",
        BACKOFFICE,  # refused on the form: nothing saved
        data={**PROGRAM_FORM, "ladder": "nonsense"},
    ),
    Row("GET", "/backoffice/liquidity/programs/{program}/", BACKOFFICE),
    Row("GET", "/backoffice/liquidity/programs/{program}/", BACKOFFICE, htmx=True),
    Row("GET", f"/backoffice/liquidity/programs/{MISSING}/", E(LOGIN, 403, 403, 403, 404)),
    Row("GET", "/backoffice/liquidity/programs/{program}/edit/", BACKOFFICE),
    Row(
        "POST",
        "/backoffice/liquidity/programs/{program}/edit/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/programs/")),
        data={**PROGRAM_FORM, "name": "Renamed"},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/backoffice/liquidity/programs/{program}/activate/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/programs/")),
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/backoffice/liquidity/programs/{program}/activate/", E(LOGIN, 403, 403, 403, 405)),
    Row(
        "POST",
        "/backoffice/liquidity/programs/{program}/pause/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/programs/")),  # refused: a draft
    ),
    Row("POST", "/backoffice/liquidity/programs/{program}/stop/", BACKOFFICE),  # confirm page
    Row(
        "POST",
        "/backoffice/liquidity/programs/{program}/stop/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/programs/")),  # refused: a draft
        data={"confirm": "yes"},
    ),
    Row("POST", "/backoffice/liquidity/programs/kill/", BACKOFFICE),  # the confirmation
    Row(
        "POST",
        "/backoffice/liquidity/programs/kill/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/programs/")),
        data={"confirm": "yes"},
        changes=frozenset({SUPER}),  # its ticket, even with nothing running
    ),
    Row("GET", "/backoffice/liquidity/programs/kill/", E(LOGIN, 403, 403, 403, 405)),
    Row("GET", "/backoffice/liquidity/{op}/withdraw/", BACKOFFICE),
    Row(
        "POST",
        "/backoffice/liquidity/{op}/withdraw/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/liquidity/")),
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/backoffice/market-makers/", BACKOFFICE),
    Row("GET", "/backoffice/market-makers/?mm_type=ASSET_HOLDER", BACKOFFICE, htmx=True),
    Row("GET", "/backoffice/market-makers/export.csv?mm_type=ASSET_HOLDER", BACKOFFICE),
    Row("GET", "/backoffice/market-makers/new/", BACKOFFICE),
    Row(
        "POST",
        "/backoffice/market-makers/new/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/market-makers/")),
        data={"name": "Matrix LP", "mm_type": "LIQUIDITY_PROVIDER", "eur": "1000"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/backoffice/market-makers/{lp}/fund/", BACKOFFICE),
    Row(
        "POST",
        "/backoffice/market-makers/{lp}/fund/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/market-makers/")),
        data={"asset": "EUR", "amount": "100"},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/backoffice/market-makers/{lp}/fund/",
        BACKOFFICE,  # certificates into a liquidity provider: refused on the form
        data={"asset": "CEA", "amount": "5"},
    ),
    Row("GET", f"/backoffice/market-makers/{MISSING}/fund/", E(LOGIN, 403, 403, 403, 404)),
    Row("GET", "/backoffice/market-makers/{lp}/withdraw/", BACKOFFICE),
    Row(
        "POST",
        "/backoffice/market-makers/{lp}/withdraw/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/market-makers/")),
        data={"asset": "EUR", "amount": "100"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/backoffice/market-makers/{ah}/deactivate/", BACKOFFICE),
    Row(
        "POST",
        "/backoffice/market-makers/{ah}/deactivate/",
        E(LOGIN, 403, 403, 403, Redirect("/backoffice/market-makers/")),
        data={"cancel_open_orders": "on"},
        changes=frozenset({SUPER}),
    ),
    # ---------------------------------------------------------------- the JSON API
    # The schema and its Swagger UI are public (documentation, no data).
    Row("GET", "/api/v1/openapi.json", ALL_200),
    Row("GET", "/api/v1/docs", ALL_200),
    Row("GET", "/api/v1/", E(404, 404, 404, 404, 404)),
    Row("POST", "/api/v1/liquidity/preview", API, json=LIQUIDITY_FORM),
    Row(
        "POST",
        "/api/v1/liquidity/create",
        E(401, 403, 403, 403, 201),
        json=LIQUIDITY_FORM,
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/api/v1/liquidity/provision",
        E(401, 403, 403, 403, 201),
        json={
            "action": "fund_existing",
            "mm_type": "LIQUIDITY_PROVIDER",
            "asset": "EUR",
            "amount": "100",
            "mm_ids": ["{lp}"],
        },
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/api/v1/liquidity/operations", API),
    Row("GET", "/api/v1/liquidity/operations/{op}", API),
    Row("GET", f"/api/v1/liquidity/operations/{MISSING}", E(401, 403, 403, 403, 404)),
    Row(
        "POST",
        "/api/v1/liquidity/operations/{op}/withdraw",
        API,
        json={},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/api/v1/liquidity/operations/{op}/withdraw", E(405, 405, 405, 405, 405)),
    # Liquidity programs: {program} is a draft on CEA, {running} is active on EUA.
    Row("GET", "/api/v1/liquidity/programs?state=draft", API),
    Row(
        "POST",
        "/api/v1/liquidity/programs",
        E(401, 403, 403, 403, 201),
        json={"name": "Matrix", "certificate_type": "CEA", "bid_target_eur": "1000"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/api/v1/liquidity/programs/{program}", API),
    Row("GET", f"/api/v1/liquidity/programs/{MISSING}", E(401, 403, 403, 403, 404)),
    Row(
        "PATCH",
        "/api/v1/liquidity/programs/{program}",
        API,
        json={"notes": "matrix"},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/api/v1/liquidity/programs/{program}/activate",
        API,
        changes=frozenset({SUPER}),
    ),
    Row("POST", "/api/v1/liquidity/programs/{program}/pause", E(401, 403, 403, 403, 409)),
    Row(
        "POST",
        "/api/v1/liquidity/programs/{running}/pause",
        API,
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/api/v1/liquidity/programs/{running}/stop",
        API,
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/api/v1/liquidity/programs/{running}/stop", E(405, 405, 405, 405, 405)),
    Row("GET", "/api/v1/liquidity/programs/{running}/status", API),
    Row("POST", "/api/v1/liquidity/kill-switch", API, changes=frozenset({SUPER})),
    Row("GET", "/api/v1/liquidity/kill-switch", E(405, 405, 405, 405, 405)),
    # Market makers: the market-maker permission, as on the back-office pages.
    Row("GET", "/api/v1/market-makers", API),
    Row("GET", "/api/v1/market-makers?mm_type=ASSET_HOLDER&is_active=true", API),
    Row(
        "POST",
        "/api/v1/market-makers",
        E(401, 403, 403, 403, 201),
        json={"name": "Matrix LP", "mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": 100},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/api/v1/market-makers/{lp}", API),
    Row("GET", f"/api/v1/market-makers/{MISSING}", E(401, 403, 403, 403, 404)),
    Row(
        "POST",
        "/api/v1/market-makers/{lp}/fund",
        API,
        json={"asset": "EUR", "amount": 100.5},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/api/v1/market-makers/{lp}/withdraw",
        API,
        json={"asset": "EUR", "amount": "1"},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/api/v1/market-makers/{ah}/deactivate",
        API,
        json={"cancel_open_orders": True},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/api/v1/market-makers/{inactive}/reactivate",
        API,
        json={},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/api/v1/market-makers/{lp}/fund", E(405, 405, 405, 405, 405)),
    # Market data: staff and traders alike.
    Row("GET", "/api/v1/market/CEA/book", TRADER_API),
    Row("GET", "/api/v1/market/XYZ/book", E(401, 404, 404, 404, 404)),
    # The trader API: everyone signed in trades their own account, and only their own:
    # {order} is the first trader's resting order, not found for anyone else (superusers
    # too: this is not the back office).
    Row("GET", "/api/v1/balances", TRADER_API),
    Row("GET", "/api/v1/orders?status=open&symbol=CEA/EUR", TRADER_API),
    Row(
        "POST",
        "/api/v1/orders",
        E(401, 201, 201, 201, 201),
        json={
            "symbol": "CEA/EUR",
            "type": "limit",
            "side": "buy",
            "amount": "1",
            "price": "12.00",
            "client_order_id": "matrix-1",
        },
        changes=LOGGED_IN,
    ),
    Row("GET", "/api/v1/orders/{order}", OWN_ORDER),
    Row("GET", f"/api/v1/orders/{MISSING}", E(401, 404, 404, 404, 404)),
    Row("DELETE", "/api/v1/orders/{order}", OWN_ORDER, changes=frozenset({TRADER})),
    Row(
        "PATCH",
        "/api/v1/orders/{order}",
        OWN_ORDER,
        json={"price": "12.90"},
        changes=frozenset({TRADER}),
    ),
    # Cancel all: each user's own open orders (the superuser's and the staff member's
    # have none, the other trader's sell filled at once).
    Row(
        "POST",
        "/api/v1/orders/cancel-all",
        TRADER_API,
        json={"symbol": "CEA/EUR"},
        changes=frozenset({TRADER}),
    ),
    Row("GET", "/api/v1/orders/cancel-all", E(405, 405, 405, 405, 405)),
    Row("GET", "/api/v1/market/CEA/candles?timeframe=1h&limit=24", TRADER_API),
    Row("GET", "/api/v1/market/XYZ/candles", E(401, 404, 404, 404, 404)),
    Row("GET", "/api/v1/trades?symbol=CEA/EUR", TRADER_API),
    # ---------------------------------------------------------------- the Django admin
    Row("GET", "/admin/", ADMIN_SITE),
    Row("GET", "/admin/login/", E(200, 200, 200, Redirect("/admin/"), Redirect("/admin/"))),
    # Logging out of the admin is a POST; the non-staff are sent to its index (→ login).
    Row("GET", "/admin/logout/", E(*[Redirect("/admin/")] * 3, 405, 405)),
    Row(
        "POST",
        "/admin/logout/",
        E(*[Redirect("/admin/")] * 3, *[Redirect("/accounts/login/")] * 2),  # LOGOUT_REDIRECT_URL
    ),
    Row("GET", "/admin/password_change/", ADMIN_SITE),
    Row("GET", "/admin/password_change/done/", ADMIN_SITE),
    Row("GET", "/admin/autocomplete/", E(*[ADMIN_LOGIN] * 3, 403, 403)),  # no field given
    Row("GET", "/admin/jsi18n/", ADMIN_SITE),
    Row("GET", "/admin/r/{ct}/{market}/", E(*[ADMIN_LOGIN] * 3, 404, 404)),
    Row("GET", "/admin/market/", E(*[ADMIN_LOGIN] * 3, 404, 200)),
    Row("GET", "/admin/liquidity/", E(*[ADMIN_LOGIN] * 3, 404, 200)),
    Row("GET", "/admin/no-such-page/", E(*[ADMIN_LOGIN] * 3, 404, 404)),
    *admin_model_rows(),
    Row("GET", "/admin/auth/user/{user}/password/", ADMIN),
    # django-otp's key and QR code pages: off (OTP_ADMIN_HIDE_SENSITIVE_DATA), for anyone.
    Row("GET", "/admin/otp_totp/totpdevice/{totp}/config/", E(*[ADMIN_LOGIN] * 3, 403, 403)),
    Row("GET", "/admin/otp_totp/totpdevice/{totp}/qrcode/", E(*[ADMIN_LOGIN] * 3, 403, 403)),
    Row(
        "POST",
        "/admin/auth/group/add/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/auth/group/")),
        data={"name": "Matrix group"},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/admin/market/market/add/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/market/")),
        data={
            "code": "UKA",
            "name": "UK Allowance",
            "tick_size": "0.01",
            "default_reference_price": "40.00",
            "buy_fee_rate": "0.005",
            "sell_fee_rate": "0",
            "trading_enabled": "on",
        },
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/admin/market/market/{market}/change/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/market/")),
        data={
            "name": "China Emission Allowance",
            "tick_size": "0.01",
            "default_reference_price": "14.00",
            "buy_fee_rate": "0.005",
            "sell_fee_rate": "0.001",
            "trading_enabled": "on",
        },
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/admin/market/order/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/order/")),
        data={"action": "cancel_selected", "_selected_action": ["{order}"]},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/admin/market/marketmakerclient/add/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/marketmakerclient/")),
        data={"name": "Admin LP", "mm_type": "LIQUIDITY_PROVIDER", "eur": "500"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/admin/market/ticketlog/export/?status__exact=SUCCESS&q=TKT", ADMIN),
    Row("GET", "/admin/market/ticketlog/export/?no_such_field=1", E(*ADMIN[:4], 400)),
    Row("GET", "/admin/market/holder/{holder}/deposit/", ADMIN),
    Row(
        "POST",
        "/admin/market/holder/{holder}/deposit/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/holder/")),
        data={"asset": "EUR", "amount": "10", "note": "matrix"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/admin/market/holder/{holder}/withdraw/", ADMIN),
    Row(
        "POST",
        "/admin/market/holder/{holder}/withdraw/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/holder/")),
        data={"asset": "EUR", "amount": "10", "note": "matrix"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/admin/market/holder/{lp_holder}/deposit/", E(*ADMIN[:4], 404)),  # traders only
    Row("GET", "/admin/market/marketmakerclient/{lp}/fund/", ADMIN),
    Row(
        "POST",
        "/admin/market/marketmakerclient/{lp}/fund/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/marketmakerclient/")),
        data={"asset": "EUR", "amount": "10"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/admin/market/marketmakerclient/{lp}/withdraw/", ADMIN),
    Row(
        "POST",
        "/admin/market/marketmakerclient/{lp}/withdraw/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/marketmakerclient/")),
        data={"asset": "EUR", "amount": "10"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/admin/market/marketmakerclient/{ah}/deactivate/", ADMIN),
    Row(
        "POST",
        "/admin/market/marketmakerclient/{ah}/deactivate/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/marketmakerclient/")),
        data={"cancel_open_orders": "on"},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/admin/market/marketmakerclient/{inactive}/reactivate/", ADMIN),
    Row(
        "POST",
        "/admin/market/marketmakerclient/{inactive}/reactivate/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/market/marketmakerclient/")),
        data={},
        changes=frozenset({SUPER}),
    ),
    Row(
        "POST",
        "/admin/accounts/apitoken/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/accounts/apitoken/")),
        data={"action": "revoke_selected", "_selected_action": ["{token}"]},
        changes=frozenset({SUPER}),
    ),
    Row("GET", "/admin/accounts/", E(*[ADMIN_LOGIN] * 3, 404, 200)),
    Row("GET", "/admin/liquidity/liquidityoperation/{op}/withdraw/", ADMIN),
    Row(
        "POST",
        "/admin/liquidity/liquidityoperation/{op}/withdraw/",
        E(*[ADMIN_LOGIN] * 3, 403, Redirect("/admin/liquidity/liquidityoperation/")),
        data={},
        changes=frozenset({SUPER}),
    ),
]


# --- the world every row runs against -----------------------------------------------------


@dataclass
class World:
    users: dict  # role → user (None for anonymous)
    ids: dict  # placeholder → value


@pytest.fixture
def world(db) -> World:
    """Two funded traders (the first with a resting, partly filled order), a staff member
    without permissions, a superuser, funded market makers (one deactivated) and one
    liquidity operation."""
    alice = factories.trader("alice", EUR="10000", CEA=100)
    bob = factories.trader("bob", EUR="10000", CEA=100)
    staff = factories.UserFactory(username="staffer", is_staff=True)
    superuser = factories.StaffFactory(username="root")
    for user in (staff, superuser):  # anyone logged in may trade
        factories.fund(trader_holder_for(user), EUR="10000", CEA=100)

    order = order_place(
        owner=alice,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="LIMIT", price="13.00", quantity=5
        ),
    ).order
    order_place(
        owner=bob,
        request=order_request_parse(
            market_code="CEA", side="SELL", order_type="LIMIT", price="13.00", quantity=1
        ),
    )
    lp = factories.market_maker(LP, EUR="200000")
    ah = factories.market_maker(AH, CEA=10000, EUA=1000)
    inactive = factories.market_maker(AH, CEA=10)
    market_maker_deactivate(market_maker=inactive, actor=superuser, cancel_open_orders=False)
    operation = liquidity_execute(
        request=liquidity_request_parse(
            market_code="CEA", bid_amount_eur="5000", ask_amount_eur="2000"
        ),
        user=superuser,
    )
    form_request = liquidity_request_parse(
        market_code="CEA",
        bid_amount_eur=LIQUIDITY_FORM["bid_amount_eur"],
        ask_amount_eur=LIQUIDITY_FORM["ask_amount_eur"],
        notes=LIQUIDITY_FORM["notes"],
    )
    group = Group.objects.create(name="Traders")
    # Someone else who enrolled a second factor, and someone else's failed sign-ins.
    carol = factories.UserFactory(username="carol")
    totp = TOTPDevice.objects.create(user=carol, name="Authenticator app")
    static = StaticDevice.objects.create(user=carol, name="Recovery codes")
    attempt_fields = {"username": "mallory", "ip_address": "10.0.0.9", "user_agent": "x"}
    attempt = AccessAttempt.objects.create(
        **attempt_fields, get_data="", post_data="", failures_since_start=2
    )
    access_log = AccessLog.objects.create(**attempt_fields)
    failure_log = AccessFailureLog.objects.create(**attempt_fields)
    token, _ = ApiToken.issue(user=alice.user, name="matrix", scope=ApiToken.Scope.TRADER)
    program_settings = {"certificate_type": "CEA", "bid_target_eur": "1000"}
    program = program_create(user=superuser, data={"name": "Draft CEA", **program_settings})
    running = program_create(
        user=superuser, data={**program_settings, "name": "EUA", "certificate_type": "EUA"}
    )
    program_activate(program_id=running.pk, user=superuser)
    refresh = ProgramRefresh.objects.create(
        program=program, outcome="failed", reason="matrix", created_at=program.created_at
    )
    alert = LiquidityAlert.objects.create(
        program=program, kind="refresh_failing", message="matrix", created_at=program.created_at
    )
    market = Market.objects.get(code="CEA")
    return World(
        users={ANON: None, TRADER: alice.user, OTHER: bob.user, STAFF: staff, SUPER: superuser},
        ids={
            "order": order.pk,
            "op": operation.pk,
            "lp": lp.pk,
            "ah": ah.pk,
            "inactive": inactive.pk,
            "lp_holder": lp.holder_id,
            "holder": alice.pk,
            "balance": Balance.objects.get(holder=alice, asset="EUR").pk,
            "entry": LedgerEntry.objects.filter(holder=alice).first().pk,
            "trade": Trade.objects.get().pk,
            "ticket": TicketLog.objects.first().pk,
            "market": market.pk,
            "ct": ContentType.objects.get_for_model(Market).pk,
            "user": alice.user.pk,
            "group": group.pk,
            "totp": totp.pk,
            "static": static.pk,
            "attempt": attempt.pk,
            "access_log": access_log.pk,
            "failure_log": failure_log.pk,
            "token": token.pk,
            "program": program.pk,
            "running": running.pk,
            "refresh": refresh.pk,
            "alert": alert.pk,
            "fingerprint": liquidity_preview(request=form_request).fingerprint(),
        },
    )


def fill(value, ids: dict):
    """`value` with the world's ids put into its templates (strings, lists, dicts)."""
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [fill(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    return value


# Any id the templates use, for resolving a row's URL without a database.
DUMMY_IDS = {
    key: 1
    for key in [
        "order",
        "op",
        "lp",
        "ah",
        "inactive",
        "lp_holder",
        "holder",
        "balance",
        "entry",
        "trade",
        "ticket",
        "market",
        "ct",
        "user",
        "group",
        "totp",
        "static",
        "attempt",
        "access_log",
        "failure_log",
        "token",
        "program",
        "running",
        "refresh",
        "alert",
    ]
} | {"fingerprint": "f"}


def snapshot() -> dict:
    """What a request may change: money, orders, operations, market makers, users, audit."""
    return {
        "balances": sorted(
            Balance.objects.values_list("holder_id", "asset", "available", "locked")
        ),
        "ledger": LedgerEntry.objects.count(),
        "orders": sorted(Order.objects.values_list("id", "status", "filled_quantity", "reserved")),
        "operations": sorted(LiquidityOperation.objects.values_list("id", "withdrawn_at")),
        "makers": sorted(MarketMakerClient.objects.values_list("id", "is_active", "name")),
        "markets": sorted(
            Market.objects.values_list("code", "tick_size", "buy_fee_rate", "sell_fee_rate")
        ),
        "tickets": TicketLog.objects.count(),
        "users": sorted(
            get_user_model().objects.values_list(
                "id", "username", "password", "is_active", "is_staff"
            )
        ),
        "groups": sorted(Group.objects.values_list("id", "name")),
        "tokens": sorted(ApiToken.objects.values_list("id", "revoked_at")),
        "programs": sorted(LiquidityProgram.objects.values_list("id", "state", "name", "notes")),
    }


class _RolledBack(Exception):
    pass


def request_as(world: World, role: str, row: Row, *, client: Client | None = None):
    """Send the row's request as `role`; return (response, database changed?). The
    request's effects are rolled back."""
    client = client or Client()
    if world.users[role] is not None:
        client.force_login(world.users[role])
    url = fill(row.url, world.ids)
    headers = {"HTTP_HX_REQUEST": "true"} if row.htmx else {}
    kwargs = {}
    if row.json is not None:
        kwargs = {
            "data": json.dumps(fill(row.json, world.ids)),
            "content_type": "application/json",
        }
    elif row.data is not None:
        kwargs = {"data": fill(row.data, world.ids)}
    outcome = {}
    cache.clear()
    caches["book"].clear()
    try:
        with transaction.atomic():
            before = snapshot()
            outcome["response"] = getattr(client, row.method.lower())(url, **kwargs, **headers)
            outcome["changed"] = snapshot() != before
            raise _RolledBack
    except _RolledBack:
        pass
    return outcome["response"], outcome["changed"]


def answer(response):
    """The response in the terms of the matrix."""
    if response.status_code == 302:
        return ("302", response["Location"])
    if response.status_code == 200 and response.get("HX-Redirect"):
        return ("HX", response["HX-Redirect"])
    return response.status_code


def matches(response, expected) -> bool:
    got = answer(response)
    if isinstance(expected, Redirect):
        return got[0] == "302" and got[1].startswith(expected.prefix)
    if isinstance(expected, HX):
        return got[0] == "HX" and got[1].startswith(expected.prefix)
    if expected == 302:
        return isinstance(got, tuple) and got[0] == "302"
    return got == expected


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("row", MATRIX, ids=[row.id for row in MATRIX])
def test_matrix(world, row):
    mismatches = []
    for role, expected in zip(ROLES, row.expect, strict=True):
        response, changed = request_as(world, role, row)
        if not matches(response, expected):
            mismatches.append(f"{role}: expected {expected!r}, got {answer(response)!r}")
        if changed != (role in row.changes):
            mismatches.append(f"{role}: the database {'changed' if changed else 'did not change'}")
        assert response.status_code < 500, (role, response)
    assert mismatches == []


def url_patterns(patterns=None, prefix="") -> list[str]:
    """Every URL pattern of the project, spelled as `resolve(path).route` spells it (the
    routes joined, a regex's leading ^ dropped)."""
    routes = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern).removeprefix("^")
        if isinstance(pattern, URLResolver):
            routes += url_patterns(pattern.url_patterns, route)
        else:
            assert isinstance(pattern, URLPattern)
            routes.append(route)
    return routes


def route_of(url: str) -> str:
    return resolve(fill(url, DUMMY_IDS).split("?")[0]).route


def test_matrix_covers_every_url_pattern():
    """A URL pattern without a row here fails: add its line to MATRIX."""
    covered = {route_of(row.url) for row in MATRIX}
    missing = [route for route in url_patterns() if route not in covered]
    assert missing == [], "URL patterns the permissions matrix does not cover"
    assert len(url_patterns()) > 100  # the walk reached the admin and the API


def test_the_other_trader_cannot_cancel_the_first_traders_order(world):
    """The matrix row, spelled out: refused with a message, the order and its
    reservation untouched."""
    order = Order.objects.get(pk=world.ids["order"])
    client = Client()
    client.force_login(world.users[OTHER])
    response = client.post(f"/market/CEA/orders/{order.pk}/cancel/", follow=True)
    assert f"Order #{order.pk} is not one of your orders." in response.content.decode()
    fresh = Order.objects.get(pk=order.pk)
    assert (fresh.status, fresh.reserved) == (order.status, order.reserved)
    assert fresh.status == Order.Status.PARTIALLY_FILLED and fresh.reserved > 0


# --- CSRF -------------------------------------------------------------------------------


def allowed_role(row: Row) -> str | None:
    """A role for which the row's POST succeeds (changes something, or answers 2xx/3xx
    other than a login redirect)."""
    for role in ROLES:
        if role in row.changes:
            return role
    for role, expected in zip(ROLES, row.expect, strict=True):
        if expected in (200, 201, 302) or (
            isinstance(expected, Redirect)
            and not expected.prefix.startswith(("/accounts/login/?", "/admin/login/?"))
        ):
            return role
    return None


POST_ROWS = [row for row in MATRIX if row.method == "POST" and allowed_role(row)]


def is_csrf_refusal(response) -> bool:
    body = response.content.decode(errors="replace")
    return response.status_code == 403 and (
        "CSRF verification failed" in body or "CSRF check Failed" in body
    )


@pytest.mark.parametrize("row", POST_ROWS, ids=[row.id for row in POST_ROWS])
def test_every_post_refuses_a_missing_csrf_token(world, row):
    """The same request that succeeds in the matrix, without the CSRF token: 403, and
    nothing changes."""
    role = allowed_role(row)
    response, changed = request_as(world, role, row, client=Client(enforce_csrf_checks=True))
    assert is_csrf_refusal(response), (role, answer(response))
    assert not changed


# The API's operations with no POST at all (reads, and a program's PATCH: CSRF-checked
# like a POST, see liquidity/tests/test_api_programs.py).
API_GET_ONLY = {
    "api/v1/liquidity/operations",
    "api/v1/liquidity/operations/<operation_id>",
    "api/v1/liquidity/programs/<program_id>",
    "api/v1/liquidity/programs/<program_id>/status",
    "api/v1/market/<market_code>/book",
    "api/v1/market-makers/<maker_id>",
    "api/v1/balances",
    "api/v1/orders/<order_id>",
    "api/v1/trades",
    "api/v1/market/<market_code>/candles",
}


def test_no_url_takes_a_post_without_csrf_token(world):
    """A sweep over every URL pattern: a superuser's session POST without a token is
    refused by the CSRF check (no view is csrf_exempt), except where the API has no POST
    operation to refuse (405). Nothing changes anywhere."""
    wrong = []
    for route in url_patterns():
        url = next(row.url for row in MATRIX if route_of(row.url) == route)
        row = Row("POST", url.split("?")[0], ALL_200, data={})
        client = Client(enforce_csrf_checks=True)
        response, changed = request_as(world, SUPER, row, client=client)
        refused = (
            response.status_code == 405 if route in API_GET_ONLY else is_csrf_refusal(response)
        )
        if not refused or changed:
            wrong.append(f"{route}: {answer(response)}{' (changed)' if changed else ''}")
    assert wrong == []


def test_the_api_session_with_the_csrf_token_is_accepted(world):
    """CSRF is the only thing the session POST above lacked."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users[SUPER])
    client.get("/backoffice/liquidity/new/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    body = json.dumps(LIQUIDITY_FORM)
    refused = client.post("/api/v1/liquidity/preview", body, content_type="application/json")
    assert is_csrf_refusal(refused)
    accepted = client.post(
        "/api/v1/liquidity/preview",
        body,
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert accepted.status_code == 200, accepted.content


# --- bearer tokens ------------------------------------------------------------------------

# The staff API's operations (the schema and docs are public, and take no token).
API_ROWS = [
    row
    for row in MATRIX
    if row.url.startswith(("/api/v1/liquidity/", "/api/v1/market-makers"))
    and 405 not in row.expect
]
# The trader API's and the market data (staff and traders alike).
TRADER_API_ROWS = [
    row
    for row in MATRIX
    if row.url.startswith(
        ("/api/v1/market/", "/api/v1/balances", "/api/v1/orders", "/api/v1/trades")
    )
    and 405 not in row.expect
]


@pytest.mark.parametrize("row", API_ROWS, ids=[row.id for row in API_ROWS])
def test_bearer_tokens_need_no_csrf_and_follow_the_same_rules(world, row):
    """`Authorization: Bearer` without cookies or CSRF token: the superuser's token does
    what its session does; a staff member's without the permission, or a trader's, is
    refused (403); an unknown or revoked token is unauthenticated (401)."""
    tokens = {role: ApiToken.issue(user=world.users[role])[1] for role in (TRADER, STAFF, SUPER)}
    revoked_row, revoked = ApiToken.issue(user=world.users[SUPER])
    revoked_row.revoked_at = revoked_row.created_at
    revoked_row.save()
    cases = [
        (tokens[SUPER], row.expect[ROLES.index(SUPER)], SUPER in row.changes),
        (tokens[STAFF], 403, False),
        (tokens[TRADER], 403, False),
        (revoked, 401, False),
        ("not-a-token", 401, False),
    ]
    for token, expected, changes in cases:
        client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {token}")
        response, changed = request_as(world, ANON, row, client=client)
        assert response.status_code == expected, (token[:6], response.content[:200])
        assert changed == changes


@pytest.mark.parametrize("row", TRADER_API_ROWS, ids=[row.id for row in TRADER_API_ROWS])
def test_trader_tokens_do_what_the_traders_session_does_and_staff_tokens_do_not(world, row):
    """The first trader's trader token, without cookies or CSRF token, answers as their
    session does; a staff token (even a superuser's) opens the market data only, never
    a trader's account (403, naming the trader token); a revoked or unknown token is
    unauthenticated (401)."""
    trader_scope = ApiToken.Scope.TRADER
    trader_token = ApiToken.issue(user=world.users[TRADER], scope=trader_scope)[1]
    staff_token = ApiToken.issue(user=world.users[SUPER])[1]
    revoked_row, revoked = ApiToken.issue(user=world.users[TRADER], scope=trader_scope)
    revoked_row.revoked_at = revoked_row.created_at
    revoked_row.save()
    market_data = row.url.startswith("/api/v1/market/")
    cases = [
        (trader_token, row.expect[ROLES.index(TRADER)], TRADER in row.changes),
        (staff_token, row.expect[ROLES.index(SUPER)] if market_data else 403, False),
        (revoked, 401, False),
        ("not-a-token", 401, False),
    ]
    for token, expected, changes in cases:
        client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {token}")
        response, changed = request_as(world, ANON, row, client=client)
        assert matches(response, expected), (token[:6], response.content[:200])
        assert changed == changes
        if expected == 403:
            assert "trader token" in response.json()["detail"]


@pytest.mark.parametrize("row", API_ROWS, ids=[row.id for row in API_ROWS])
def test_a_trader_token_never_opens_the_staff_api(world, row):
    """Not even a superuser's trader token: its scope is the trader's own account."""
    token = ApiToken.issue(user=world.users[SUPER], scope=ApiToken.Scope.TRADER)[1]
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {token}")
    response, changed = request_as(world, ANON, row, client=client)
    assert response.status_code == 403
    assert "This is a trader token" in response.json()["detail"]
    assert not changed


# --- request limits, the sign-in lockout, two-factor sign-in required ---------------------

THROTTLED_ROWS = [
    row
    for row in MATRIX
    if row.method == "POST"
    and (
        "/orders/new/" in row.url
        or "/cancel/" in row.url
        or "/cancel-all/" in row.url
        or "/amend/" in row.url
        or row.url.startswith(("/api/v1/l", "/api/v1/market-makers"))
    )
] + [row for row in API_ROWS if row.method == "GET"]


@pytest.mark.parametrize("row", THROTTLED_ROWS, ids=[row.id for row in THROTTLED_ROWS])
def test_past_the_request_limit_every_user_gets_429_and_nothing_changes(world, row, settings):
    """Limits at zero: the anonymous are still sent to log in (401 on the API), the API
    still refuses who may not use it (403), and everyone else gets 429 with Retry-After."""
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {"order_place": "0/m", "order_cancel": "0/m", "api": "0/m"}
    api = row.url.startswith("/api/")
    expected = E(401, 403, 403, 403, 429) if api else E(row.expect[0], 429, 429, 429, 429)
    for role, status in zip(ROLES, expected, strict=True):
        response, changed = request_as(world, role, row)
        assert matches(response, status), (role, answer(response))
        assert not changed, role
        if status == 429:
            assert int(response["Retry-After"]) >= 1
            if api:
                assert json.loads(response.content)["error"] == "rate_limited"


@pytest.mark.parametrize("row", TRADER_API_ROWS, ids=[row.id for row in TRADER_API_ROWS])
def test_past_the_request_limit_every_trader_gets_429_and_nothing_changes(world, row, settings):
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {"order_place": "0/m", "order_cancel": "0/m", "api": "0/m"}
    for role, status in zip(ROLES, E(401, 429, 429, 429, 429), strict=True):
        response, changed = request_as(world, role, row)
        assert response.status_code == status, role
        assert not changed, role
        if status == 429:
            assert int(response["Retry-After"]) >= 1
            assert json.loads(response.content)["error"] == "rate_limited"


LOGIN_ROWS = [
    Row("POST", path, E(*[429] * 5), data={"username": "alice", "password": "password"})
    for path in ("/accounts/login/", "/admin/login/")
]


@pytest.mark.parametrize("row", LOGIN_ROWS, ids=[row.id for row in LOGIN_ROWS])
def test_a_locked_out_username_is_refused_on_both_logins_for_everyone(world, row):
    """Five wrong passwords for alice: her right password then answers 429 with the lockout
    message, whoever is signed in, and signs nobody in."""
    for _ in range(5):
        Client().post("/accounts/login/", {"username": "alice", "password": "wrong"})
    for role, status in zip(ROLES, row.expect, strict=True):
        response, changed = request_as(world, role, row)
        assert matches(response, status), (role, answer(response))
        assert "Too many failed sign-ins" in response.content.decode()
        assert not changed


STAFF_ROWS = [
    row
    for row in MATRIX
    if row.url.startswith(("/backoffice/", "/admin/"))
    and not row.url.startswith(("/admin/login/", "/admin/logout/"))
    and row.expect[ROLES.index(SUPER)] not in (405,)
]


@pytest.mark.parametrize("row", STAFF_ROWS, ids=[row.id for row in STAFF_ROWS])
def test_where_two_factor_is_required_an_unverified_superuser_is_sent_to_it(world, row, settings):
    """The superuser's session has not passed the second factor: every back-office page
    sends it to the enrolment (the admin by its login, which does the same), and nothing
    changes."""
    settings.STAFF_2FA_REQUIRED = True
    response, changed = request_as(world, SUPER, row)
    got = answer(response)
    if row.url.startswith("/admin/"):
        assert matches(response, ADMIN_LOGIN), got
        follow = Client()
        follow.force_login(world.users[SUPER])
        assert follow.get(response["Location"])["Location"].startswith(TWO_FACTOR_SETUP.prefix)
    elif row.htmx:
        assert got[0] == "HX" and got[1].startswith(TWO_FACTOR_SETUP.prefix), got
    else:
        assert matches(response, TWO_FACTOR_SETUP), got
    assert not changed


@pytest.mark.parametrize("row", API_ROWS, ids=[row.id for row in API_ROWS])
def test_where_two_factor_is_required_the_api_refuses_an_unverified_session(world, row, settings):
    settings.STAFF_2FA_REQUIRED = True
    response, changed = request_as(world, SUPER, row)
    assert response.status_code == 403 and "two-factor" in response.json()["detail"]
    assert not changed


@pytest.mark.parametrize("row", TRADER_API_ROWS, ids=[row.id for row in TRADER_API_ROWS])
def test_the_trader_api_asks_no_second_factor_as_the_cash_market_does_not(world, row, settings):
    """Trading one's own account is not staff ground: an unverified superuser's session
    answers as a verified one's (the cash market pages ask no second factor either)."""
    settings.STAFF_2FA_REQUIRED = True
    response, changed = request_as(world, SUPER, row)
    assert matches(response, row.expect[ROLES.index(SUPER)])
    assert changed == (SUPER in row.changes)
