"""Fuzzing the JSON API with schemathesis, through the WSGI app.

The schema is loaded from `/api/v1/openapi.json`; requests carry a staff bearer token, and
a trader's token on the trader endpoints and the candles.
Cases come from three generators, mixed by Hypothesis:

- schemathesis' positive mode (data the schema allows),
- its negative mode (data the schema forbids: wrong types, missing fields, bad ids),
- realistic requests (real market codes, amounts that are almost right, existing
  operations and market makers), which reach the plan, execute and withdraw logic that
  random strings are refused before.

The market-maker endpoints get bodies of the reference plan's shape (initial balances as
numbers or strings, right or wrong kinds) and retries under the same idempotency key.

Every response must be no server error, carry a documented status code and content type,
and match the declared response schema. At the end, the market's invariants still hold.
"""

from collections import Counter
from datetime import date

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiToken
from config.wsgi import application
from liquidity.models import LiquidityOperation, LiquidityProgram
from liquidity.programs import program_activate, program_create, program_refresh
from liquidity.services import liquidity_execute, liquidity_request_parse
from market.models import MarketMakerClient, Order
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.helpers import assert_all_invariants

pytestmark = pytest.mark.django_db

CASES = 2800  # at least 1,000 requests in all, 30 per operation
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER

# Money as a client sends it: mostly valid amounts, and what a careless client sends.
GOOD_AMOUNTS = st.one_of(
    st.integers(min_value=0, max_value=200_000).map(str),
    st.decimals(min_value=0, max_value=200_000, places=2).map(str),
    st.integers(min_value=0, max_value=200_000),
)
BAD_AMOUNTS = st.one_of(
    st.sampled_from(
        ["-100", "1e5", "NaN", "Infinity", "-Infinity", "0.001", "1,000", " 100 ", "9" * 40, ""]
    ),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.text(max_size=12),
)
AMOUNTS = st.one_of(GOOD_AMOUNTS, GOOD_AMOUNTS, BAD_AMOUNTS)
# A ladder's level as a client writes it: right, almost right (more decimals, out of order,
# shares off 100) or wrong.
PERCENTS = st.one_of(
    st.decimals(min_value=0, max_value=60, places=2).map(str),
    st.sampled_from(["0.2", "0.125", "-1", "NaN", "1e1", "", "50%"]),
    st.floats(allow_nan=False, allow_infinity=False),  # what JSON can carry
    st.integers(min_value=-5, max_value=120),
)
LADDERS = st.none() | st.lists(
    st.fixed_dictionaries({"distance_pct": PERCENTS, "share_pct": PERCENTS}), max_size=12
)
HEADER_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)  # a header value
MARKETS = st.one_of(
    st.just("CEA"), st.just("EUA"), st.sampled_from(["cea", "XYZ", ""]) | st.text(max_size=5)
)


