"""Collecting every input problem of one request before refusing it, and saying it in one
line where there is no form to put it next to (management commands)."""

from collections import defaultdict

from django.core.exceptions import ValidationError


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
