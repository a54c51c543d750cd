"""Hypothesis against every form: order entry (place, live preview, Review, MAX), Create
Liquidity (preview, execute), provisioning (create makers, fund existing ones), market
makers (create, fund, withdraw, deactivate), and the admin's deposit / withdrawal for
traders, markets (add, change settings) and market makers (edit).

Half the requests have plausible values in every field (so some are valid); in the other
half each field is plausible, missing or hostile: text, unicode, empty, very long, huge /
negative / NaN / Infinity / exponent numbers, a wrong choice. Whatever arrives:

- the answer is never a server error;
- a refused request changes nothing (orders, ledger, tickets, balances, operations,
  market makers are compared before and after);
- an accepted one (the input happened to be valid) says so, and the market's invariants
  still hold (market.tests.helpers).
"""

import uuid
from collections import Counter
from urllib.parse import urlsplit

import django.forms
import pytest
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import liquidity.forms
import market.forms
from liquidity.models import LiquidityOperation
from liquidity.services import liquidity_preview, liquidity_request_parse
from market.models import Balance, LedgerEntry, Market, MarketMakerClient, Order, TicketLog
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

pytestmark = pytest.mark.django_db

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
OMIT = object()  # the field is not sent at all

HOSTILE = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-0",
            "-1",
            "-0.01",
            "1e3",
            "1E-2",
            "1e999999",
            "NaN",
            "nan",
            "sNaN",
            "Infinity",
            "-Infinity",
            "inf",
            "1_000",
            "1,000.00",
            "0x10",
            "١٢٣",  # Arabic-Indic digits
            "１２.５",  # full-width digits
            "10.000000001",
            "99999999999999999999999999999999",
            "0.000000000000000000000000001",
            "\x00",
            "12\x00",
            "<script>alert(1)</script>",
            "'; DROP TABLE market_order; --",
            "None",
            "null",
            "true",
            "BUY SELL",
            "buy",
            "LIMIT ",
            "\u202e14.00",
        ]
    ),
    st.text(max_size=40),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats().map(str),
    st.decimals().map(str),
    st.integers(min_value=100, max_value=3000).map(lambda n: "9" * n),
    st.integers(min_value=100, max_value=3000).map(lambda n: "é" * n),
).map(str)  # mapped, so that `one_of(good, HOSTILE)` weighs it as one choice, not seven


def field(*good):
    """A field's plausible values."""
    return st.one_of(*good)


def form(**fields):
    """Form data: every field plausible (then the request may well be valid), or each
    field plausible, hostile or missing."""
    plausible = st.fixed_dictionaries(fields)
    fuzzed = st.fixed_dictionaries(
        {name: st.one_of(good, good, HOSTILE, st.just(OMIT)) for name, good in fields.items()}
    ).map(lambda data: {name: value for name, value in data.items() if value is not OMIT})
    return st.one_of(plausible, fuzzed)


def money(low, high):
    return st.one_of(
        st.integers(min_value=low, max_value=high).map(str),
        st.decimals(min_value=low, max_value=high, places=2).map(str),
    )


def snapshot() -> dict:
    return {
        "orders": sorted(Order.objects.values_list("id", "status", "filled_quantity", "reserved")),
        "ledger": LedgerEntry.objects.count(),
        "tickets": TicketLog.objects.count(),
        "balances": sorted(
            Balance.objects.values_list("holder_id", "asset", "available", "locked")
        ),
        "operations": sorted(LiquidityOperation.objects.values_list("id", "withdrawn_at")),
        "makers": sorted(
            MarketMakerClient.objects.values_list("id", "is_active", "name", "description")
        ),
        "markets": sorted(
            Market.objects.values_list(
                "code",
                "name",
                "tick_size",
                "default_reference_price",
                "buy_fee_rate",
                "sell_fee_rate",
                "trading_enabled",
            )
        ),
    }


def check(outcomes, response, *, changed: bool, accepted: bool, replay: bool = False):
    """The rules of this file for one request. `replay` allows an accepted request to
    change nothing (an idempotency key used before). Counts what happened."""
    assert response.status_code < 500
    if changed:
        assert accepted, (response.status_code, response.content[:500])
        assert_all_invariants()
    elif accepted:
        assert replay, "accepted but nothing happened"
    outcomes["accepted" if accepted else "refused"] += 1


def redirected(response, prefix: str) -> bool:
    if response.status_code == 302:
        return response["Location"].startswith(prefix)
    return response.get("HX-Redirect", "").startswith(prefix)


