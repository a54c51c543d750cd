"""The signed-in user's own API tokens: listed, created (trader tokens, the secret shown
once) and revocable one by one.

Everyone signed in may trade, so anyone may create trader tokens here. Staff tokens are
never made here: `manage.py create_api_token` issues them after the second factor."""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.forms import TraderTokenForm
from accounts.selectors import api_tokens_of
from accounts.services import api_tokens_revoke, trader_token_create
from config.http import client_ip

PAGE = "accounts/api_tokens.html"


def _fresh_form() -> TraderTokenForm:
    return TraderTokenForm(initial={"creation_key": uuid.uuid4().hex})


def _render(request, *, form, new_token=None, new_secret=None):
    context = {
        "tokens": api_tokens_of(request.user),
        "form": form,
        "new_token": new_token,
        "new_secret": new_secret,
    }
    return render(request, PAGE, context)


@login_required
def api_tokens(request):
    """The user's tokens, newest first: name, scope, prefix, when created, last used,
    revoked; and the form that creates a trader token."""
    return _render(request, form=_fresh_form())


@login_required
@require_POST
@never_cache
def api_token_create(request):
    """Create a trader token and show its secret on this response only (it is not
    stored, so the page is never cached and a reload cannot show it again). A resubmit
    of the same form names the token it made instead of making another."""
    form = TraderTokenForm(request.POST)
    if form.is_valid():
        try:
            result = trader_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                creation_key=form.cleaned_data["creation_key"],
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error(None, error)  # by field, or above the form
        else:
            if not result.created:
                messages.info(
                    request,
                    f"This form already created token {result.token.prefix}…; its secret was "
                    "shown once. Revoke it if you did not copy it, and create a new one.",
                )
                return redirect("accounts:api_tokens")
            messages.success(
                request,
                f"Token {result.token.prefix}… created ({result.ticket.ticket_id}). Copy it "
                "now: it is shown only this once.",
            )
            return _render(
                request, form=_fresh_form(), new_token=result.token, new_secret=result.secret
            )
    return _render(request, form=form)


@login_required
@require_POST
def api_token_revoke(request, pk: int):
    """Revoke one of the user's own tokens; anyone else's is not found (404)."""
    result = api_tokens_revoke(
        token_ids=[pk], actor=request.user, owner=request.user, ip=client_ip(request)
    )
    if result.revoked:
        token, ticket = result.revoked[0], result.tickets[0]
        messages.success(
            request, f"Token {token.prefix}… revoked ({ticket.ticket_id}); the API refuses it."
        )
    elif result.already_revoked:
        messages.info(request, f"Token {result.already_revoked[0].prefix}… was revoked already.")
    else:
        raise Http404("No such token of yours.")
    return redirect("accounts:api_tokens")