@pytest.fixture
def wsgi_keeps_the_connection():
    """schemathesis calls the WSGI handler itself, whose request signals would close the
    database connection (and with it the test's transaction) after each request;
    Django's test client unhooks them the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def staff_token(db, wsgi_keeps_the_connection):
    """A superuser's token, market makers of both types with funds, two operations and
    some trades."""
    staff = factories.StaffFactory(username="fuzzer")
    _, token = ApiToken.issue(user=staff)
    for _ in range(2):
        factories.market_maker(LP, EUR="300000")
        factories.market_maker(AH, CEA=20000, EUA=5000)
    for code in ("CEA", "EUA"):
        liquidity_execute(
            request=liquidity_request_parse(
                market_code=code, bid_amount_eur="20000", ask_amount_eur="10000"
            ),
            user=staff,
        )
    # Programs in each state the actions start from: one running with its ladder placed.
    for name, code in (("CEA standing", "CEA"), ("EUA draft", "EUA"), ("CEA draft", "CEA")):
        program_create(
            user=staff,
            data={
                "name": name,
                "certificate_type": code,
                "bid_target_eur": "5000",
                "ask_target_eur": "5000",
            },
        )
    running = LiquidityProgram.objects.get(name="CEA standing")
    program_activate(program_id=running.pk, user=staff)
    program_refresh(program_id=running.pk, worker="fuzz")
    # Market makers with no orders, for the market-maker endpoints to deactivate and drain:
    # the ladders above stay, so previews keep a book to price from.
    for _ in range(2):
        factories.market_maker(LP, EUR="1000")
        factories.market_maker(AH, CEA=100)
    trader = factories.trader(EUR="50000", CEA=500)
    order_place(
        owner=trader,
        request=order_request_parse(
            market_code="CEA", side="BUY", order_type="MARKET", quantity=20
        ),
    )
    return token


@pytest.fixture
def trader_token(staff_token):
    """A token of the trader of `staff_token`'s world, who also has resting orders."""
    trader = Order.objects.filter(owner__kind="TRADER").first().owner
    for price in ("13.00", "12.50"):
        order_place(
            owner=trader,
            request=order_request_parse(
                market_code="CEA", side="BUY", order_type="LIMIT", quantity=3, price=price
            ),
        )
    _, token = ApiToken.issue(user=trader.user, scope=ApiToken.Scope.TRADER)
    return token


def trader_order_ids() -> list[int]:
    """The trader's orders, those the fuzzing will place (the next ids), and others'."""
    mine = list(Order.objects.filter(owner__kind="TRADER").values_list("pk", flat=True))
    latest = Order.objects.order_by("-pk").values_list("pk", flat=True).first()
    theirs = Order.objects.exclude(owner__kind="TRADER").values_list("pk", flat=True)[:3]
    return [*mine, *range(latest + 1, latest + 40), *theirs]


# The operations a trader's token calls (the others take the staff token).
TRADER_PATHS = {
    "/api/v1/balances",
    "/api/v1/orders",
    "/api/v1/orders/cancel-all",
    "/api/v1/orders/{order_id}",
    "/api/v1/trades",
    "/api/v1/market/{market_code}/candles",
}
SYMBOLS = st.one_of(
    st.sampled_from(["CEA/EUR", "EUA/EUR"]),
    st.sampled_from(["cea/eur", "CEA", "CEA/USD", "XYZ/EUR", "", "/"]) | st.text(max_size=8),
)
# An order as a trading client sends it: mostly right, sometimes not.
TRADER_ORDERS = st.fixed_dictionaries(
    {
        "symbol": SYMBOLS,
        "type": st.sampled_from(["limit", "market", "LIMIT", "stop"]),
        "side": st.sampled_from(["buy", "sell", "BUY", "short"]),
    },
    optional={
        "amount": st.one_of(st.integers(min_value=1, max_value=50).map(str), AMOUNTS),
        "price": st.one_of(
            st.decimals(min_value=12, max_value=16, places=2).map(str), st.none(), AMOUNTS
        ),
        "cost": st.none() | AMOUNTS,
        "time_in_force": st.none() | st.sampled_from(["GTC", "IOC", "FOK", "gtc", "GTD"]),
        "post_only": st.booleans(),
        "client_order_id": st.none()
        | st.sampled_from(["fuzz-1", "fuzz-2"])
        | st.text(max_size=70),
    },
)

# ... and one a careful client sends: almost always placed.
GOOD_TRADER_ORDERS = st.fixed_dictionaries(
    {
        "symbol": st.just("CEA/EUR"),
        "type": st.just("limit"),
        "side": st.sampled_from(["buy", "sell"]),
        "amount": st.integers(min_value=1, max_value=5).map(str),
        "price": st.decimals(min_value=13, max_value=15, places=2).map(str),
    },
    optional={
        "time_in_force": st.sampled_from(["GTC", "IOC"]),
        "client_order_id": st.sampled_from(["fuzz-good-1", "fuzz-good-2"]),
    },
)


