"""The staff API against the reference plan's client types (`reference/liquidity.ts`).

A client written against those TypeScript interfaces must work here: every response it
reads carries every field the interface declares, of a kind the client can read. Richer
fields beside them are fine. Two differences are the API's own, documented in the staff
guide: money and prices are decimal strings (a TypeScript `number` field may hold one:
`Number("1000.50")` reads it, and no binary float rounds it on the way), and ids are
integers (a `string` id field may hold one).

Requests are sent as that client sends them: amounts as JSON numbers, written out as text
by the test so that the bytes on the wire are exactly a JavaScript client's.
"""

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import ApiToken
from liquidity.models import LiquidityOperation
from market.models import Balance, MarketMakerClient, Order, TicketLog
from market.tests import factories
from market.tests.helpers import assert_all_invariants

INTERFACES = Path(__file__).parent / "reference" / "liquidity.ts"
DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


# --- the reference's types, read from the TypeScript ------------------------------------


class TypeScript:
    """The small part of TypeScript the reference's types use: interfaces, type aliases,
    `string` / `number` / `boolean`, string literals, unions, `T[]`, `Array<T>`, inline
    object types and optional (`?`) fields."""

    TOKEN = re.compile(r"\s*(?:(//[^\n]*)|('[^']*')|([A-Za-z_][A-Za-z0-9_]*)|(\S))")

    def __init__(self, source: str):
        self.tokens = [
            literal or word or symbol
            for comment, literal, word, symbol in self.TOKEN.findall(source)
            if not comment and (literal or word or symbol)
        ]
        self.position = 0
        self.types: dict[str, tuple] = {}
        while self.position < len(self.tokens):
            self.expect("export")
            if self.take("interface"):
                name = self.next()
                self.types[name] = self.object_type()
            else:
                self.expect("type")
                name = self.next()
                self.expect("=")
                self.types[name] = self.type_expression()
                self.expect(";")

    def next(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def take(self, token: str) -> bool:
        if self.position < len(self.tokens) and self.tokens[self.position] == token:
            self.position += 1
            return True
        return False

    def expect(self, token: str) -> None:
        found = self.next()
        assert found == token, f"expected {token!r}, found {found!r}"

    def object_type(self) -> tuple:
        self.expect("{")
        fields = {}
        while not self.take("}"):
            name = self.next()
            optional = self.take("?")
            self.expect(":")
            fields[name] = (optional, self.type_expression())
            self.expect(";")
        return ("object", fields)

    def type_expression(self) -> tuple:
        members = [self.postfix()]
        while self.take("|"):
            members.append(self.postfix())
        return members[0] if len(members) == 1 else ("union", members)

    def postfix(self) -> tuple:
        kind = self.term()
        while self.take("["):
            self.expect("]")
            kind = ("array", kind)
        return kind

    def term(self) -> tuple:
        if self.tokens[self.position] == "{":
            return self.object_type()
        token = self.next()
        if token.startswith("'"):
            return ("literal", token.strip("'"))
        if token == "Array":
            self.expect("<")
            item = self.type_expression()
            self.expect(">")
            return ("array", item)
        if token in ("string", "number", "boolean"):
            return ("primitive", token)
        return ("reference", token)


REFERENCE = TypeScript(INTERFACES.read_text()).types


def violations(value, kind, path: str = "$") -> list[str]:
    """Where `value` (a decoded JSON response) breaks the reference type `kind`; [] if it
    conforms."""
    tag = kind[0]
    if tag == "reference":
        return violations(value, REFERENCE[kind[1]], path)
    if tag == "union":
        failures = [violations(value, member, path) for member in kind[1]]
        return [] if any(not failure for failure in failures) else failures[0]
    if tag == "literal":
        return [] if value == kind[1] else [f"{path}: {value!r} is not {kind[1]!r}"]
    if tag == "array":
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not an array"]
        return [
            v for i, item in enumerate(value) for v in violations(item, kind[1], f"{path}[{i}]")
        ]
    if tag == "object":
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        found = []
        for name, (optional, field_kind) in kind[1].items():
            if value.get(name) is None:
                if not optional:
                    found.append(f"{path}.{name}: missing")
                continue
            found += violations(value[name], field_kind, f"{path}.{name}")
        return found
    primitive, field = kind[1], path.rsplit(".", 1)[-1]
    if primitive == "boolean":
        ok = isinstance(value, bool)
    elif primitive == "number":  # a JSON number, or money as a decimal string
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) or (
            isinstance(value, str) and DECIMAL_TEXT.fullmatch(value) is not None
        )
    else:  # string; an id may be an integer
        is_id = field == "id" or field.endswith("_id")
        ok = isinstance(value, str) or (is_id and type(value) is int)
    return [] if ok else [f"{path}: {value!r} is not a {primitive}"]


def conforms(value, type_name: str) -> None:
    found = violations(value, ("reference", type_name))
    assert not found, f"{type_name}: " + "; ".join(found)


