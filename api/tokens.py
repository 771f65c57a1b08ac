"""Creating, checking and revoking personal API tokens: called by the tokens page, the command and the API.

A token is ``lm_`` plus 32 random bytes (URL-safe base64). It is shown once, when created; the database
keeps its SHA-256 digest. A plain, fast hash is right here (unlike passwords): the token has 256 bits of
entropy, so there is nothing to brute-force, and every API request must check one.
"""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from adapters.sanitize import check_storable
from api.models import ApiToken

TOKEN_PREFIX = "lm_"  # noqa: S105 - a marker, not a secret
MAX_NAME = 100
MAX_TOKENS_PER_USER = 50
LAST_USED_RESOLUTION_SECONDS = 60  # write last_used_at at most once a minute per token


class TokenError(Exception):
    """The token is not usable; the message says why (unknown, revoked, inactive user)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create(user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the plaintext token (shown once, never stored)."""
    name = " ".join(name.split())
    if not name:
        raise ValueError("Give the token a name, e.g. the script that will use it.")
    if len(name) > MAX_NAME:
        raise ValueError(f"A token name has at most {MAX_NAME} characters.")
    check_storable(name, "The token name")  # NUL (a form can send it) is refused by PostgreSQL: a 500 before
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_TOKENS_PER_USER:
        raise ValueError(f"You already have {MAX_TOKENS_PER_USER} active tokens: revoke one first.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=plaintext[:10], digest=digest(plaintext))
    return token, plaintext


def authenticate(plaintext: str) -> AbstractBaseUser:
    """The user a token belongs to, or TokenError saying why it cannot be used."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        raise TokenError("This is not a LoRA Manager API token (they start with 'lm_').")
    token = ApiToken.objects.select_related("user").filter(digest=digest(plaintext)).first()
    if token is None:
        raise TokenError("Unknown API token: check it, or create a new one on the API tokens page.")
    if token.revoked_at is not None:
        raise TokenError(f"This API token ('{token.name}') was revoked on {token.revoked_at:%Y-%m-%d}.")
    if not token.user.is_active:
        raise TokenError("The account this token belongs to is disabled.")
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def revoke(user: AbstractBaseUser, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s tokens (a token of someone else is "not found", not "forbidden")."""
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise ValueError("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def for_user(user: AbstractBaseUser):
    return ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at", "-id")
