"""Looking adapters up on Civitai by hash and storing what it says (docs/civitai.md).

``lookup`` asks ``/model-versions/by-hash`` with the SHA256, then AutoV2, then AutoV3; then the model for its
versions (a newer one = "update available"); downloads the first example image as the preview when the
adapter has none; and stores it all: Civitai's own view in ``CivitaiRecord`` / ``CivitaiImage`` (the images'
generation parameters raw, for recipes), and the values the catalog shows onto the adapter with source
"civitai", never over a person's edit (source "user") or their A1111 sidecar (``a1111_json``), which rank
above a lookup as they rank above a ``.civitai.info`` file in ``adapters.sidecars.PRECEDENCE``.
A 404 is remembered as "not on Civitai" and asked again only after 30 days, or with mode "all".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from adapters import thumbnails
from adapters.bulk_edit import normalize_tag
from adapters.civitai import Cancelled, CivitaiClient, CivitaiError
from adapters.forms import MAX_TRIGGER_WORDS
from adapters.models import USER_SOURCE, Adapter, CivitaiImage, CivitaiRecord, NsfwLevel, Tag, ViewerPreference
from adapters.previews import PreviewError
from adapters.sanitize import clean_html
from adapters.sidecar_formats import base_model_family, split_words

SOURCE = "civitai"
PROTECTED_SOURCES = frozenset({USER_SOURCE, "a1111_json"})  # a lookup never overwrites these
RECHECK_NOT_FOUND_DAYS = 30
MAX_IMAGES = 20
MAX_TAGS = 20
MAX_DESCRIPTION = 100_000
ISSUE_PREFIX = "civitai: "
RETRY_BACKOFF = 2.0  # seconds before the first retry of a 5xx / timeout, doubling after each
_HEX = re.compile(r"[0-9a-f]+")


def enabled() -> bool:
    return bool(settings.CIVITAI_URL)


def make_client(should_stop=None) -> CivitaiClient:
    """The configured client; raises CivitaiError when the feature is off (then nothing touches the network)."""
    return CivitaiClient(
        settings.CIVITAI_URL,
        api_key=settings.CIVITAI_API_KEY,
        min_interval=settings.CIVITAI_MIN_INTERVAL,
        timeout=settings.CIVITAI_TIMEOUT,
        backoff=RETRY_BACKOFF,
        max_image_bytes=settings.MAX_PREVIEW_UPLOAD_BYTES,
        should_stop=should_stop,
    )


def normalize_hash(value: str) -> str:
    """A hash as typed anywhere (any case, ``0x`` prefix, spaces) as lower-case hex of 8 to 64 digits."""
    cleaned = (value or "").strip().lower().removeprefix("0x")
    if not (8 <= len(cleaned) <= 64) or not _HEX.fullmatch(cleaned):
        raise ValueError(f"{value[:80]!r} is not a hash: use 8 to 64 hexadecimal digits (SHA256, AutoV2, AutoV3)")
    return cleaned


def candidate_hashes(adapter: Adapter) -> list[tuple[str, str]]:
    """(kind, hash) to ask about, most specific first: SHA256, AutoV2 (its first 10), AutoV3 (tensor hash's 12)."""
    found: list[tuple[str, str]] = []
    if adapter.sha256:
        found += [("sha256", adapter.sha256.lower()), ("autov2", adapter.sha256[:10].lower())]
    if adapter.tensor_sha256:
        found.append(("autov3", adapter.tensor_sha256[:12].lower()))
    return found


@dataclass
class Outcome:
    status: str  # found, not_found, failed, skipped
    update: bool = False
    message: str = ""


# --- reading Civitai's answers defensively ----------------------------------------------------------


def _int(data: Any, key: str) -> int | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None


def _str(data: Any, key: str, limit: int = 255) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return "".join(ch for ch in value if ch >= " " or ch in "\t\n")[:limit].strip() if isinstance(value, str) else ""


def _strs(data: Any, key: str) -> list[str]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        return []
    items = [v.get("name") if isinstance(v, dict) else v for v in value]  # older tag objects {"name": ...}
    return [v.strip()[:200] for v in items if isinstance(v, str) and v.strip()]


def _images(version: dict) -> list[dict]:
    images = version.get("images")
    return (
        [i for i in images if isinstance(i, dict) and _str(i, "url", 1000)][:MAX_IMAGES]
        if isinstance(images, list)
        else []
    )


def _preview_image(version: dict) -> dict | None:
    """The first still image (videos are not previews here)."""
    return next((i for i in _images(version) if (i.get("type") or "image") == "image"), None)


def _newer_version(model: dict | None, version_id: int | None) -> dict | None:
    """The newest version when it is not ours (Civitai lists ``modelVersions`` newest first)."""
    versions = model.get("modelVersions") if isinstance(model, dict) else None
    if not isinstance(versions, list) or not versions or version_id is None:
        return None
    ids = [_int(v, "id") for v in versions]
    if version_id not in ids or ids.index(version_id) == 0:
        return None
    return versions[0] if isinstance(versions[0], dict) else None


# --- the lookup ------------------------------------------------------------------------------------


def lookup(adapter: Adapter, client: CivitaiClient) -> Outcome:
    """Ask Civitai about one adapter and store the answer. CivitaiUnreachable and Cancelled propagate."""
    hashes = candidate_hashes(adapter)
    if not hashes:
        return Outcome("skipped", message="not hashed yet: scan with hashing first")
    try:
        version, matched = None, ""
        for kind, digest in hashes:
            version = client.version_by_hash(digest)
            if version is not None:
                matched = kind
                break
        if version is None:
            remember_not_found(adapter)
            return Outcome("not_found")
        model_id = _int(version, "modelId")
        model = client.model(model_id) if model_id else None
        image = _preview_image(version)
        preview, preview_problem = None, ""
        if image is not None and _wants_preview(adapter, _str(image, "url", 1000)):
            try:
                preview = client.image(_str(image, "url", 1000))
            except CivitaiError as exc:
                if exc.__class__ is not CivitaiError:
                    raise
                preview_problem = str(exc)
    except CivitaiError as exc:
        if exc.__class__ is not CivitaiError:  # unreachable: the run stops
            raise
        _set_issue(adapter.pk, str(exc))
        CivitaiRecord.objects.filter(adapter_id=adapter.pk).update(message=str(exc)[:1000])
        return Outcome("failed", message=str(exc))
    record = store(adapter.pk, version, model, matched, image)
    if preview is not None:
        try:
            fresh = Adapter.objects.only("pk", "preview_key", "preview_source").get(pk=adapter.pk)
            thumbnails.store_preview_bytes(fresh, preview, SOURCE)
            Adapter.objects.filter(pk=adapter.pk).update(sources=_source_set("preview"))
        except PreviewError as exc:
            preview_problem = f"preview {exc!s}"
    if preview_problem:
        _set_issue(adapter.pk, preview_problem)
        # The picture shown (if any) is not this one: the next lookup tries it again.
        CivitaiRecord.objects.filter(pk=adapter.pk).update(message=preview_problem[:1000], preview_url="")
        return Outcome("found", update=record.update_version_id is not None, message=preview_problem)
    return Outcome("found", update=record.update_version_id is not None)


def _wants_preview(adapter: Adapter, url: str) -> bool:
    """Only adapters showing a letter placeholder (or an earlier Civitai preview) get one downloaded, and an
    earlier Civitai preview only when Civitai now shows another picture: refreshing "update available" for a
    whole library would otherwise fetch every preview again, a third of the requests, for the same bytes."""
    if adapter.preview_source and adapter.preview_source != SOURCE:
        return False
    if adapter.preview_source == SOURCE and adapter.preview_key:
        shown = CivitaiRecord.objects.filter(adapter_id=adapter.pk).values_list("preview_url", flat=True).first()
        return shown != url or not thumbnails.thumbnail_path(adapter.preview_key, "card").is_file()
    return True


def _source_set(field: str):
    from adapters.bulk_edit import SetSourceKey

    return SetSourceKey(field, SOURCE)


def _set_issue(adapter_id: int, message: str | None) -> None:
    """Replace this adapter's Civitai issue (None: clear it); other issues stay."""
    with transaction.atomic():
        adapter = Adapter.objects.select_for_update().only("pk", "issues").filter(pk=adapter_id).first()
        if adapter is None:
            return
        kept = [i for i in adapter.issues if not (isinstance(i, str) and i.startswith(ISSUE_PREFIX))]
        issues = [*kept, ISSUE_PREFIX + message[:500]] if message else kept
        if issues != adapter.issues:
            Adapter.objects.filter(pk=adapter_id).update(issues=issues)


def remember_not_found(adapter: Adapter) -> None:
    """Civitai has no file with these hashes: remembered (like ``{}`` in ``.civitai.info``) for 30 days."""
    now = timezone.now()
    with transaction.atomic():
        CivitaiRecord.objects.update_or_create(
            adapter_id=adapter.pk,
            defaults={
                "checked_at": now,
                "found": False,
                "matched_by": "",
                "update_version_id": None,
                "update_version_name": "",
                "message": "",
            },
        )
        current = Adapter.objects.filter(pk=adapter.pk).values_list("sources", flat=True).first()
        if current is not None and (current or {}).get("not_on_civitai") not in PROTECTED_SOURCES:
            Adapter.objects.filter(pk=adapter.pk).update(not_on_civitai=True, sources=_source_set("not_on_civitai"))
    _set_issue(adapter.pk, None)


def store(adapter_id: int, version: dict, model: dict | None, matched: str, image: dict | None) -> CivitaiRecord:
    """Write one found version: the record, its images, and the catalog values a person has not set themselves."""
    version_id, model_id = _int(version, "id"), _int(version, "modelId")
    model_info = version.get("model") if isinstance(version.get("model"), dict) else {}
    base = _str(version, "baseModel", 100)
    trained = split_words(",".join(_strs(version, "trainedWords")))[:MAX_TRIGGER_WORDS]
    tags = _strs(model, "tags")[:MAX_TAGS] if model else _strs(model_info, "tags")[:MAX_TAGS]
    newer = _newer_version(model, version_id)
    description = _str(model, "description", MAX_DESCRIPTION) if model else ""
    description = clean_html(description or _str(version, "description", MAX_DESCRIPTION))
    with transaction.atomic():
        adapter = Adapter.objects.select_for_update().get(pk=adapter_id)
        record, _ = CivitaiRecord.objects.update_or_create(
            adapter_id=adapter_id,
            defaults={
                "checked_at": timezone.now(),
                "found": True,
                "matched_by": matched,
                "model_id": model_id,
                "version_id": version_id,
                "model_name": _str(model, "name") or _str(model_info, "name"),
                "version_name": _str(version, "name"),
                "base_model": base,
                "trained_words": trained,
                "tags": tags,
                "nsfw_level": _int(version, "nsfwLevel") or 0,
                "preview_url": _str(image, "url", 1000) if image else "",
                "preview_nsfw_level": (_int(image, "nsfwLevel") or 0) if image else 0,
                "update_version_id": _int(newer, "id") if newer else None,
                "update_version_name": _str(newer, "name") if newer else "",
                "message": "",
            },
        )
        CivitaiImage.objects.filter(adapter_id=adapter_id).delete()
        CivitaiImage.objects.bulk_create(
            [
                CivitaiImage(
                    adapter_id=adapter_id,
                    position=index,
                    url=_str(item, "url", 1000),
                    kind=_str(item, "type", 16) or "image",
                    nsfw_level=_int(item, "nsfwLevel") or 0,
                    width=_int(item, "width"),
                    height=_int(item, "height"),
                    meta=item.get("meta") if isinstance(item.get("meta"), dict) else None,
                )
                for index, item in enumerate(_images(version))
            ]
        )
        changed: list[str] = []

        def put(field: str, value: Any) -> None:
            if value in (None, "", []) or adapter.sources.get(field) in PROTECTED_SOURCES:
                return
            setattr(adapter, field, value)
            adapter.sources[field] = SOURCE
            changed.append(field)

        if base and base.lower() != "unknown":
            put("base_model_detail", base)
            put("base_model", base_model_family(base))
        if trained and adapter.sources.get("trigger_words") not in PROTECTED_SOURCES:
            current = adapter.trigger_words if isinstance(adapter.trigger_words, list) else []
            merged = split_words(",".join([*current, *trained]))[:MAX_TRIGGER_WORDS]
            if merged != current:
                put("trigger_words", merged)
        if not adapter.description or adapter.sources.get("description") in (SOURCE, None):
            put("description", description)
        put("civitai_model_id", model_id)
        put("civitai_version_id", version_id)
        if record.page_url:
            put("source_url", record.page_url)
        if adapter.not_on_civitai and adapter.sources.get("not_on_civitai") not in PROTECTED_SOURCES:
            adapter.not_on_civitai = False
            adapter.sources["not_on_civitai"] = SOURCE
            changed.append("not_on_civitai")
        if changed:
            adapter.save(update_fields=[*dict.fromkeys(changed), "sources", "updated_at"])
        if tags and adapter.sources.get("tags") != USER_SOURCE:
            _link_tags(adapter, tags)
    _set_issue(adapter_id, None)
    return record


def _link_tags(adapter: Adapter, names: list[str]) -> None:
    wanted = []
    for name in names:
        try:
            wanted.append(normalize_tag(name))
        except ValueError:
            continue
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return
    Tag.objects.bulk_create([Tag(name=n) for n in wanted], ignore_conflicts=True)
    adapter.tags.add(*Tag.objects.filter(name__in=wanted))


# --- choosing adapters, reading results --------------------------------------------------------------


def _hashed():
    return Adapter.objects.filter((Q(sha256__isnull=False) & ~Q(sha256="")) | ~Q(tensor_sha256=""))


def ids_for(mode: str, ids: list[int] | None = None) -> list[int]:
    """Adapters a run asks about. "missing": never checked; "all": every hashed one; "due" (the default): all
    but those found not on Civitai in the last 30 days; "selected": the given ids (unhashed ones are skipped)."""
    if mode == "selected":
        return list(Adapter.objects.filter(pk__in=list(ids or [])).order_by("pk").values_list("pk", flat=True))
    hashed = _hashed()
    if mode == "missing":
        hashed = hashed.filter(civitai__isnull=True, not_on_civitai=False)
    elif mode != "all":
        cutoff = timezone.now() - timedelta(days=RECHECK_NOT_FOUND_DAYS)
        hashed = hashed.exclude(civitai__found=False, civitai__checked_at__gte=cutoff)
        hashed = hashed.exclude(civitai__isnull=True, not_on_civitai=True, created_at__gte=cutoff)  # a sidecar's {}
    return list(hashed.order_by("pk").values_list("pk", flat=True))


def page_for_hash(value: str, seconds: float = 30.0) -> str | None:
    """Civitai's page of the model version whose file has this hash (a recipe's LoRA missing from the catalog),
    asked once because a person clicked; None when Civitai does not know it. Bounded for a web request: one
    retry, and a ``429`` asking to wait past ``seconds`` is an error instead of a wait. Raises ValueError for
    a hash that is not one, CivitaiError (with a message for people) when the feature is off or Civitai fails."""
    digest = normalize_hash(value)
    deadline = time.monotonic() + seconds
    client = make_client(should_stop=lambda: time.monotonic() > deadline)
    client.retries, client.timeout = 1, min(client.timeout, seconds / 3)
    try:
        version = client.version_by_hash(digest)
    except Cancelled:
        raise CivitaiError(f"Civitai asked to wait more than {seconds:g} s; try again later") from None
    model_id = _int(version, "modelId") if version else None
    if model_id is None:
        return None
    version_id = _int(version, "id")
    return f"https://civitai.com/models/{model_id}" + (f"?modelVersionId={version_id}" if version_id else "")


def example_images(adapter_id: int) -> list[dict]:
    """The Civitai example images of an adapter with their raw generation parameters (``meta``), in order;
    recipes turn these ``meta`` dicts into prompts and LoRAs."""
    return [
        {"url": i.url, "kind": i.kind, "nsfw_level": i.nsfw_level, "width": i.width, "height": i.height, "meta": i.meta}
        for i in CivitaiImage.objects.filter(adapter_id=adapter_id).order_by("position")
    ]


def update_info(record: CivitaiRecord | None) -> dict | None:
    if record is None or record.update_version_id is None:
        return None
    return {"version_id": record.update_version_id, "name": record.update_version_name}


def record_info(adapter_id: int) -> dict:
    """``civitai_update`` and ``civitai_checked_at`` (lora_info, the API) plus the record's main values."""
    record = CivitaiRecord.objects.filter(adapter_id=adapter_id).first()
    return {
        "civitai_update": update_info(record),
        "civitai_checked_at": record.checked_at.isoformat() if record else None,
        "civitai_found": record.found if record else None,
    }


def blur_threshold(user) -> int:
    """Previews rated above this level are blurred for ``user`` (default: above PG-13)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return NsfwLevel.PG13
    found = ViewerPreference.objects.filter(user=user).values_list("nsfw_blur_above", flat=True).first()
    return NsfwLevel.PG13 if found is None else found


def set_blur_threshold(user, level: int) -> None:
    if level not in (*NsfwLevel.values, 0):
        raise ValueError("choose one of the NSFW levels")
    ViewerPreference.objects.update_or_create(user=user, defaults={"nsfw_blur_above": level})


def annotate_cards(adapters: list[Adapter], user) -> list[Adapter]:
    """Set ``update_name`` and ``blurred`` on cards, with one query for the whole page."""
    threshold = blur_threshold(user)
    rows = CivitaiRecord.objects.filter(adapter_id__in=[a.pk for a in adapters]).values_list(
        "adapter_id", "update_version_id", "update_version_name", "preview_nsfw_level"
    )
    found = {pk: (update_id, name, level) for pk, update_id, name, level in rows}
    for adapter in adapters:
        update_id, name, level = found.get(adapter.pk, (None, "", 0))
        adapter.update_name = (name or "newer version") if update_id else ""
        adapter.blurred = adapter.preview_source == SOURCE and level > threshold
    return adapters
