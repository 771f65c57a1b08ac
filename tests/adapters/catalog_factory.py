"""A small, varied catalog written straight to the database (no files), for gallery, bulk and detail tests."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from itertools import count

from django.utils import timezone

from adapters.models import Adapter, AdapterFile, LibraryRoot, Tag

_ids = count(1)


def make_adapter(name: str, tags: tuple[str, ...] = (), root: LibraryRoot | None = None, files: int = 1, **fields):
    """An adapter with ``files`` present files under ``root`` (created if not given) and ``tags``."""
    n = next(_ids)
    fields.setdefault("sha256", hashlib.sha256(f"{name}-{n}".encode()).hexdigest())
    adapter = Adapter.objects.create(name=name, **fields)
    root = root or LibraryRoot.objects.get_or_create(path="/lib/one")[0]
    for copy in range(files):
        AdapterFile.objects.create(
            adapter=adapter, root=root, path=f"{root.path}/{name}-{n}-{copy}.safetensors", size=1, mtime_ns=1
        )
    if tags:  # straight into the link table: no edit hooks (re-embedding) for test data
        through = Adapter.tags.through
        links = [through(adapter_id=adapter.pk, tag_id=Tag.objects.get_or_create(name=t)[0].pk) for t in tags]
        through.objects.bulk_create(links)
    return adapter


def sample_catalog() -> dict[str, Adapter]:
    """Eight adapters covering every filter value and sort key; keys are their names."""
    now = timezone.now()
    one = LibraryRoot.objects.get_or_create(path="/lib/one")[0]
    two = LibraryRoot.objects.get_or_create(path="/lib/two")[0]
    specs = [
        (
            "alpha knight",
            dict(
                base_model="SDXL",
                network_type="LoRA",
                size=500,
                rank=32,
                rating=5,
                usage_count=9,
                trigger_words=["knight armor"],
                tags=("anime", "armor"),
                alias="xyloprime",
            ),
        ),
        (
            "beta witch",
            dict(
                base_model="SDXL",
                network_type="LoCon",
                size=100,
                rank=8,
                rating=2,
                usage_count=3,
                description="<p>A <b>gothic</b> witch</p>",
                tags=("anime",),
                favorite=True,
            ),
        ),
        (
            "gamma dragon",
            dict(
                base_model="SD1",
                network_type="LoRA",
                size=900,
                rank=None,
                rating=0,
                tensor_sha256="a" * 64,
                tags=("dragon",),
                root=two,
            ),
        ),
        (
            "delta dragon copy",
            dict(
                base_model="SD1", network_type="LoRA", size=901, rank=4, tensor_sha256="a" * 64, active=False, root=two
            ),
        ),
        (
            "epsilon city",
            dict(base_model="Flux", network_type="LoHa", size=300, rank=64, status="missing", tags=("city", "armor")),
        ),
        (
            "zeta robot",
            dict(
                base_model="Flux",
                network_type="LoRA",
                size=50,
                rank=16,
                status="offline",
                issues=["preview zeta.png: not an image"],
                files=2,
            ),
        ),
        ("eta cat", dict(base_model="Unknown", network_type="LoRA", size=10, status="error", favorite=True)),
        ("theta ship", dict(base_model="SDXL", network_type="LoRA", size=700, rank=128, rating=4, usage_count=30)),
    ]
    made = {}
    for position, (name, fields) in enumerate(specs):
        fields = dict(fields)
        fields.setdefault("root", one)
        if fields.get("usage_count"):
            fields["last_used_at"] = now - timedelta(days=fields["usage_count"])
        adapter = make_adapter(name, **fields)
        Adapter.objects.filter(pk=adapter.pk).update(
            created_at=now - timedelta(days=100 - position), updated_at=now - timedelta(hours=position)
        )
        made[name] = Adapter.objects.get(pk=adapter.pk)
    return made
