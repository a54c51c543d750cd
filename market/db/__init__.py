"""The database layer: every SQL statement of the market, behind named functions.

- `pipeline`: transactions whose statements travel to PostgreSQL in as few round trips as
  the code's reads allow (placing an order: three), typed reads, ids allocated ahead.
- `bulk`: set-based writes (one statement for any number of rows).
- `orders`: the market row and its lock, the resting book in priority order, best prices,
  the book version, and the writes of placements and cancellations.
- `balances`: the balance lock and the writes of balances and ledger entries.
- `notifications`: what the live feed listens to.

Services call these functions with plain values (the placement core's rows); nothing
outside this package and the migrations writes SQL.
"""