LADDERS = st.one_of(
    st.none(),
    st.just([{"distance_pct": "0.2", "share_pct": "50"}, {"distance_pct": 0.4, "share_pct": 50}]),
    st.sampled_from(["0.2:50, 0.4:30, 0.5:20", "0.1:100", "", "0.5:50, 0.2:50", "x"]),
    st.lists(
        st.fixed_dictionaries(
            {
                "distance_pct": st.one_of(
                    AMOUNTS, st.floats(allow_nan=False, allow_infinity=False)
                ),
                "share_pct": st.one_of(AMOUNTS, st.integers(0, 100)),
            }
        ),
        max_size=11,
    ),
)
TIMES = st.none() | st.sampled_from(["08:00", "18:30", "24:00", "8", ""]) | st.text(max_size=6)
PROGRAM_SETTINGS = {
    "name": st.text(max_size=110),
    "certificate_type": MARKETS,
    "bid_target_eur": AMOUNTS,
    "ask_target_eur": AMOUNTS,
    "ladder": LADDERS,
    "reference_mode": st.sampled_from(["book", "fixed"]),
    "fixed_reference_price": st.none() | AMOUNTS,
    "refresh_interval_seconds": st.integers(min_value=-10, max_value=100_000),
    "refresh_tolerance_pct": AMOUNTS,
    "replenish_threshold_pct": AMOUNTS,
    "replenish_delay_seconds": st.integers(min_value=-10, max_value=100_000),
    "price_floor": st.none() | AMOUNTS,
    "price_ceiling": st.none() | AMOUNTS,
    "max_imbalance_eur": st.none() | AMOUNTS,
    "active_from": TIMES,
    "active_until": TIMES,
    "active_weekdays": st.sampled_from(["12345", "67", "1234567", "8", "11", ""]) | st.text(),
    "timezone": st.sampled_from(["UTC", "Europe/Berlin", "Asia/Shanghai", "Mars/Base", ""])
    | st.text(max_size=70),
    "low_funds_eur": st.none() | AMOUNTS,
    "alert_after_refreshes": st.integers(min_value=-1, max_value=200),
    "notes": st.text(max_size=50),
}


