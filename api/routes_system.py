"""/api/v1/status (staff), /api/v1/dashboard and /api/v1/me."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema

from api.auth import require, require_staff
from lora_manager import system_status
from lora_manager.dashboard import figures as dashboard_figures
from lora_manager.roles import role_of

router = Router(tags=["system"])


class Me(Schema):
    username: str
    role: str
    is_staff: bool
    permissions: list[str]


@router.get("/me", response=Me)
def me(request: HttpRequest):
    """Who the token or session belongs to, and what it may do."""
    user = request.user
    return {
        "username": user.get_username(),
        "role": role_of(user),
        "is_staff": user.is_staff,
        "permissions": sorted(user.get_all_permissions()),
    }


@router.get("/status", response=dict[str, Any])
def status(request: HttpRequest):
    """Database, Redis, RQ, SD.Next backends, GPU, embeddings, disks and schedules (staff only)."""
    require_staff(request, "read the system status")
    return system_status.collect()


@router.get("/dashboard", response=dict[str, Any])
def figures(request: HttpRequest):
    """Everything the dashboard shows: library, usage, recommendations and the activity feed."""
    require(request, "adapters.view_adapter", "read the dashboard")
    return dashboard_figures.collect()