MAKERS_USED = REFERENCE["LiquidityCreateResult"][1]["market_makers_used"][1]


def makers_used_conform(entries) -> None:
    found = violations(entries, MAKERS_USED, "$.market_makers_used")
    assert entries and not found, found


# --- the reader itself ------------------------------------------------------------------


def test_the_reference_types_are_read_whole():
    assert set(REFERENCE) == {
        "MarketMakerAllocation",
        "LiquidityPlan",
        "MissingAssets",
        "LiquidityPreview",
        "LiquidityCreateResult",
        "MarketMakerType",
        "MarketMaker",
    }
    plan = REFERENCE["LiquidityPlan"][1]
    assert plan["price_levels"] == (
        False,
        (
            "array",
            (
                "object",
                {
                    "price": (False, ("primitive", "number")),
                    "percentage": (False, ("primitive", "number")),
                },
            ),
        ),
    )
    assert REFERENCE["LiquidityPreview"][1]["missing_assets"][0] is True  # optional


@pytest.mark.parametrize(
    ("value", "broken"),
    [
        (
            {"mm_id": 1, "mm_name": "A", "mm_type": "ASSET_HOLDER", "allocation": "1"},
            "orders_count: missing",
        ),
        (
            {
                "mm_id": 1,
                "mm_name": "A",
                "mm_type": "HOLDER",
                "allocation": "1",
                "orders_count": 1,
            },
            "mm_type",
        ),
        (
            {
                "mm_id": 1,
                "mm_name": "A",
                "mm_type": "ASSET_HOLDER",
                "allocation": "1e3",
                "orders_count": 1,
            },
            "allocation",
        ),
        (
            {
                "mm_id": True,
                "mm_name": "A",
                "mm_type": "ASSET_HOLDER",
                "allocation": "1",
                "orders_count": 1,
            },
            "mm_id",
        ),
    ],
)
def test_the_checker_names_what_a_reference_client_could_not_read(value, broken):
    found = violations(value, ("reference", "MarketMakerAllocation"))
    assert len(found) == 1 and broken in found[0]


# --- the flow, as the reference's client runs it ----------------------------------------


@pytest.fixture
def client(db):
    staff = factories.StaffFactory(username="reference-client")
    _, token = ApiToken.issue(user=staff)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def send(client, method: str, path: str, body: str | None = None, **headers):
    """`body` is sent as written: JSON numbers exactly as a JavaScript client writes them."""
    call = getattr(client, method)
    if body is None:
        return call(f"/api/v1{path}", **headers)
    return call(f"/api/v1{path}", data=body, content_type="application/json", **headers)


