app_name = "market"

urlpatterns: list = []
