"""A prototype, for measuring only: orders placed in batches under one market lock.

`market.core.batch` decides a batch of orders as placing them one by one would;
`place_batch` gives it the shell `order_place` would need (the market lock and both sides
of the book in the first round trip, with the batch's order ids; every balance the walks
name and the trade and ticket ids in the second; every row and the COMMIT in the third).
`bench/matching.py` runs it beside the engine: each of its clients places the orders it
generates four at a time under one lock (the orders of one client, where the design
would take the orders of every request waiting on the lock).

Not the product: there is no intent table, a batch's orders come from one process, and
the orders a refusal for funds leaves are dropped, not placed by a later batch.
"""


def place_batch(items):
    """Place `items` ((holder, request) pairs, one market) as one batch; returns the
    `BatchOutcome`."""
    from django.utils import timezone

    from market.core import batch as batching
    from market.core.matching import BUY, SELL
    from market.core.placement import Account
    from market.db import orders as db
    from market.db.balances import BalanceLock
    from market.db.pipeline import allocate_ids, one_statement, pipelined_atomic
    from market.models import Order, TicketLog, Trade
    from market.services.audit import ticket_rows_insert
    from market.services.ledger import BalanceSheet
    from market.services.orders import _trade_tickets

    market_id = items[0][1].market.market_id
    with pipelined_atomic():
        # Round trip 1: the market lock, both sides of the book, the batch's order ids.
        market_read = db.MarketRead(market_id=market_id, lock=True)
        reads = {
            side: db.RestingBook(market_id=market_id, side=side, first=64) for side in (BUY, SELL)
        }
        order_ids = allocate_ids({Order: len(items)})
        market_read.wait()
        now = timezone.now()
        market = market_read.rules(today=now.date())
        entries = [
            batching.Entry(Account(holder.pk, holder.kind), request, order_id)
            for (holder, request), order_id in zip(items, order_ids.take(Order), strict=True)
        ]
        books = {side: batching.BatchBook(side, reads[side]) for side in (BUY, SELL)}
        walks = batching.walk_batch(market=market, entries=entries, books=books)
        # Round trip 2: every balance the walks name (and the house's), the trade ids.
        keys = batching.balance_keys(walks)
        lock = BalanceLock(keys, house=any(walk.takes_fees for walk in walks))
        fills = sum(len(walk.result.fills) for walk in walks if walk.refusal is None)
        more = allocate_ids({Trade: fills, TicketLog: fills})
        sheet = BalanceSheet(lock.rows(), house_id=lock.house_id)
        available = {
            (holder, asset): amount
            for holder in {holder for holder, _ in keys}
            for asset, amount in sheet.available_of(holder).items()
        }
        trade_ids = iter(more.take(Trade))
        decided = batching.settle_batch(
            entries=entries,
            walks=walks,
            available=available,
            house_id=sheet.house_id,
            trade_ids=lambda n: [next(trade_ids) for _ in range(n)],
        )
        if not decided.placed:
            return decided
        # Round trip 3: every row, with the COMMIT.
        ticket_ids, tickets = iter(more.take(TicketLog)), []
        trade_tickets = []
        for outcome in decided.placed:
            sheet.apply(outcome.moves, field=outcome.request.amount_field)
            own = [next(ticket_ids) for _ in outcome.trades]
            tickets += _trade_tickets(outcome, own, actor=None, ip=None, now=now)
            trade_tickets += own
        inserted, updated = decided.rows()
        with one_statement():
            db.insert_orders(inserted, now=now)
            if decided.trades:
                ticket_rows_insert(tickets)
                db.insert_trades(decided.trades, ticket_ids=trade_tickets, now=now)
            if updated:
                db.update_orders(updated, now=now)
            sheet.flush()
            if decided.trades:
                db.record_trading(market, last_price=decided.trades[-1].price, today=now.date())
            else:
                db.bump_book_version(market.market_id)
    return decided
