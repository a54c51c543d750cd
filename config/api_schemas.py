"""Schemas shared by the API's routers (`liquidity.api`, `market.api`, ...): the exact
number type of requests, and the response shapes every operation may answer."""

from decimal import Decimal
from typing import Annotated

from ninja import Field, Schema
from pydantic import PlainValidator, WithJsonSchema

from market.validation import MAX_ID

# An `Idempotency-Key`: any text but control characters (a NUL cannot be stored).
KEY_PATTERN = r"^[^\x00-\x1f\x7f]*$"
NUMBER_KIND = 'Send a JSON number or a decimal string, e.g. 1000.50 or "1000.50".'


def _number_as_sent(value):
    """A JSON number (a `Decimal` read from its text, or an `int`) or a string, unchanged:
    the one strict parser (`market.core.money`) reads it and answers with field errors."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(NUMBER_KIND)
    return value


# An amount, price or percentage in a request: a JSON number or a decimal string. The
# API's parser (`config.api.ExactJsonParser`) reads JSON numbers as `Decimal` from their
# text, so 1000.5 is exactly 1000.5, never a binary float's neighbour.
ExactNumber = Annotated[
    Decimal | int | str,
    PlainValidator(_number_as_sent),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": "A JSON number (read exactly as written) or a decimal string",
        }
    ),
]


class Out(Schema):
    """A response body: exactly its declared fields (`additionalProperties: false`)."""

    model_config = {"extra": "forbid"}


class In(Schema):
    """A request body: unknown keys are refused (422), so a misspelt field is never
    silently ignored."""

    model_config = {"extra": "forbid"}


# A row id: bounded, so that no id reaches the database out of its integer range (SQLite
# raises OverflowError beyond 64 bits).
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class ValidationErrorOut(Out):
    """400: input the user can fix, messages per field (`__all__` for the request)."""

    error: str = Field(examples=["validation_error"])
    detail: dict[str, list[str]]


class NotFoundOut(Out):
    error: str = Field(examples=["not_found"])
    message: str


class ConflictOut(Out):
    """409: the request is valid but the thing is not in a state that allows it (already
    inactive, already active...); nothing was written."""

    error: str = Field(examples=["conflict"])
    message: str


class IdempotencyKeyReusedOut(Out):
    """422 `idempotency_key_reused`: the key already did something else for this user;
    that stands and nothing was changed."""

    error: str = Field(examples=["idempotency_key_reused"])
    message: str


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