@pytest.fixture
def world(db):
    """A funded trader, a superuser, market makers of both types (some with resting
    orders) and a two-sided CEA book."""
    alice = factories.trader("alice", EUR="100000", CEA=2000, EUA=500)
    staff = factories.StaffFactory(username="root")
    providers = [factories.market_maker(LP, EUR="500000") for _ in range(2)]
    holders = [factories.market_maker(AH, CEA=50000, EUA=10000) for _ in range(3)]
    for price, quantity in (("13.90", 40), ("13.80", 60)):
        request = order_request_parse(
            market_code="CEA", side="BUY", order_type="LIMIT", price=price, quantity=quantity
        )
        order_place(owner=providers[0].holder, request=request)
    for maker, price in zip(holders, ("14.10", "14.20", "14.30"), strict=True):
        request = order_request_parse(
            market_code="CEA", side="SELL", order_type="LIMIT", price=price, quantity=50
        )
        order_place(owner=maker.holder, request=request)
    trader, back_office = Client(), Client()
    trader.force_login(alice.user)
    back_office.force_login(staff)
    return {
        "trader": trader,
        "staff": back_office,
        "holder": alice,
        "makers": [maker.pk for maker in providers + holders],
    }


# --- order entry -----------------------------------------------------------------------------

ORDER = form(
    side=field(st.sampled_from(["BUY", "SELL"])),
    order_type=field(st.sampled_from(["LIMIT", "MARKET"])),
    amount_mode=field(st.sampled_from(["quantity", "eur"])),
    price=field(st.sampled_from(["13.80", "13.90", "14.00", "14.10", "14.25"]), money(1, 30)),
    quantity=field(st.integers(min_value=1, max_value=80).map(str)),
    eur_budget=field(money(1, 3000)),
    client_order_id=field(st.uuids().map(lambda key: key.hex)),
)


VALID_ORDER = {
    "side": "BUY",
    "order_type": "LIMIT",
    "amount_mode": "quantity",
    "price": "13.85",
    "quantity": "5",
}


def test_order_entry(world):
    """Place (plain and htmx), the live preview, Review and MAX."""
    client, placed, outcomes = world["trader"], set(), Counter()

    @FUZZ
    # A valid order of each kind, whatever the generator draws.
    @example(
        data={**VALID_ORDER, "client_order_id": "valid-1"}, code="CEA", action="place", htmx=False
    )
    @example(
        data={**VALID_ORDER, "order_type": "MARKET", "client_order_id": "valid-2"},
        code="CEA",
        action="place",
        htmx=True,
    )
    @given(
        data=ORDER,
        code=st.sampled_from(["CEA", "EUA"]),
        action=st.sampled_from(["place", "preview", "review", "max"]),
        htmx=st.booleans(),
    )
    def fuzz(data, code, action, htmx):
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        before = snapshot()
        if action == "place":
            response = client.post(f"/market/{code}/orders/new/", data, **headers)
            accepted = (
                response.get("HX-Trigger") == "market-changed"
                if htmx
                else redirected(response, f"/market/{code}/")
            )
        else:
            extra = {"review": {"review": "1"}, "max": {"fill_max": "1"}}.get(action, {})
            url = f"/market/{code}/orders/preview/"
            response = client.post(url, {**data, **extra}, **headers)
            accepted = False  # previews are read-only
        changed = snapshot() != before
        key = str(data.get("client_order_id", "")).strip()
        check(outcomes, response, changed=changed, accepted=accepted, replay=key in placed)
        if changed and key:
            placed.add(key)

    fuzz()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


AMEND = form(
    price=field(st.sampled_from(["13.50", "13.60", "13.70", "14.50"]), money(1, 30)),
    quantity=field(st.integers(min_value=1, max_value=30).map(str)),
)


