"""The permission of liquidity management, named once: preview, create and withdraw
liquidity (the back-office pages, the admin, the JSON API and `create_liquidity`)."""

MANAGE_LIQUIDITY = "liquidity.manage_liquidity"