def test_a_reference_client_runs_the_whole_liquidity_flow(client):
    # Market makers, created with the reference's fields and amounts as numbers.
    provider = send(
        client,
        "post",
        "/market-makers",
        '{"name": "LP-Integration-Test", "email": "lp-int@test.example", '
        '"mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": 200000}',
    )
    assert provider.status_code == 201, provider.content
    conforms(provider.json(), "MarketMaker")
    assert provider.json()["mm_type"] == "LIQUIDITY_PROVIDER"
    assert Decimal(provider.json()["eur_balance"]) == Decimal("200000")
    lp_id = provider.json()["id"]

    holder = send(
        client,
        "post",
        "/market-makers",
        '{"name": "AH-Integration-Test", "email": "ah-int@test.example", '
        '"mm_type": "ASSET_HOLDER", "initial_balances": {"CEA": 10000}}',
    )
    assert holder.status_code == 201, holder.content
    conforms(holder.json(), "MarketMaker")
    assert holder.json()["balances"]["CEA"]["available"] == "10000"

    listed = send(client, "get", "/market-makers")
    assert listed.status_code == 200 and listed.json()["count"] == 2
    for maker in listed.json()["items"]:
        conforms(maker, "MarketMaker")

    # The wrong kind of funding: the reference's message, and nothing created.
    refused = send(
        client,
        "post",
        "/market-makers",
        '{"name": "AH-Wrong", "mm_type": "ASSET_HOLDER", "initial_eur_balance": 100}',
    )
    assert refused.status_code == 400
    (message,) = refused.json()["detail"]["initial_eur_balance"]
    assert message.startswith("ASSET_HOLDER cannot have EUR balance")
    assert MarketMakerClient.objects.count() == 2

    # A preview asking more EUR than the provider holds: short, with what to do.
    request = '{"certificate_type": "CEA", "bid_amount_eur": 300000.5, "ask_amount_eur": 50000}'
    short = send(client, "post", "/liquidity/preview", request)
    assert short.status_code == 200, short.content
    conforms(short.json(), "LiquidityPreview")
    assert short.json()["can_execute"] is False
    missing = short.json()["missing_assets"]
    conforms(missing, "MissingAssets")
    assert missing["asset_type"] == "EUR"
    shortfall = Decimal(missing["shortfall"])
    assert shortfall >= Decimal("100000.50")
    # A BID shortfall carries a margin of one level's price per maker (rounding).
    assert shortfall >= Decimal(missing["required"]) - Decimal(missing["available"])
    assert short.json()["suggested_actions"]

    # Executing now is refused, naming the shortfall the reference's way.
    refused = send(client, "post", "/liquidity/create", request)
    assert refused.status_code == 400
    conforms(refused.json()["missing_assets"], "MissingAssets")
    assert not LiquidityOperation.objects.exists()

    # Provision the shortfall (the reference's ProvisionRequest: no asset field for EUR),
    # sent as the JSON number a JavaScript client makes of it.
    provisioned = send(
        client,
        "post",
        "/liquidity/provision",
        f'{{"action": "fund_existing", "mm_type": "LIQUIDITY_PROVIDER", '
        f'"amount": {shortfall}, "mm_ids": [{lp_id}]}}',
    )
    assert provisioned.status_code == 201, provisioned.content
    funded = send(client, "get", f"/market-makers/{lp_id}")
    conforms(funded.json(), "MarketMaker")
    funds = Decimal("200000") + shortfall
    assert Decimal(funded.json()["eur_balance"]) == funds

    preview = send(client, "post", "/liquidity/preview", request)
    conforms(preview.json(), "LiquidityPreview")
    assert preview.json()["can_execute"] is True
    for side in ("bid_plan", "ask_plan"):
        conforms(preview.json()[side], "LiquidityPlan")
        assert sum(level["percentage"] for level in preview.json()[side]["price_levels"]) == 100
    assert Decimal(preview.json()["bid_plan"]["total_amount"]) <= funds

    created = send(
        client,
        "post",
        "/liquidity/create",
        request[:-1] + ', "notes": "Integration test execution"}',
    )
    assert created.status_code == 201, created.content
    result = created.json()
    conforms(result, "LiquidityCreateResult")
    makers_used_conform(result["market_makers_used"])
    assert result["success"] is True and result["orders_created"] == 6
    used = {entry["mm_id"]: entry for entry in result["market_makers_used"]}
    assert used[lp_id]["mm_type"] == "LIQUIDITY_PROVIDER"
    assert used[lp_id]["amount"] == result["bid_liquidity_eur"]
    assert used[holder.json()["id"]]["amount"] == str(result["ask_quantity"])
    assert Order.objects.filter(side="BUY", status="OPEN").count() == 3

    # The provider's EUR is locked behind its bids: its available balance went down.
    locked = send(client, "get", f"/market-makers/{lp_id}").json()
    assert Decimal(locked["eur_balance"]) < funds
    assert Decimal(locked["balances"]["EUR"]["locked"]) == Decimal(result["bid_liquidity_eur"])

    operation_id = result["liquidity_operation_id"]
    read = send(client, "get", f"/liquidity/operations/{operation_id}")
    assert read.status_code == 200
    makers_used_conform(read.json()["market_makers_used"])
    listed = send(client, "get", "/liquidity/operations")
    makers_used_conform(listed.json()["items"][0]["market_makers_used"])

    withdrawn = send(client, "post", f"/liquidity/operations/{operation_id}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["orders_cancelled"] == 6
    makers_used_conform(withdrawn.json()["operation"]["market_makers_used"])
    released = send(client, "get", f"/market-makers/{lp_id}").json()
    assert Decimal(released["eur_balance"]) == funds
    assert_all_invariants()


def test_market_maker_actions_answer_a_reference_market_maker(client):
    made = send(
        client,
        "post",
        "/market-makers",
        '{"name": "LP", "mm_type": "LIQUIDITY_PROVIDER", "initial_eur_balance": 1000.5}',
    ).json()
    path = f"/market-makers/{made['id']}"
    for action, body in [
        ("fund", '{"asset": "EUR", "amount": 99.5}'),
        ("withdraw", '{"asset": "EUR", "amount": 0.5}'),
        ("deactivate", '{"cancel_open_orders": false}'),
        ("reactivate", None),
    ]:
        response = send(client, "post", f"{path}/{action}", body)
        assert response.status_code == 200, (action, response.content)
        conforms(response.json()["market_maker"], "MarketMaker")
        assert TicketLog.objects.filter(ticket_id=response.json()["ticket_id"]).exists()
    assert Balance.objects.get(holder__market_maker__pk=made["id"], asset="EUR").available == (
        Decimal("1099.50")
    )


def test_a_changed_plan_answers_a_reference_preview(client):
    factories.market_maker("LIQUIDITY_PROVIDER", EUR="200000")
    factories.market_maker("ASSET_HOLDER", CEA=10000)
    body = json.dumps(
        {
            "certificate_type": "CEA",
            "bid_amount_eur": 1000,
            "ask_amount_eur": 1000,
            "fingerprint": "stale",
        }
    )
    response = send(client, "post", "/liquidity/create", body)
    assert response.status_code == 409
    conforms(response.json()["plan"], "LiquidityPreview")