def test_order_amend(world):
    """Amend a resting order (preview and amend, through htmx): whatever the inputs, no
    500, and the book changes only for an amendment the page says was made."""
    client, outcomes, alice = world["trader"], Counter(), world["holder"]

    def resting_bid():
        """One of Alice's resting bids; a new one when amendments filled them all."""
        mine = Order.objects.filter(owner=alice, status__in=Order.RESTING, order_type="LIMIT")
        if not mine.exists():
            order_place(
                owner=alice,
                request=order_request_parse(
                    market_code="CEA", side="BUY", order_type="LIMIT", price="13.50", quantity=10
                ),
            )
        return mine.order_by("?").first()

    @FUZZ
    @example(data={"price": "13.55", "quantity": "4"}, preview=False)
    @given(data=AMEND, preview=st.booleans())
    def fuzz(data, preview):
        order = resting_bid()
        before = snapshot()
        body = {**data, **({"preview": "1"} if preview else {})}
        response = client.post(
            f"/market/CEA/orders/{order.pk}/amend/", body, HTTP_HX_REQUEST="true"
        )
        accepted = response.get("HX-Trigger") == "market-changed"
        check(outcomes, response, changed=snapshot() != before, accepted=accepted)

    fuzz()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


# --- Create Liquidity: preview and execute ---------------------------------------------------

LIQUIDITY = dict(
    certificate_type=field(st.sampled_from(["CEA", "EUA"])),
    bid_amount_eur=field(money(500, 60000), st.sampled_from(["", "0"])),
    ask_amount_eur=field(money(500, 60000), st.sampled_from(["", "0"])),
    reference_price=field(st.just(""), st.sampled_from(["14.00", "13.95", "81.00"])),
    notes=field(st.text(max_size=200)),
)


VALID_LIQUIDITY = {
    "certificate_type": "CEA",
    "bid_amount_eur": "5000",
    "ask_amount_eur": "3000",
    "reference_price": "",
    "notes": "fuzz",
}


def current_fingerprint(data) -> str:
    """The fingerprint of the plan the data asks for, as a preview would show it."""
    try:
        request = liquidity_request_parse(
            market_code=data.get("certificate_type"),
            bid_amount_eur=str(data.get("bid_amount_eur", "")).strip() or "0",
            ask_amount_eur=str(data.get("ask_amount_eur", "")).strip() or "0",
            reference_price=str(data.get("reference_price", "")).strip() or None,
            notes=data.get("notes", ""),
        )
        return liquidity_preview(request=request).fingerprint()
    except Exception:  # any refusal: there is no plan to fingerprint
        return "no-plan"


def test_create_liquidity(world):
    """Preview and Confirm & Execute, with the previewed plan's fingerprint or not."""
    client, used, outcomes = world["staff"], set(), Counter()

    @FUZZ
    @example(
        data=VALID_LIQUIDITY,
        action="execute",
        honest=True,
        fingerprint="",
        idempotency_key="",
        htmx=False,
    )
    @given(
        data=form(**LIQUIDITY),
        action=st.sampled_from(["preview", "execute"]),
        honest=st.booleans(),  # the previewed plan's fingerprint and a fresh key
        fingerprint=HOSTILE,
        idempotency_key=HOSTILE,
        htmx=st.booleans(),
    )
    def fuzz(data, action, honest, fingerprint, idempotency_key, htmx):
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        if honest:
            fingerprint, idempotency_key = current_fingerprint(data), uuid.uuid4().hex
        if action == "execute":
            data = {**data, "fingerprint": fingerprint, "idempotency_key": idempotency_key}
        before = snapshot()
        response = client.post(f"/backoffice/liquidity/{action}/", data, **headers)
        changed = snapshot() != before
        accepted = action == "execute" and redirected(response, "/backoffice/liquidity/")
        key = idempotency_key.strip()
        check(outcomes, response, changed=changed, accepted=accepted, replay=key in used)
        if changed:
            used.add(key)

    fuzz()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


# --- provisioning ----------------------------------------------------------------------------


