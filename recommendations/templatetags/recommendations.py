"""``{% load recommendations %}{% prompt_box %}``: the "LoRAs for this prompt" box on any page (library, composer)."""

from __future__ import annotations

from typing import Any

from django import template

from recommendations.views import BASE_MODEL_CHOICES

register = template.Library()


@register.inclusion_tag("recommendations/_prompt_box.html", takes_context=True)
def prompt_box(
    context: template.Context, base_model: str = "", push_url: bool = False, field_label: str = "Prompt"
) -> dict[str, Any]:
    """An empty box; suggestions load into it by htmx as the user types. ``base_model`` preselects
    the family (the composer passes its checkpoint's)."""
    return {
        "request": context.get("request"),
        "csrf_token": context.get("csrf_token"),
        "perms": context.get("perms"),
        "query": "",
        "base_model": base_model,
        "base_models": BASE_MODEL_CHOICES,
        "results": None,
        "push_url": push_url,
        "field_label": field_label,
    }
