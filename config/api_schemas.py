"""Response schemas shared by the API's routers (`liquidity.api`, `market.api`)."""

from ninja import Schema


class Out(Schema):
    """A response body: exactly its declared fields (`additionalProperties: false`)."""

    model_config = {"extra": "forbid"}


class DetailOut(Out):
    """401 / 403: not authenticated, or not allowed to manage liquidity."""

    detail: str


class RequestErrorOut(Out):
    """422: the request does not match the schema (pydantic's errors)."""

    detail: list[dict]


# Every operation may answer these.
COMMON = {401: DetailOut, 403: DetailOut, 422: RequestErrorOut}
