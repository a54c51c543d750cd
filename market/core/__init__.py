"""The market's rules as pure functions over plain values (`Decimal`, ints, dataclasses).

- `money`: the one strict parser of amounts, prices and quantities; rounding, fees,
  splits and display.
- `matching`: price-time matching of one order against the resting book.
- `placement`: what an order does (fills, reservation, statuses, the rows to write, what
  the trader reads); order types as policies; liquidity's resting orders; cancellations.
- `book`: the order book by price level, the mid and the reference price.
- `makers`: what each kind of market maker holds and which side of the book it provides.

Nothing here touches the database, settings or the clock; the one thing imported from
Django is `ValidationError`, the project's error type for input a person can fix.
"""
