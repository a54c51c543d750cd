"""The JSON API at /api/v1/ (staff only; session with CSRF, or a bearer API token)."""

from ninja import NinjaAPI

api = NinjaAPI(
    title="Carbon Cash Market API",
    version="1",
    description="Liquidity management and market data. Money travels as decimal strings.",
    urls_namespace="api",
)