def test_provisioning(world):
    """Create market makers for a short side, or fund existing ones."""
    client, outcomes = world["staff"], Counter()
    providers, holders = world["makers"][:2], world["makers"][2:]
    makers = {"BID": providers, "ASK": holders}
    anyone = [*world["makers"], 987654321, -1]

    @FUZZ
    @example(
        data=VALID_LIQUIDITY,
        side="ASK",
        kind="create",
        sub={"count": "2", "amount": "100", "name_prefix": "Fuzz"},
        own_makers=True,
        picked=[],
    )
    @example(
        data=VALID_LIQUIDITY,
        side="BID",
        kind="fund",
        sub={"amount": "100"},
        own_makers=True,
        picked=[0, 1],
    )
    @given(
        data=form(**LIQUIDITY),
        side=st.one_of(st.sampled_from(["BID", "ASK"]), st.sampled_from(["BID", "ASK"]), HOSTILE),
        kind=st.sampled_from(["create", "fund"]),
        sub=form(
            count=st.integers(min_value=1, max_value=4).map(str),
            amount=money(1, 5000),
            name_prefix=st.text(min_size=1, max_size=40),
        ),
        own_makers=st.booleans(),
        picked=st.lists(st.integers(min_value=0, max_value=6), max_size=4),
    )
    def fuzz(data, side, kind, sub, own_makers, picked):
        prefix = side.lower()
        choices = makers[side] if own_makers and side in makers else anyone
        fields = {
            f"{prefix}-count": sub.get("count", OMIT),
            f"{prefix}-total_amount": sub.get("amount", OMIT),
            f"{prefix}-name_prefix": sub.get("name_prefix", OMIT),
        }
        if kind == "fund":
            fields = {
                f"{prefix}-market_makers": [choices[index % len(choices)] for index in picked],
                f"{prefix}-amount": sub.get("amount", OMIT),
            }
        posted = {**data, "side": side, **{k: v for k, v in fields.items() if v is not OMIT}}
        before = snapshot()
        response = client.post(f"/backoffice/liquidity/provision/{kind}/", posted)
        changed = snapshot() != before
        accepted = 'data-testid="plan-notice" data-level="success"' in response.content.decode()
        check(outcomes, response, changed=changed, accepted=accepted)

    fuzz()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


# --- market makers ---------------------------------------------------------------------------

NEXT = st.sampled_from(
    [
        "/backoffice/market-makers/?mm_type=ASSET_HOLDER",
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
    ]
)


def test_market_maker_forms(world):
    """New market maker, fund, withdraw and deactivate (with a `next` to return to)."""
    client, outcomes = world["staff"], Counter()
    ids = world["makers"] + [987654321]

    @FUZZ
    @example(action="fund", target=0, data={"asset": "EUR", "amount": "10"})
    @example(
        action="new",
        target=0,
        data={"name": "Fuzz LP", "mm_type": "LIQUIDITY_PROVIDER", "eur": "100"},
    )
    @given(
        action=st.sampled_from(["new", "fund", "withdraw", "deactivate"]),
        target=st.integers(min_value=0, max_value=5),
        data=form(
            name=field(st.text(min_size=1, max_size=60)),
            mm_type=field(st.sampled_from(["LIQUIDITY_PROVIDER", "ASSET_HOLDER"])),
            description=field(st.text(max_size=200)),
            eur=field(money(0, 100000), st.just("")),
            cea=field(st.integers(min_value=0, max_value=5000).map(str), st.just("")),
            eua=field(st.integers(min_value=0, max_value=5000).map(str), st.just("")),
            asset=field(st.sampled_from(["EUR", "CEA", "EUA"])),
            amount=field(money(1, 10000), st.integers(min_value=1, max_value=500).map(str)),
            cancel_open_orders=field(st.sampled_from(["on", ""])),
            next=field(NEXT),
        ),
    )
    def fuzz(action, target, data):
        pk = ids[target % len(ids)]
        if action == "new":
            url = "/backoffice/market-makers/new/"
        else:
            url = f"/backoffice/market-makers/{pk}/{action}/"
        before = snapshot()
        response = client.post(url, data)
        changed = snapshot() != before
        # Success is a redirect: to the list, or to a `next` path of this site.
        accepted = response.status_code == 302
        check(outcomes, response, changed=changed, accepted=accepted)
        if accepted:
            location = urlsplit(response["Location"])
            assert location.scheme == "" and location.netloc == "", response["Location"]
            assert location.path.startswith("/backoffice/market-makers/")

    fuzz()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


# --- the admin: deposit into / withdraw from a trader ----------------------------------------


def test_admin_deposit_and_withdrawal(world):
    client, holder, outcomes = world["staff"], world["holder"], Counter()

    @FUZZ
    @example(action="deposit", data={"asset": "EUR", "amount": "10", "note": "fuzz"})
    @given(
        action=st.sampled_from(["deposit", "withdraw"]),
        data=form(
            asset=field(st.sampled_from(["EUR", "CEA", "EUA"])),
            amount=field(money(1, 5000), st.integers(min_value=1, max_value=100).map(str)),
            note=field(st.text(max_size=100)),
        ),
    )
    def fuzz(action, data):
        before = snapshot()
        response = client.post(f"/admin/market/holder/{holder.pk}/{action}/", data)
        changed = snapshot() != before
        accepted = redirected(response, f"/admin/market/holder/{holder.pk}/change/")
        check(outcomes, response, changed=changed, accepted=accepted)

    fuzz()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


