"""CSV exports of liquidity: the operations (with the operations page's filters) and the
refreshes of programs. Written by `config.csv_export`; each reads its rows in a constant
number of queries, whatever their number (chunked iteration, no query per row)."""

from django.core.exceptions import NON_FIELD_ERRORS
from django.views.decorators.http import require_GET

from config.csv_export import csv_refused, csv_response
from config.http import staff_required
from liquidity import selectors
from liquidity.forms import OperationFiltersForm, RefreshFiltersForm
from liquidity.models import ProgramRefresh
from liquidity.permissions import MANAGE_LIQUIDITY
from liquidity.plan import REFERENCE_SOURCE_LABELS

CHUNK = 500

backoffice = staff_required(MANAGE_LIQUIDITY)

OPERATION_COLUMNS = (
    "Ticket",
    "Created at (UTC)",
    "Market",
    "State",
    "Created by",
    "Reference price (EUR)",
    "Reference source",
    "Target BID (EUR)",
    "Target ASK (EUR)",
    "Actual BID (EUR)",
    "Actual ASK (EUR)",
    "ASK quantity",
    "Orders created",
    "Withdrawn at (UTC)",
    "Withdrawn by",
    "Program",
    "Notes",
)


def _operation_cells(operation) -> tuple:
    """One operation annotated by `selectors.with_progress` (its market, ticket and users
    selected with it)."""
    withdrawn_by = operation.withdrawn_by
    return (
        operation.ticket.ticket_id,
        operation.created_at,
        operation.market.code,
        selectors.operation_state(operation),
        operation.created_by.get_username(),
        operation.reference_price,
        REFERENCE_SOURCE_LABELS.get(operation.reference_source, operation.reference_source),
        operation.target_bid_eur,
        operation.target_ask_eur,
        operation.actual_bid_eur,
        operation.actual_ask_eur,
        operation.actual_ask_quantity,
        operation.orders_created,
        operation.withdrawn_at,
        withdrawn_by.get_username() if withdrawn_by else None,
        operation.program_id,  # blank for a one-shot operation
        operation.notes,
    )


@backoffice
@require_GET
def operations_csv(request):
    """The operations the operations page lists for the same query string (all pages)."""
    filters = OperationFiltersForm(request.GET or None, creators=selectors.operation_creators())
    operations = selectors.operations_list(filters=filters.filters()).iterator(chunk_size=CHUNK)
    return csv_response(
        "liquidity-operations",
        OPERATION_COLUMNS,
        (_operation_cells(operation) for operation in operations),
    )


REFRESH_FIELDS = {
    "ID": "id",
    "Created at (UTC)": "created_at",
    "Program ID": "program_id",
    "Program": "program__name",
    "Market": "program__market__code",
    "Outcome": "outcome",
    "Reason": "reason",
    "Reference price (EUR)": "reference_price",
    "Orders withdrawn": "orders_withdrawn",
    "Orders placed": "orders_placed",
    "BID placed (EUR)": "bid_placed_eur",
    "ASK placed (EUR)": "ask_placed_eur",
    "Operation ticket": "operation__ticket__ticket_id",
    "Ticket": "ticket__ticket_id",
    "Worker": "worker",
}
OUTCOME_LABELS = dict(ProgramRefresh.Outcome.choices)


def _refresh_rows(queryset):
    outcome = list(REFRESH_FIELDS).index("Outcome")
    for values in queryset.values_list(*REFRESH_FIELDS.values()).iterator(chunk_size=CHUNK):
        row = list(values)
        row[outcome] = OUTCOME_LABELS.get(row[outcome], row[outcome])
        yield row


def _form_errors(form) -> list[str]:
    return [
        message if name == NON_FIELD_ERRORS else f"{name}: {message}"
        for name, messages in form.errors.items()
        for message in messages
    ]


@backoffice
@require_GET
def program_refreshes_csv(request):
    """Refreshes newest first, filtered by `program` (id), `outcome`, `since` and `until`
    (dates, inclusive); a wrong filter answers 400 saying which."""
    form = RefreshFiltersForm(request.GET)
    if not form.is_valid():
        return csv_refused(*_form_errors(form))
    refreshes = selectors.program_refreshes(filters=form.filters())
    return csv_response("program-refreshes", tuple(REFRESH_FIELDS), _refresh_rows(refreshes))
