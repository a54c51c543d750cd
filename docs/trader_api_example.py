#!/usr/bin/env python3
"""The trader API end to end, with Python's standard library only (see trader-api.md).

With a trader token (created on /accounts/tokens/), against a running server:

    python docs/trader_api_example.py --url http://127.0.0.1:8000 --token TOKEN

prints the balances, places a post-only limit buy below the best ask (retried once with
the same client_order_id, which places nothing twice), lists the open orders, amends the
order's price, cancels it (a second cancel answers 409), and prints the balances again:
what the order reserved is free again. It touches no other order of yours (so no
cancel-all here). Exits non-zero on any unexpected answer.
"""

import argparse
import json
import os
import sys
import uuid
from decimal import Decimal
from urllib.error import HTTPError
from urllib.request import Request, urlopen

SYMBOL = "CEA/EUR"


class Api:
    def __init__(self, url: str, token: str):
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None, expect=(200,)):
        data = None if body is None else json.dumps(body).encode()
        request = Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urlopen(request, timeout=10) as response:
                status, payload = response.status, json.load(response)
        except HTTPError as error:
            status, payload = error.code, json.load(error)
        print(f"{method} {path} -> {status}")
        if status not in expect:
            sys.exit(f"unexpected answer: {json.dumps(payload, indent=2)}")
        return status, payload


def show_balances(api: Api) -> dict:
    _, balances = api.call("GET", "/balances")
    base = SYMBOL.split("/")[0]
    for asset in ("EUR", base):
        row = balances[asset]
        print(
            f"  {asset:>4}: free {row['free']:>12}  used {row['used']:>10}  total {row['total']}"
        )
    return balances


def show_order(order: dict) -> None:
    print(
        f"  order {order['id']}: {order['status']} {order['side']} {order['amount']} "
        f"{order['symbol']} @ {order['price']} {order['timeInForce']}"
        f"{' post-only' if order['postOnly'] else ''}, filled {order['filled']}, "
        f"remaining {order['remaining']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("API_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("API_TOKEN"))
    args = parser.parse_args()
    if not args.token:
        sys.exit("Give --token (or API_TOKEN): a trader token from /accounts/tokens/.")
    api = Api(args.url, args.token)

    print("Balances before:")
    before = show_balances(api)

    # A price well inside the book: 2 % below the best ask (or the best bid), on the tick.
    _, book = api.call("GET", f"/market/{SYMBOL.split('/')[0]}/book?depth=5")
    reference = Decimal(book["best_ask"] or book["best_bid"] or book["last_price"] or "10")
    price = (reference * Decimal("0.98")).quantize(Decimal("0.01"))
    print(f"  best bid {book['best_bid']}, best ask {book['best_ask']}: buying at {price}")

    order_request = {
        "symbol": SYMBOL,
        "type": "limit",
        "side": "buy",
        "amount": "2",
        "price": str(price),
        "time_in_force": "GTC",
        "post_only": True,
        "client_order_id": f"example-{uuid.uuid4().hex[:12]}",
    }
    _, order = api.call("POST", "/orders", order_request, expect=(201,))
    show_order(order)
    # A retry (say the answer was lost): the same order, nothing placed twice.
    _, retried = api.call("POST", "/orders", order_request, expect=(200,))
    assert retried["id"] == order["id"], "a retry placed a second order"
    print(f"  retried with the same client_order_id: the same order {retried['id']}")

    print("Balances with the order open (its EUR is `used`):")
    show_balances(api)

    _, open_orders = api.call("GET", f"/orders?status=open&symbol={SYMBOL}")
    print(f"  {len(open_orders)} open order(s): {[o['id'] for o in open_orders]}")
    assert order["id"] in [o["id"] for o in open_orders]

    new_price = str(price - Decimal("0.05"))
    _, amended = api.call("PATCH", f"/orders/{order['id']}", {"price": new_price})
    replaced = amended["info"]["replaced_order_id"]
    show_order(amended)
    if replaced:
        print(f"  (cancel-replace: order {amended['id']} replaced order {replaced})")

    _, cancelled = api.call("DELETE", f"/orders/{amended['id']}")
    show_order(cancelled)
    assert cancelled["status"] == "canceled"
    status, again = api.call("DELETE", f"/orders/{amended['id']}", expect=(409,))
    print(f"  cancelling it again: {status} {again['error']}")

    print("Balances after:")
    after = show_balances(api)
    print(
        f"  EUR used {before['EUR']['used']} -> {after['EUR']['used']}; "
        f"free {before['EUR']['free']} -> {after['EUR']['free']}"
    )


if __name__ == "__main__":
    main()
