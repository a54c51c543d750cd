"""Response schemas shared by the API's routers (`liquidity.api`, `market.api`)."""

from ninja import Field, Schema


class Out(Schema):
    """A response body: exactly its declared fields (`additionalProperties: false`)."""

    model_config = {"extra": "forbid"}


class DetailOut(Out):
    """401 / 403: not authenticated, or not allowed to manage liquidity."""

    detail: str


class RequestErrorOut(Out):
    """422: the request does not match the schema (pydantic's errors)."""

    detail: list[dict]


class BadRequestOut(Out):
    """400: `bad_request`, a NUL or bytes that are not UTF-8 in the path or the query
    string (`config.middleware.RejectHostileInputMiddleware`), or a body that is not JSON;
    the message under `__all__`."""

    error: str
    detail: dict[str, list[str]]


# Every operation may answer these.
class RateLimitedOut(Out):
    """429: too many calls; `Retry-After` (and `retry_after`) says how many seconds to wait."""

    error: str = Field(examples=["rate_limited"])
    detail: str
    retry_after: int


COMMON = {401: DetailOut, 403: DetailOut, 422: RequestErrorOut, 429: RateLimitedOut}
# ... and the operations that declare no 400 of their own, this one (every operation may
# be sent a hostile query string; those with a 400 of their own share its shape).
HOSTILE_INPUT = {400: BadRequestOut}