def realistic(
    schema,
    *,
    operations: list[int],
    makers: list[int],
    spare_makers: list[int],
    users: list[int],
    programs: list[int],
    orders: list[int],
):
    """Requests shaped like a client's, with values that are right, almost right or wrong."""
    liquidity = st.fixed_dictionaries(
        {
            "certificate_type": MARKETS,
            "bid_amount_eur": AMOUNTS,
            "ask_amount_eur": AMOUNTS,
        },
        optional={
            "reference_price": st.none() | AMOUNTS,
            "notes": st.text(max_size=600),
            "ladder": LADDERS | st.just([{"distance_pct": "0.1", "share_pct": "100"}]),
        },
    )
    create = st.tuples(liquidity, st.none() | st.sampled_from(["stale", ""]) | st.text()).map(
        lambda pair: {**pair[0], "fingerprint": pair[1]}
    )
    # A market maker type with the asset it holds, or any pair.
    funding = st.sampled_from(
        [("LIQUIDITY_PROVIDER", "EUR"), ("ASSET_HOLDER", "CEA"), ("ASSET_HOLDER", "EUA")]
    ) | st.tuples(
        st.sampled_from(["LIQUIDITY_PROVIDER", "ASSET_HOLDER"]),
        st.sampled_from(["EUR", "CEA", "EUA", "eur", "XYZ"]),
    )
    provision = st.tuples(
        funding,
        st.fixed_dictionaries(
            {"action": st.sampled_from(["create_new", "fund_existing"]), "amount": AMOUNTS},
            optional={
                "count": st.none() | st.integers(min_value=1, max_value=5),
                "mm_ids": st.none() | st.lists(st.sampled_from([*makers, 987654321]), max_size=4),
                "name_prefix": st.text(max_size=140),
            },
        ),
    ).map(lambda pair: {"mm_type": pair[0][0], "asset": pair[0][1], **pair[1]})
    filters = st.fixed_dictionaries(
        {},
        optional={
            "certificate_type": MARKETS,
            "created_by": st.sampled_from(users),
            "date_from": st.dates(min_value=date(2000, 1, 1)).map(str),
            "date_to": st.dates(min_value=date(2000, 1, 1)).map(str),
            "limit": st.integers(min_value=1, max_value=200),
            "offset": st.integers(min_value=0, max_value=5),
        },
    )
    operation_ids = st.sampled_from([*operations, 987654321])
    liquidity_ops = schema["/api/v1/liquidity/preview"]["POST"]
    create_op = schema["/api/v1/liquidity/create"]["POST"]
    provision_op = schema["/api/v1/liquidity/provision"]["POST"]
    list_op = schema["/api/v1/liquidity/operations"]["GET"]
    detail_op = schema["/api/v1/liquidity/operations/{operation_id}"]["GET"]
    withdraw_op = schema["/api/v1/liquidity/operations/{operation_id}/withdraw"]["POST"]
    book_op = schema["/api/v1/market/{market_code}/book"]["GET"]
    program_ids = st.one_of(
        st.sampled_from(programs), st.sampled_from(programs), st.just(987654321)
    )
    kill_op = schema["/api/v1/liquidity/kill-switch"]["POST"]
    program_create_op = schema["/api/v1/liquidity/programs"]["POST"]
    program_list_op = schema["/api/v1/liquidity/programs"]["GET"]
    program_patch_op = schema["/api/v1/liquidity/programs/{program_id}"]["PATCH"]
    program_reads = [
        schema["/api/v1/liquidity/programs/{program_id}"]["GET"],
        schema["/api/v1/liquidity/programs/{program_id}/status"]["GET"],
    ]
    program_actions = [
        schema[f"/api/v1/liquidity/programs/{{program_id}}/{action}"]["POST"]
        for action in ("activate", "pause", "stop")
    ]
    new_program = st.fixed_dictionaries(
        {
            "name": st.sampled_from(["Fuzz CEA", "Fuzz EUA"]) | st.text(max_size=110),
            "certificate_type": MARKETS,
        },
        optional={
            key: value
            for key, value in PROGRAM_SETTINGS.items()
            if key not in ("name", "certificate_type")
        },
    )
    # ... and one a careful client sends: almost always right.
    good_program = st.fixed_dictionaries(
        {
            "name": st.sampled_from(["Fuzz CEA", "Fuzz EUA"]),
            "certificate_type": st.sampled_from(["CEA", "EUA"]),
            "bid_target_eur": GOOD_AMOUNTS,
            "ask_target_eur": GOOD_AMOUNTS,
        },
        optional={
            "ladder": LADDERS,
            "refresh_interval_seconds": st.integers(min_value=5, max_value=3600),
            "active_weekdays": st.sampled_from(["12345", "67", "1234567"]),
            "timezone": st.sampled_from(["UTC", "Europe/Berlin", "Asia/Shanghai"]),
        },
    )
    program_filters = st.fixed_dictionaries(
        {},
        optional={
            "state": st.sampled_from(["draft", "active", "paused", "stopped"]),
            "certificate_type": MARKETS,
            "limit": st.integers(min_value=1, max_value=200),
            "offset": st.integers(min_value=0, max_value=5),
        },
    )
    maker_ids = st.one_of(st.sampled_from(makers), st.just(987654321))
    # Spare makers (no orders), created a provider then a holder, twice: the first pair is
    # funded and drained, the second deactivated and reactivated (so deposits into the
    # first pair can succeed).
    funded_pair, switched_pair = spare_makers[:2], spare_makers[2:]
    spare_ids = st.one_of(st.sampled_from(funded_pair), st.just(987654321))
    switched_ids = st.one_of(st.sampled_from(switched_pair), st.just(987654321))
    right_deposit = st.tuples(
        st.sampled_from(list(zip(funded_pair, ["EUR", "CEA"], strict=True))), GOOD_AMOUNTS
    ).map(lambda pair: (pair[0][0], {"asset": pair[0][1], "amount": pair[1]}))
    maker_list_op = schema["/api/v1/market-makers"]["GET"]
    maker_create_op = schema["/api/v1/market-makers"]["POST"]
    maker_read_op = schema["/api/v1/market-makers/{maker_id}"]["GET"]
    maker_transfers = [
        schema[f"/api/v1/market-makers/{{maker_id}}/{action}"]["POST"]
        for action in ("fund", "withdraw")
    ]
    maker_states = [
        schema[f"/api/v1/market-makers/{{maker_id}}/{action}"]["POST"]
        for action in ("deactivate", "reactivate")
    ]
    new_maker = st.fixed_dictionaries(
        {"name": st.sampled_from(["Fuzz LP", "Fuzz AH"]) | st.text(max_size=160)},
        optional={
            "mm_type": st.sampled_from(["LIQUIDITY_PROVIDER", "ASSET_HOLDER"]),
            "description": st.text(max_size=40),
            "email": st.sampled_from(["desk@example.com", "x"]) | st.text(max_size=20),
            "initial_eur_balance": st.none() | AMOUNTS,
            "initial_balances": st.none()
            | st.dictionaries(st.sampled_from(["CEA", "EUA", "eur", "XYZ"]), AMOUNTS, max_size=3),
        },
    )
    transfer = st.fixed_dictionaries(
        {"asset": st.sampled_from(["EUR", "CEA", "EUA", "eur", "XYZ", ""]), "amount": AMOUNTS}
    )
    keys = st.none() | st.sampled_from(["key-1", "key-2"]) | st.text(HEADER_CHARS, max_size=70)
    order_ids = st.sampled_from([*orders, 987654321])
    create_order_op = schema["/api/v1/orders"]["POST"]
    order_ops = [
        schema["/api/v1/orders/{order_id}"][method] for method in ("GET", "DELETE", "PATCH")
    ]
    amendment = st.fixed_dictionaries(
        {}, optional={"price": AMOUNTS | st.just("13.10"), "amount": AMOUNTS | st.just("1")}
    )
    listing = st.fixed_dictionaries(
        {},
        optional={
            "symbol": SYMBOLS,
            "status": st.sampled_from(["open", "closed", "canceled"]),
            "since": st.integers(min_value=0, max_value=2_000_000_000_000),
            "limit": st.integers(min_value=1, max_value=500),
        },
    )
    trader_cases = [
        TRADER_ORDERS.map(lambda body: create_order_op.Case(body=body)),
        GOOD_TRADER_ORDERS.map(lambda body: create_order_op.Case(body=body)),
        order_ids.map(lambda pk: order_ops[0].Case(path_parameters={"order_id": pk})),
        order_ids.map(lambda pk: order_ops[1].Case(path_parameters={"order_id": pk})),
        st.tuples(order_ids, amendment).map(
            lambda pair: order_ops[2].Case(path_parameters={"order_id": pair[0]}, body=pair[1])
        ),
        st.fixed_dictionaries({}, optional={"symbol": SYMBOLS}).map(
            lambda body: schema["/api/v1/orders/cancel-all"]["POST"].Case(body=body)
        ),
        listing.map(lambda query: schema["/api/v1/orders"]["GET"].Case(query=query)),
        listing.map(
            lambda query: schema["/api/v1/trades"]["GET"].Case(
                query={k: v for k, v in query.items() if k != "status"}
            )
        ),
        st.tuples(
            st.sampled_from(["CEA", "EUA"]),
            st.sampled_from(["1m", "5m", "1h", "1d"]),
            st.none() | st.integers(min_value=0, max_value=2_000_000_000_000),
            st.integers(min_value=1, max_value=500),
        ).map(
            lambda args: schema["/api/v1/market/{market_code}/candles"]["GET"].Case(
                path_parameters={"market_code": args[0]},
                query={
                    "timeframe": args[1],
                    "limit": args[3],
                    **({"since": args[2]} if args[2] is not None else {}),
                },
            )
        ),
    ]
    return st.one_of(
        *trader_cases,
        st.tuples(new_maker, keys).map(
            lambda pair: maker_create_op.Case(
                body=pair[0], headers={"Idempotency-Key": pair[1]} if pair[1] else None
            )
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "mm_type": st.sampled_from(["LIQUIDITY_PROVIDER", "ASSET_HOLDER"]),
                "is_active": st.sampled_from(["true", "false"]),
                "limit": st.integers(min_value=1, max_value=200),
                "offset": st.integers(min_value=0, max_value=5),
            },
        ).map(lambda query: maker_list_op.Case(query=query)),
        maker_ids.map(lambda pk: maker_read_op.Case(path_parameters={"maker_id": pk})),
        *[
            st.tuples(spare_ids, transfer, keys).map(
                lambda triple, op=op: op.Case(
                    path_parameters={"maker_id": triple[0]},
                    body=triple[1],
                    headers={"Idempotency-Key": triple[2]} if triple[2] else None,
                )
            )
            for op in maker_transfers
        ],
        right_deposit.map(
            lambda pair: maker_transfers[0].Case(
                path_parameters={"maker_id": pair[0]}, body=pair[1]
            )
        ),
        st.tuples(switched_ids, st.booleans()).map(
            lambda pair: maker_states[0].Case(
                path_parameters={"maker_id": pair[0]}, body={"cancel_open_orders": pair[1]}
            )
        ),
        switched_ids.map(lambda pk: maker_states[1].Case(path_parameters={"maker_id": pk})),
        new_program.map(lambda body: program_create_op.Case(body=body)),
        good_program.map(lambda body: program_create_op.Case(body=body)),
        st.tuples(
            st.sampled_from(programs),
            st.fixed_dictionaries(
                {},
                optional={
                    "notes": st.text(max_size=50),
                    "ask_target_eur": GOOD_AMOUNTS,
                    "refresh_tolerance_pct": st.sampled_from(["0.5", "1", 2]),
                },
            ),
        ).map(
            lambda pair: program_patch_op.Case(
                path_parameters={"program_id": pair[0]}, body=pair[1]
            )
        ),
        program_filters.map(lambda query: program_list_op.Case(query=query)),
        st.tuples(program_ids, st.fixed_dictionaries({}, optional=PROGRAM_SETTINGS)).map(
            lambda pair: program_patch_op.Case(
                path_parameters={"program_id": pair[0]}, body=pair[1]
            )
        ),
        *[
            program_ids.map(lambda pk, op=op: op.Case(path_parameters={"program_id": pk}))
            for op in program_reads + program_actions
        ],
        st.just(None).map(lambda _: kill_op.Case()),
        liquidity.map(lambda body: liquidity_ops.Case(body=body)),
        st.tuples(create, st.none() | st.text(HEADER_CHARS, max_size=70)).map(
            lambda pair: create_op.Case(
                body=pair[0], headers={"Idempotency-Key": pair[1]} if pair[1] else None
            )
        ),
        provision.map(lambda body: provision_op.Case(body=body)),
        filters.map(lambda query: list_op.Case(query=query)),
        operation_ids.map(lambda pk: detail_op.Case(path_parameters={"operation_id": pk})),
        operation_ids.map(lambda pk: withdraw_op.Case(path_parameters={"operation_id": pk})),
        st.tuples(st.sampled_from(["CEA", "EUA"]), st.integers(min_value=1, max_value=500)).map(
            lambda pair: book_op.Case(
                path_parameters={"market_code": pair[0]}, query={"depth": pair[1]}
            )
        ),
    )


