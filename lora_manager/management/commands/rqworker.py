"""django-rq's ``rqworker``, offered here because django_rq is not an installed app (settings.INSTALLED_APPS).

``run_worker`` runs it; prefer ``run_worker`` yourself (docs/operations.md).
"""

from django_rq.management.commands.rqworker import Command

__all__ = ["Command"]
