"""The API tokens page: each user creates, lists and revokes their own tokens (any role may have tokens;
a token can do exactly what its owner's role allows)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api import tokens


@never_cache
@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    created, error, status = None, "", 200
    if request.method == "POST":
        try:
            token, plaintext = tokens.create(request.user, request.POST.get("name", ""))
        except ValueError as exc:
            error, status = str(exc), 422
        else:
            created = {"token": token, "plaintext": plaintext}
    context = {"tokens": tokens.for_user(request.user), "created": created, "error": error}
    template = "api/_tokens.html" if request.htmx else "api/tokens.html"
    return render(request, template, context, status=status)


@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = tokens.revoke(request.user, pk)
    except ValueError as exc:
        if request.htmx:
            return render(
                request, "api/_tokens.html", {"tokens": tokens.for_user(request.user), "error": str(exc)}, status=404
            )
        messages.error(request, str(exc))
        return redirect("api_tokens")
    if request.htmx:
        return render(request, "api/_tokens.html", {"tokens": tokens.for_user(request.user), "revoked": token})
    messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("api_tokens")