def test_api_fuzz_no_server_error_and_every_response_matches_the_schema(staff_token, trader_token):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
    staff_auth = {"Authorization": f"Bearer {staff_token}"}
    trader_auth = {"Authorization": f"Bearer {trader_token}"}
    strategy = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE),
        schema.as_strategy(GenerationMode.NEGATIVE),
        realistic(
            schema,
            operations=list(LiquidityOperation.objects.values_list("pk", flat=True)),
            makers=list(MarketMakerClient.objects.values_list("pk", flat=True)),
            spare_makers=list(
                MarketMakerClient.objects.exclude(holder__orders__isnull=False)
                .order_by("pk")
                .values_list("pk", flat=True)
            ),
            users=list(LiquidityOperation.objects.values_list("created_by_id", flat=True)),
            programs=list(LiquidityProgram.objects.values_list("pk", flat=True)),
            orders=trader_order_ids(),
        ),
    )
    calls = Counter()

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case):
        auth = trader_auth if case.path in TRADER_PATHS else staff_auth
        response = case.call(headers=auth)
        calls[(case.method, case.path, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except BaseExceptionGroup as failures:  # schemathesis' FailureGroup
            raise AssertionError(str(failures)) from None

    fuzz()

    total = sum(calls.values())
    by_operation = Counter()
    for (method, path, _), count in calls.items():
        by_operation[(method, path)] += count
    statuses = {(method, path, status) for method, path, status in calls}
    print(f"\n{total} API requests:", dict(sorted(calls.items())))
    assert total >= 1000
    # The kill switch takes no input: every call is the same request, Hypothesis repeats it
    # only now and then.
    kill = by_operation.pop(("POST", "/api/v1/liquidity/kill-switch"), 0)
    assert len(by_operation) == 31 and min(by_operation.values()) >= 30, by_operation
    assert kill >= 10, kill
    # The fuzzing reached the real work, not only the validation errors: plans, reads,
    # and writes that changed the market.
    for reached in [
        ("POST", "/api/v1/liquidity/preview", 200),
        ("GET", "/api/v1/liquidity/operations/{operation_id}", 200),
        ("GET", "/api/v1/market/{market_code}/book", 200),
        ("GET", "/api/v1/liquidity/programs/{program_id}/status", 200),
        ("POST", "/api/v1/liquidity/programs", 201),
        ("PATCH", "/api/v1/liquidity/programs/{program_id}", 200),
        ("POST", "/api/v1/market-makers", 201),
        ("GET", "/api/v1/market-makers/{maker_id}", 200),
        ("POST", "/api/v1/market-makers/{maker_id}/fund", 200),
        ("GET", "/api/v1/balances", 200),
        ("POST", "/api/v1/orders", 201),
        ("GET", "/api/v1/orders/{order_id}", 200),
        ("GET", "/api/v1/market/{market_code}/candles", 200),
    ]:
        assert reached in statuses, reached
    # The trader's orders were changed, not only read.
    assert statuses & {
        ("DELETE", "/api/v1/orders/{order_id}", 200),
        ("PATCH", "/api/v1/orders/{order_id}", 200),
        ("POST", "/api/v1/orders/cancel-all", 200),
    }
    assert statuses & {
        ("POST", "/api/v1/liquidity/create", 201),
        ("POST", "/api/v1/liquidity/provision", 201),
        ("POST", "/api/v1/liquidity/operations/{operation_id}/withdraw", 200),
    }
    assert statuses & {
        ("POST", "/api/v1/liquidity/programs/{program_id}/activate", 200),
        ("POST", "/api/v1/liquidity/programs/{program_id}/stop", 200),
        ("POST", "/api/v1/liquidity/kill-switch", 200),
    }
    assert_all_invariants()


# --- what the fuzzing found, pinned -----------------------------------------------------


@pytest.fixture
def api(staff_token):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {staff_token}")


@pytest.mark.parametrize("value", [2**63, 10**30, 0, -5])
def test_ids_out_of_range_are_a_422_not_a_500(api, value):
    """An id beyond 64 bits made SQLite raise OverflowError (a 500) in the operations
    filter and in provisioning; ids are now bounded by the schema."""
    listed = api.get(f"/api/v1/liquidity/operations?created_by={value}")
    assert listed.status_code == 422
    funded = api.post(
        "/api/v1/liquidity/provision",
        {
            "action": "fund_existing",
            "mm_type": "LIQUIDITY_PROVIDER",
            "asset": "EUR",
            "amount": "10",
            "mm_ids": [value],
        },
        content_type="application/json",
    )
    assert funded.status_code == 422
    assert funded.json()["detail"][0]["loc"][-2:] == ["mm_ids", 0]


def test_a_body_that_is_not_json_is_a_400_in_the_api_error_shape(api):
    response = api.post(
        "/api/v1/liquidity/preview", b"\x00not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad_request",
        "detail": {"__all__": ["Cannot parse request body"]},
    }


def test_withdrawing_an_unknown_operation_answers_like_reading_one(api):
    read = api.get("/api/v1/liquidity/operations/987654321")
    withdrawn = api.post("/api/v1/liquidity/operations/987654321/withdraw")
    assert read.status_code == withdrawn.status_code == 404
    assert (
        read.json()
        == withdrawn.json()
        == {
            "error": "not_found",
            "message": "No operation 987654321.",
        }
    )


def test_every_operation_declares_its_responses():
    """No operation answers with an undeclared status or a free-form object."""
    from django.test import Client

    spec = Client().get("/api/v1/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert {"401", "403", "422"} <= set(responses), (method, path)
            for status, response in responses.items():
                schema = response["content"]["application/json"]["schema"]
                assert schema != {"type": "object", "additionalProperties": True}, (
                    method,
                    path,
                    status,
                )


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/liquidity/preview",
            {"certificate_type": "\x00", "bid_amount_eur": "100", "ask_amount_eur": "0"},
            "certificate_type",
        ),
        (
            "/api/v1/liquidity/create",
            {
                "certificate_type": "CEA",
                "bid_amount_eur": "100",
                "ask_amount_eur": "0",
                "notes": "a\x00b",
            },
            "notes",
        ),
        (
            "/api/v1/liquidity/provision",
            {
                "action": "create_new",
                "mm_type": "LIQUIDITY_PROVIDER",
                "asset": "EUR",
                "amount": "1000",
                "name_prefix": "LP\x00",
            },
            "name_prefix",
        ),
    ],
)
def test_a_nul_character_is_a_400_not_a_500(api, path, body, field):
    """PostgreSQL refuses NUL in text: a market code looked up, notes or a name stored
    with one was a 500 there (found by the fuzzing on PostgreSQL). The services now
    refuse them like any other bad input, on every database."""
    before = (LiquidityOperation.objects.count(), MarketMakerClient.objects.count())
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.json()["detail"]
    assert (LiquidityOperation.objects.count(), MarketMakerClient.objects.count()) == before


def test_no_two_schemas_share_a_name_in_the_openapi_schema():
    """Two response schemas named alike (the book's `LevelOut` and a ladder level's) made
    one replace the other in the OpenAPI schema, and schemathesis found every program
    answering against the book's: a name means one shape across the API's routers."""
    import inspect

    from django.test import Client
    from ninja import Schema

    from liquidity import api as liquidity_api
    from liquidity import api_programs
    from market import api as market_api
    from market import api_trader

    components = Client().get("/api/v1/openapi.json").json()["components"]["schemas"]
    seen = {}
    for module in (liquidity_api, api_programs, market_api, api_trader):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, Schema) or cls.__module__ != module.__name__:
                continue
            first = seen.setdefault(name, cls)  # twice only with the same fields
            assert first.model_fields.keys() == cls.model_fields.keys(), name
            if name in components:
                assert set(components[name].get("properties", {})) == set(cls.model_fields), name
