"""Collecting every input problem of one request before refusing it, and saying it in one
line where there is no form to put it next to (management commands); the refusal of an
idempotency key reused for a different request; the largest row id."""

from collections import defaultdict

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

# Row ids are 64-bit: a larger number names no row, and overflows SQLite's integer.
MAX_ID = 2**63 - 1


class FieldErrors:
    """ValidationErrors gathered by field, so one refusal names everything to fix."""

    def __init__(self):
        self.errors: dict[str, list] = defaultdict(list)

    def collect(self, parse, *args, **kwargs):
        """`parse(*args, **kwargs)`, or None after recording the ValidationError it raised."""
        try:
            return parse(*args, **kwargs)
        except ValidationError as error:
            error.update_error_dict(self.errors)
            return None

    def add(self, field: str, message: str) -> None:
        self.errors[field].append(message)

    def raise_any(self) -> None:
        if self.errors:
            raise ValidationError(dict(self.errors))


def one_line(error: ValidationError) -> str:
    """A refusal as one line: `field: message` per field, `; ` between them."""
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    return "; ".join(f"{field}: {' '.join(texts)}" for field, texts in error.message_dict.items())


class IdempotencyKeyReused(ValidationError):
    """An idempotency key (an API `Idempotency-Key`, the Create Liquidity page's hidden
    key, an order's `client_order_id`) that already names a different request. The first
    request's result stands; this one changes nothing. The API answers 422
    `idempotency_key_reused`; a page shows `message` above its form."""

    message_text = (
        "This idempotency key was already used for a different request; nothing was "
        "changed. Send a new key for a new request."
    )

    def __init__(self, field: str = NON_FIELD_ERRORS, message: str | None = None):
        super().__init__({field: message or self.message_text})
