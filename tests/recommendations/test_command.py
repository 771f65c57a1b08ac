"""``manage.py embed_library [--rebuild]`` runs the same pipeline and shows progress."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from recommendations.models import EmbeddingRun
from tests.recommendations.conftest import make_adapter

pytestmark = pytest.mark.django_db


def test_embed_library_embeds_then_only_what_changed_then_everything_with_rebuild(st_model, capsys):
    make_adapter("pixelArt", tags=["pixel art"])
    make_adapter("watercolor", tags=["watercolor"])
    call_command("embed_library")
    out, err = capsys.readouterr()
    assert "2 embedded, 0 unchanged" in out and "embedding: 2/2" in err
    call_command("embed_library", "--json")
    assert json.loads(capsys.readouterr().out) == {"embedded": 0, "unchanged": 2, "indexed": 2, "kind": "exact"}
    call_command("embed_library", "--rebuild", "--json")
    assert json.loads(capsys.readouterr().out)["embedded"] == 2
    assert EmbeddingRun.objects.filter(status=EmbeddingRun.Status.SUCCEEDED).count() == 3


def test_embed_library_fails_with_the_reason(settings):
    settings.EMBEDDING_MODEL = "/missing/model"
    with pytest.raises(CommandError, match="/missing/model does not exist"):
        call_command("embed_library")
    assert EmbeddingRun.objects.get().status == EmbeddingRun.Status.FAILED
