"""The signed-in user's own API tokens: listed, and revocable one by one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import api_tokens_of
from accounts.services import api_tokens_revoke
from config.http import client_ip


@login_required
def api_tokens(request):
    """The user's tokens, newest first: name, prefix, when created, last used, revoked."""
    return render(request, "accounts/api_tokens.html", {"tokens": api_tokens_of(request.user)})


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
