"""The library gallery at 100,000 adapters: server time of typical requests, and the process's peak RSS.

Seeds a realistic catalog (wide rows with kohya header metadata, ~3 tags each from a skewed set of 600,
a file each in one of three library folders, some duplicates, missing files, issues and usage), then
times the whole view (middleware, queries, template rendering) through Django's test client for
searches, filter combinations, sorts and deep pages, in a freshly spawned process (so its peak RSS is
a web process's, not the seeder's). Every seeded row is deleted afterwards, so it can run against a
scratch database that holds other data. Runs on whichever database is configured, and on SQLite as well
when that is PostgreSQL (``benchmarks/engines.py``). Targets (issue 17) are printed beside the figures:
first-request p95 < 100 ms on SQLite, < 50 ms on PostgreSQL; the first request right after a write
p50 < 60 ms (the facet columns re-read only what the write changed).
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import time
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone

from adapters import gallery
from adapters.models import Adapter, AdapterFile, AdapterStatus, LibraryRoot, Tag
from benchmarks.engines import on_sqlite_too
from benchmarks.fresh_process import in_fresh_process
from benchmarks.library import STYLES, SUBJECTS, TAGS
from lora_manager.roles import VIEWER, set_role
from tests.factories.lora_files import kohya_metadata

TARGET_AFTER_WRITE_P50_MS = 60
MARK = "bench-gallery"  # every seeded root path and the bench user carry it
BATCH = 2000

_BASES = ["SDXL"] * 50 + ["SD1"] * 25 + ["Flux"] * 12 + ["SD2"] * 3 + ["SD3"] * 3 + ["Other"] * 2 + ["Unknown"] * 5
_TYPES = ["LoRA"] * 80 + ["LoCon"] * 10 + ["LoHa"] * 4 + ["LoKr"] * 3 + ["DoRA"] * 2 + ["OFT"]
_STATUSES = [AdapterStatus.OK] * 95 + [AdapterStatus.MISSING] * 3 + [AdapterStatus.OFFLINE, AdapterStatus.ERROR]


def _tag_names() -> list[str]:
    names = [w.replace("_", " ") for w in TAGS] + STYLES + SUBJECTS
    names += [f"topic {i}" for i in range(600 - len(names))]
    return names


def _adapter(rng: random.Random, pk: int, offset: int, metadata: str, shared: list[str], now) -> Adapter:
    """One realistic adapter row: kohya header metadata (a wide row, as in real catalogs), a few duplicates."""
    style, subject = rng.choice(STYLES), rng.choice(SUBJECTS)
    name = f"{style}_{subject}_{offset:06d}"
    used = rng.random() < 0.3
    header = json.loads(metadata)
    header["ss_output_name"] = name
    header["ss_tag_frequency"] = json.dumps({f"10_{style}": {w: rng.randint(1, 90) for w in rng.sample(TAGS, 12)}})
    return Adapter(
        id=pk,
        name=name,
        alias=f"{style}{subject}{offset}",
        size=rng.randint(10, 900) * 1_000_000,
        sha256=f"{rng.getrandbits(256):064x}",
        tensor_sha256=rng.choice(shared) if rng.random() < 0.02 else f"{rng.getrandbits(256):064x}",
        base_model=rng.choice(_BASES),
        network_type=rng.choice(_TYPES),
        rank=rng.choice((4, 8, 16, 32, 32, 64, 128, None)),
        alpha=8.0,
        trigger_words=[f"{style} style", subject][: rng.randint(1, 2)],
        training_tags=[[w, rng.randint(1, 90)] for w in rng.sample(TAGS, 10)],
        preferred_weight=rng.choice((None, 0.6, 0.8, 1.0)),
        description=f"<p>A {style} LoRA for {subject}s. " + " ".join(rng.sample(TAGS, 15)) + "</p>",
        active=rng.random() < 0.9,
        favorite=rng.random() < 0.05,
        status=rng.choice(_STATUSES),
        header_metadata=header,
        issues=["sidecar: unreadable JSON"] if rng.random() < 0.02 else [],
        usage_count=rng.randint(1, 400) if used else 0,
        last_used_at=now - timedelta(minutes=rng.randint(1, 500_000)) if used else None,
        rating=rng.choice((0, 0, 0, 0, 1, 2, 3, 4, 5)),
    )


def seed(count: int, seed_value: int = 7) -> dict:
    """Insert ``count`` adapters with tags and files; returns what to delete afterwards."""
    rng = random.Random(seed_value)
    now = timezone.now()
    tag_names = _tag_names()
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(tag_names))]  # a few tags are everywhere
    existing_tags = set(Tag.objects.filter(name__in=tag_names).values_list("name", flat=True))
    Tag.objects.bulk_create([Tag(name=n) for n in tag_names if n not in existing_tags], ignore_conflicts=True)
    tag_ids = dict(Tag.objects.filter(name__in=tag_names).values_list("name", "pk"))
    roots = [LibraryRoot.objects.create(path=f"/{MARK}/{n}") for n in ("models/Lora", "nas/loras", "usb/lora")]
    metadata = json.dumps(kohya_metadata("sdxl", output_name="x"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(id) FROM adapters_adapter")
        first_id = (cursor.fetchone()[0] or 0) + 1
    through = Adapter.tags.through
    shared_hashes = [f"{rng.getrandbits(256):064x}" for _ in range(max(1, count // 100))]
    started = time.perf_counter()
    created = now - timedelta(days=730)
    with transaction.atomic():
        for chunk_start in range(0, count, BATCH):  # generated and written a chunk at a time: little memory
            adapters, files, links = [], [], []
            for offset in range(chunk_start, min(count, chunk_start + BATCH)):
                pk = first_id + offset
                adapters.append(_adapter(rng, pk, offset, metadata, shared_hashes, now))
                for name in set(rng.choices(tag_names, weights, k=rng.choice((0, 1, 2, 3, 3, 4, 5, 6)))):
                    links.append(through(adapter_id=pk, tag_id=tag_ids[name]))
                root = roots[0] if offset % 10 < 7 else roots[1 + offset % 2]
                for copy in range(2 if offset % 97 == 0 else 1):
                    path = f"{root.path}/{adapters[-1].name}{'-copy' if copy else ''}.safetensors"
                    files.append(AdapterFile(adapter_id=pk, root=root, path=path, size=1, mtime_ns=1))
            Adapter.objects.bulk_create(adapters)
            AdapterFile.objects.bulk_create(files)
            through.objects.bulk_create(links)
            ids = range(first_id + chunk_start, first_id + chunk_start + len(adapters))  # "date added": 2 years
            Adapter.objects.filter(pk__in=ids).update(created_at=created + timedelta(minutes=chunk_start // 3))
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # ids were given explicitly: move the sequence past them
            cursor.execute("SELECT setval(pg_get_serial_sequence('adapters_adapter', 'id'), %s)", [first_id + count])
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return {"first_id": first_id, "last_id": first_id + count - 1, "roots": [r.pk for r in roots], "seconds": seconds}


def cleanup(seeded: dict) -> None:
    """Delete every seeded row (tags stay if anything else uses them)."""
    ids = range(seeded["first_id"], seeded["last_id"] + 1)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        with transaction.atomic():
            Adapter.tags.through.objects.filter(adapter_id__in=chunk).delete()
            AdapterFile.objects.filter(adapter_id__in=chunk).delete()
            Adapter.objects.filter(pk__in=chunk)._raw_delete(connection.alias)
    LibraryRoot.objects.filter(pk__in=seeded["roots"]).delete()
    Tag.objects.filter(name__in=_tag_names(), adapters__isnull=True).delete()
    get_user_model().objects.filter(username=MARK).delete()


def cases(seeded: dict) -> list[tuple[str, str, bool]]:
    """(name, query string, htmx?) for typical searches, filters, sorts and deep pages."""
    pages = (seeded["last_id"] - seeded["first_id"] + 1) // 48
    root = seeded["roots"][1]
    return [
        ("landing page (full)", "", False),
        ("list view (full)", "view=list", False),
        ("search one word", "q=samurai", True),
        ("search two words", "q=neon+dragon", True),
        ("search rare name", "q=000123", True),
        ("search tag word", "q=steampunk", True),
        ("search 2 chars", "q=ox", True),
        ("search miss", "q=zzqx", True),
        ("base SDXL", "base=SDXL", True),
        ("base+type+active", "base=SDXL&base=Flux&type=LoRA&active=1", True),
        ("tag any", "tag=solo", True),
        ("tags all", "tag=solo&tag=night&tag_mode=all", True),
        ("rare tag", "tag=topic+400", True),
        ("favorites", "favorite=1", True),
        ("status missing+issues", "status=missing&status=issues", True),
        ("duplicates", "dup=1", True),
        ("library folder", f"root={root}", True),
        ("search+filters+sort", "q=pixel&base=SDXL&active=1&sort=-used", True),
        ("sort newest", "sort=-added", True),
        ("sort updated", "sort=-updated", True),
        ("sort size", "sort=-size", True),
        ("sort rank", "sort=-rank", True),
        ("sort rating", "sort=-rating", True),
        ("sort most used", "sort=-used", True),
        ("sort last used", "sort=-last_used", True),
        ("deep page name", f"page={pages // 2}", True),
        ("last page", "page=last", True),
        ("deep page newest", f"sort=-added&page={pages - 10}", True),
        ("deep page filtered", "base=SDXL&sort=-size&page=400", True),
    ]


COMPOSER_SEARCHES = [  # the composer's "Add a LoRA" box: same index, its own ordering and 20 results
    ("composer search one word", "samurai"),
    ("composer search two words", "neon dragon"),
    ("composer search tag word", "steampunk"),
    ("composer search 2 chars", "ox"),
    ("composer search miss", "zzqx"),
]


def measure_composer_search(client: Client, rounds: int) -> list[dict]:
    """Server time of the composer's LoRA search fragment (kept out of the gallery's overall figures)."""
    results = []
    for name, query in COMPOSER_SEARCHES:
        url = "/generate/loras/search/?" + urlencode({"q": query})
        response = client.get(url, headers={"HX-Request": "true"})
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            client.get(url, headers={"HX-Request": "true"})
            samples.append((time.perf_counter() - started) * 1000)
        shown = response.content.decode().count('role="option"')
        results.append({"case": name, "url": url, "htmx": True, "shown": shown, **_stats(samples, "")})
    return results


def peak_rss_mb() -> float:
    """This process's peak resident set size. Linux: VmHWM, which starts afresh at exec (ru_maxrss does not,
    so a spawned child would report its parent's peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _stats(samples: list[float], prefix: str) -> dict:
    return {
        f"{prefix}p50_ms": round(statistics.median(samples), 1),
        f"{prefix}p95_ms": round(_percentile(samples, 95), 1),
    }