# --- the admin: markets and market makers --------------------------------------------------


def test_admin_market_and_market_maker_forms(world):
    """Add a market, change a market's settings, edit a market maker."""
    client, outcomes = world["staff"], Counter()
    cea = Market.objects.get(code="CEA")
    rates = st.sampled_from(["0", "0.005", "0.01", "0.099999"])

    @FUZZ
    @example(
        action="add",
        data={"code": "UKA", "name": "UK Allowance", "tick_size": "0.01",
              "default_reference_price": "40.00", "buy_fee_rate": "0.005",
              "sell_fee_rate": "0"},
    )  # fmt: skip
    @given(
        action=st.sampled_from(["add", "change", "maker"]),
        data=form(
            code=field(st.sampled_from(["UKA", "NZU", "CEA", "EUR", "uka"])),
            name=field(st.text(min_size=1, max_size=40)),
            description=field(st.text(max_size=80)),
            tick_size=field(st.sampled_from(["0.01", "0.05", "0.10"])),
            default_reference_price=field(money(1, 100)),
            buy_fee_rate=field(rates),
            sell_fee_rate=field(rates),
            trading_enabled=field(st.sampled_from(["on", ""])),
        ),
    )
    def fuzz(action, data):
        url = {
            "add": "/admin/market/market/add/",
            "change": f"/admin/market/market/{cea.pk}/change/",
            "maker": f"/admin/market/marketmakerclient/{world['makers'][0]}/change/",
        }[action]
        before = snapshot()
        response = client.post(url, data)
        changed = snapshot() != before
        accepted = response.status_code == 302
        # A change that changes nothing is still a valid form: accepted, nothing written.
        check(outcomes, response, changed=changed, accepted=accepted, replay=action != "add")

    fuzz()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


def test_every_form_is_fuzzed():
    """The forms of the project that write, and the test above that covers each."""
    covered = {
        "market.forms.OrderEntryForm": test_order_entry,
        "market.forms.OrderAmendForm": test_order_amend,
        "liquidity.forms.LiquidityForm": test_create_liquidity,
        "liquidity.forms.ExecuteForm": test_create_liquidity,
        "liquidity.forms.ProvisionCreateForm": test_provisioning,
        "liquidity.forms.ProvisionFundForm": test_provisioning,
        "market.forms.MarketMakerCreateForm": test_market_maker_forms,
        "market.forms.AssetAmountForm": test_market_maker_forms,
        "market.forms.MarketMakerDeactivateForm": test_market_maker_forms,
        "market.forms.HolderTransferForm": test_admin_deposit_and_withdrawal,
        "market.forms.MarketForm": test_admin_market_and_market_maker_forms,
        "market.forms.MarketMakerEditForm": test_admin_market_and_market_maker_forms,
    }
    found = {
        f"{module.__name__}.{name}"
        for module in (market.forms, liquidity.forms)
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, django.forms.BaseForm)
        and value.__module__ == module.__name__
        and "Filters" not in name  # GET filters, read-only
    }
    assert found == set(covered)


# --- what the fuzzing found, pinned -------------------------------------------------------


@pytest.mark.parametrize(
    "next_url",
    ["market-makers", "◧", "x.html", "https://evil.example/", "//evil.example/", "/\\evil"],
)
def test_a_next_that_is_not_a_path_of_this_site_falls_back_to_the_list(world, next_url):
    """`next` without a slash went through `redirect()`, which took it for a view name:
    NoReverseMatch, a 500 after the money had moved. Now only a path of this site is
    followed; anything else goes back to the list."""
    maker = world["makers"][0]
    before = snapshot()
    response = world["staff"].post(
        f"/backoffice/market-makers/{maker}/fund/",
        {"asset": "EUR", "amount": "10", "next": next_url},
    )
    assert response.status_code == 302
    assert response["Location"] == "/backoffice/market-makers/"
    assert snapshot() != before
    assert_all_invariants()


def test_a_next_path_of_this_site_is_followed(world):
    maker = world["makers"][0]
    response = world["staff"].post(
        f"/backoffice/market-makers/{maker}/withdraw/",
        {"asset": "EUR", "amount": "10", "next": "/backoffice/market-makers/?page=2"},
    )
    assert response["Location"] == "/backoffice/market-makers/?page=2"
