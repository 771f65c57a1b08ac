"""The three roles, as Django groups: viewer (browse), editor (curate, generate, import), admin (all).

Permissions are derived from our apps' models, so a model added later is covered without editing
this file. Views check permissions (``permission_required``), never group names.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission, User

OUR_APPS = ("lora_manager", "adapters", "generation", "recommendations", "archive")
VIEWER, EDITOR, ADMIN = "viewer", "editor", "admin"
ROLES = (VIEWER, EDITOR, ADMIN)


def _our_permissions():
    return Permission.objects.filter(content_type__app_label__in=OUR_APPS)


def ensure_roles() -> dict[str, Group]:
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    ours = _our_permissions()
    groups = {}
    viewer, _ = Group.objects.get_or_create(name=VIEWER)
    viewer.permissions.set(ours.filter(codename__startswith="view_"))
    editor, _ = Group.objects.get_or_create(name=EDITOR)
    editor.permissions.set(ours)
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    admin.permissions.set(Permission.objects.all())
    groups.update({VIEWER: viewer, EDITOR: editor, ADMIN: admin})
    return groups


def ensure_roles_after_migrate(sender, **kwargs) -> None:
    if sender.name == "archive":  # the last of our apps: every permission exists by now
        ensure_roles()


def set_role(user: User, role: str) -> None:
    """Put a user in exactly one role; admins also get the Django admin (is_staff)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    groups = ensure_roles()
    user.groups.remove(*[g for name, g in groups.items() if name != role])
    user.groups.add(groups[role])
    user.is_staff = role == ADMIN or user.is_superuser
    user.save(update_fields=["is_staff"])


def role_of(user: User) -> str:
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in (ADMIN, EDITOR, VIEWER):
        if role in names:
            return role
    return ""
