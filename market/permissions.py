"""The permissions of the market's staff actions, named once.

Superusers hold them all; a back-office role is a group holding the ones it needs.
"""

# Create, edit, fund, withdraw, deactivate and reactivate market makers (the back-office
# pages, the admin and provisioning from Create Liquidity alike).
MANAGE_MARKET_MAKERS = "market.change_marketmakerclient"
# Deposit into and withdraw from traders' balances.
FUND_TRADERS = "market.change_balance"
# Cancel other holders' resting orders.
CANCEL_ORDERS = "market.change_order"
# Create markets (their settings change under Django's own `market.change_market`).
CREATE_MARKETS = "market.add_market"