def measure(seeded: dict, rounds: int) -> list[dict]:
    """Time every case through the whole Django stack; runs in the serving process.

    "first": the first request for that filter in a catalog that is not changing (per-filter counts
    dropped before each sample; the per-version facet columns stay, as they would in a running server).
    "repeat": the same request again (paging back, re-sorting, the back button).
    """
    from adapters import derived, facets

    user, _ = get_user_model().objects.get_or_create(username=MARK)
    set_role(user, VIEWER)
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    facets.clear_caches()
    started = time.perf_counter()
    facets.columns()
    columns_ms = (time.perf_counter() - started) * 1000
    results, first_all, repeat_all = [], [], []
    for name, querystring, htmx in cases(seeded):
        headers = {"HX-Request": "true", "HX-Target": "adapter-results"} if htmx else {}
        url = "/library/?" + querystring
        response = client.get(url, headers=headers)  # warm-up (and a check)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        first, repeat = [], []
        for _ in range(rounds):
            facets.clear_caches(keep_columns=True)
            started = time.perf_counter()
            client.get(url, headers=headers)
            first.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.get(url, headers=headers)
            repeat.append((time.perf_counter() - started) * 1000)
        first_all += first
        repeat_all += repeat
        matches = gallery.total(querystring)
        results.append(
            {
                "case": name,
                "url": url,
                "htmx": htmx,
                "matches": matches,
                **_stats(first, "first_"),
                **_stats(repeat, "repeat_"),
            }
        )
    # The first request after the catalog changed pays for re-reading what changed in the facet columns.
    after_write = []
    for _ in range(max(5, rounds // 2)):
        token = derived.catalog_token()
        Adapter.objects.filter(pk=seeded["first_id"]).update(favorite=~F("favorite"))
        if derived.catalog_token() == token:
            raise RuntimeError("the catalog version did not change after a write")
        started = time.perf_counter()
        client.get("/library/")
        after_write.append((time.perf_counter() - started) * 1000)
    results += measure_composer_search(client, rounds)
    results.append(
        {
            "case": "overall",
            "db_engine": connection.vendor,
            "seeded_adapters": seeded["last_id"] - seeded["first_id"] + 1,
            "requests": len(first_all) + len(repeat_all),
            **_stats(first_all, "first_"),
            **_stats(repeat_all, "repeat_"),
            "first_max_ms": round(max(first_all), 1),
            "facet_columns_load_ms": round(columns_ms, 1),
            "after_write_p50_ms": round(statistics.median(after_write), 1),
            "target_after_write_p50_ms": TARGET_AFTER_WRITE_P50_MS,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "catalog_adapters": Adapter.objects.count(),
            "unreadable_adapters": Adapter.objects.unreadable().count(),  # not in the gallery (Files with problems)
            "target_p95_ms": 50 if connection.vendor == "postgresql" else 100,
            "target_rss_mb": 300,
        }
    )
    return results


def run(
    count: int | None = None, rounds: int | None = None, separate_process: bool = True, also_sqlite: bool = True
) -> list[dict]:
    """``also_sqlite``: when configured for PostgreSQL, run on SQLite as well (``make bench``; tests say no)."""
    count = count or int(os.environ.get("LORA_MANAGER_BENCH_ADAPTERS", "100000"))
    rounds = rounds or int(os.environ.get("LORA_MANAGER_BENCH_ROUNDS", "20"))
    seeded = seed(count)
    try:
        if separate_process:
            results = in_fresh_process("benchmarks.gallery:measure", seeded, rounds)
        else:
            results = measure(seeded, rounds)
        results[-1]["seed_s"] = round(seeded["seconds"], 1)
    finally:
        cleanup(seeded)
    return results + (on_sqlite_too("gallery", count, rounds) if also_sqlite else [])
