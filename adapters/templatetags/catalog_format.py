"""Template filters for catalog values: ``{% load catalog_format %}`` then ``|base_label``, ``|human_date``."""

from __future__ import annotations

from django import template

from adapters import display

register = template.Library()


@register.filter
def base_label(value: str | None) -> str:
    return display.base_model_label(value)


@register.filter
def type_label(value: str | None) -> str:
    return display.network_type_label(value)


@register.filter
def human_date(value) -> str:
    return display.human_datetime(value)
