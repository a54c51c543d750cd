"""Back-office pages of liquidity programs: the list with the kill switch, the settings
form (create, edit), and one program's status with its actions.

Thin views, as in `liquidity.views`: parse a form, call one service or selector, render
a page or its partial (`page.html#partial`, named after the DOM id it replaces). Every
page needs a staff user with the liquidity permission (403 otherwise, the login page when
anonymous), every POST is CSRF-protected, and every service checks the permission again.
Stop and the kill switch ask to confirm on a page of their own, so they work without
JavaScript: the first POST shows what will happen, the confirmed one does it.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.http import client_ip, render_page
from liquidity import program_status as status_reads
from liquidity import programs as services
from liquidity.forms_programs import ProgramForm, program_initial
from liquidity.models import LiquidityProgram
from liquidity.views import backoffice
from market.core.money import EUR, describe
from market.forms import apply_service_errors

LIST = "liquidity/programs/list.html"
FORM = "liquidity/programs/form.html"
STATUS = "liquidity/programs/status.html"
CONFIRM = "liquidity/programs/confirm.html"

State = LiquidityProgram.State


def _program_or_404(pk: int) -> LiquidityProgram:
    program = LiquidityProgram.objects.select_related("market").filter(pk=pk).first()
    if program is None:
        raise Http404("No such liquidity program.")
    return program


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _stopped_message(stopped: services.Stopped, *, what: str) -> str:
    names = ", ".join(program.name for program in stopped.programs) or "no program was running"
    freed = " and ".join(
        describe(asset, amount) for asset, amount in sorted(stopped.released.items())
    )
    return (
        f"{what}: {_count(len(stopped.programs), 'program')} stopped ({names}), "
        f"{_count(stopped.orders_withdrawn, 'order')} withdrawn"
        + (f", {freed} released" if freed else "")
        + f". Ticket {stopped.ticket_id}."
    )


# ============================================================================ list


@backoffice
@require_GET
def program_list(request):
    """Every program with its state, targets, ladder, refreshes and open alerts; the open
    alerts of all programs in a banner; the kill switch."""
    programs = list(status_reads.programs_list())
    for program in programs:
        program.ladder_text = services.program_ladder(program).as_text()
    context = {
        "programs": programs,
        "alerts": status_reads.open_alerts(),
        "reach": status_reads.kill_switch_reach(),
    }
    return render(request, LIST, context)


@backoffice
@require_POST
def programs_kill(request):
    """The kill switch. Without `confirm`: the page that says what it will stop and
    withdraw. Confirmed: every active and paused program stopped, their orders withdrawn,
    in one transaction with one ticket; back to the list with what it did."""
    if request.POST.get("confirm") != "yes":
        context = {
            "kind": "kill",
            "reach": status_reads.kill_switch_reach(),
            "action": reverse("liquidity:programs-kill"),
            "back": reverse("liquidity:program-list"),
        }
        return render(request, CONFIRM, context)
    stopped = services.programs_kill(user=request.user, ip=client_ip(request))
    messages.success(request, _stopped_message(stopped, what="Kill switch pulled"))
    return redirect("liquidity:program-list")


# ============================================================================ form


def _form_page(request, form: ProgramForm, program: LiquidityProgram | None):
    return render(request, FORM, {"form": form, "program": program})


@backoffice
@require_http_methods(["GET", "POST"])
def program_new(request):
    """A new program (a draft: nothing is placed until it is activated)."""
    if request.method == "GET":
        return _form_page(request, ProgramForm(initial=program_initial()), None)
    form = ProgramForm(request.POST)
    if form.is_valid():
        try:
            program = services.program_create(
                user=request.user, data=form.values(), ip=client_ip(request)
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(
                request,
                f"Program {program.name} created as a draft: activate it to place its ladder.",
            )
            return redirect("liquidity:program", pk=program.pk)
    return _form_page(request, form, None)


@backoffice
@require_http_methods(["GET", "POST"])
def program_edit(request, pk: int):
    """Change a program's settings; an active one is refreshed on the next worker pass."""
    program = _program_or_404(pk)
    if request.method == "GET":
        return _form_page(request, ProgramForm(initial=program_initial(program)), program)
    form = ProgramForm(request.POST)
    if form.is_valid():
        try:
            program = services.program_update(
                program_id=pk, user=request.user, data=form.values(), ip=client_ip(request)
            )
        except LiquidityProgram.DoesNotExist:
            raise Http404("No such liquidity program.") from None
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            note = (
                " The worker places the new settings on its next pass."
                if program.state == State.ACTIVE
                else ""
            )
            messages.success(request, f"Program {program.name} saved.{note}")
            return redirect("liquidity:program", pk=program.pk)
    return _form_page(request, form, program)


# ============================================================================ status


def _status_context(pk: int) -> dict:
    status = status_reads.program_status(program_id=pk)
    if status is None:
        raise Http404("No such liquidity program.")
    program = status.program
    reference = status.reference
    totals = []
    for asset, (available, locked) in sorted(status.inventory_totals.items()):
        held = available + locked
        value = held if asset == EUR else (held * reference if reference else None)
        totals.append({"asset": asset, "available": available, "locked": locked, "value": value})
    return {
        "status": status,
        "program": program,
        "ladder_text": services.program_ladder(program).as_text(),
        "inventory_totals": totals,
        "can_activate": program.state != State.ACTIVE,
        "can_pause": program.state == State.ACTIVE,
        "can_stop": program.state in (State.ACTIVE, State.PAUSED),
        "reference_moved_pct": (
            (reference - status.ladder_reference) * 100 / status.ladder_reference
            if reference and status.ladder_reference
            else None
        ),
    }


@backoffice
@require_GET
def program_detail(request, pk: int):
    """The program's status; htmx polls its `#program-status` part every few seconds."""
    return render_page(request, STATUS, "program-status", _status_context(pk))


def _transition(request, pk: int, service, done: str):
    _program_or_404(pk)
    try:
        program = service(program_id=pk, user=request.user, ip=client_ip(request))
    except LiquidityProgram.DoesNotExist:
        raise Http404("No such liquidity program.") from None
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, done.format(name=program.name))
    return redirect("liquidity:program", pk=pk)


@backoffice
@require_POST
def program_activate(request, pk: int):
    return _transition(
        request,
        pk,
        services.program_activate,
        "Program {name} is active: a worker places its ladder on its next pass.",
    )


@backoffice
@require_POST
def program_pause(request, pk: int):
    return _transition(
        request,
        pk,
        services.program_pause,
        "Program {name} is paused: its orders stay in the book, nothing refreshes them.",
    )


@backoffice
@require_POST
def program_stop(request, pk: int):
    """Without `confirm`: what stopping will withdraw. Confirmed: stopped, its orders
    withdrawn, back to its status with what it did."""
    program = _program_or_404(pk)
    if request.POST.get("confirm") != "yes":
        context = {
            "kind": "stop",
            "program": program,
            "reach": status_reads.kill_switch_reach(program_id=pk),
            "action": reverse("liquidity:program-stop", args=[pk]),
            "back": reverse("liquidity:program", args=[pk]),
        }
        return render(request, CONFIRM, context)
    try:
        stopped = services.program_stop(program_id=pk, user=request.user, ip=client_ip(request))
    except LiquidityProgram.DoesNotExist:
        raise Http404("No such liquidity program.") from None
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _stopped_message(stopped, what=f"Stopped {program.name}"))
    return redirect("liquidity:program", pk=pk)
