app_name = "liquidity"

urlpatterns: list = []
