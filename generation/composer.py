"""Composing a generation: the final prompt with `<lora:name:weight>` tokens, and a linter that warns first.

The composer page, the preview fragment, the `generate` command and re-runs all build prompts here,
so what the user previews is what SD.Next receives. The linter goes beyond syntax (peer-tools §4.7):
base model against the checkpoint, weights against the adapter's range, inactive or missing files,
LoRAs the SD.Next server does not know, duplicates and the total weight budget.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from django.db.models import Q
from django.db.models.functions import Lower

from adapters.models import Adapter, AdapterStatus, BaseModel
from generation import backends, lora_names
from generation.sdnext import lora_tags

STEPS = (1, 150)
SIZE = (64, 2048)
CFG = (1.0, 30.0)
BATCH = (1, 8)
COUNT = (1, 16)
SEED = (-1, 2**32 - 1)
WEIGHT = (-5.0, 5.0)
SLIDER = (-1.0, 2.0)  # widened to include the adapter's own range
MAX_LORAS = 20
MAX_PROMPT = 10_000
TOTAL_WEIGHT_LIMIT = 2.0
SKIP_PREDICTION = "it would be skipped"  # in the unknown-to-SD.Next warning; the job page drops it once answered
FAMILY_LABELS = dict(BaseModel.choices)
PIPELINE_FAMILIES = {
    "StableDiffusionXLPipeline": "SDXL",
    "StableDiffusionXLImg2ImgPipeline": "SDXL",
    "FluxPipeline": "Flux",
    "StableDiffusion3Pipeline": "SD3",
}
NAME_FAMILIES = [  # first match wins: Flux and SD3 names often contain "xl"-free version numbers
    ("Flux", re.compile(r"flux")),
    ("SD3", re.compile(r"sd3|sd_3|stable[-_ ]?diffusion[-_ ]?3")),
    ("SDXL", re.compile(r"xl(?![a-z])|pony|illustrious|noobai|animagine")),
    ("SD2", re.compile(r"sd_?2|v2[-_.]|768[-_]v")),
    ("SD1", re.compile(r"sd_?1|v1[-_.][45]|1\.5|sd15")),
]


@dataclass
class LoraChoice:
    adapter_id: int | None
    weight: float
    triggers: bool = True
    negative: bool = False
    name: str = ""  # for a LoRA outside the catalog (the command line, or an adapter deleted since)
    key: str = ""  # the form row it came from


@dataclass
class Composition:
    prompt: str = ""
    negative: str = ""
    loras: list[LoraChoice] = field(default_factory=list)
    backend: str = "default"
    checkpoint: str = ""
    sampler: str = "Default"
    steps: int = 20
    cfg_scale: float = 6.0
    width: int = 1024
    height: int = 1024
    seed: int = -1
    batch_size: int = 1
    n_iter: int = 1
    live_preview: bool = False

    def to_dict(self) -> dict:
        data = asdict(self)
        for lora in data["loras"]:
            lora.pop("key", None)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Composition:
        """Tolerant: a preset or job saved by an older version loads with defaults for what it lacks."""
        data = data if isinstance(data, dict) else {}
        default = cls()
        values: dict[str, Any] = {}
        for name, fallback in asdict(default).items():
            if name == "loras":
                continue
            value = data.get(name, fallback)
            values[name] = (
                value
                if isinstance(value, type(fallback))
                or (isinstance(fallback, float) and isinstance(value, int) and not isinstance(value, bool))
                else fallback
            )
        loras = []
        for item in data.get("loras") or []:
            if not isinstance(item, dict):
                continue
            try:
                loras.append(
                    LoraChoice(
                        adapter_id=int(item["adapter_id"]) if item.get("adapter_id") is not None else None,
                        weight=float(item.get("weight", 1.0)),
                        triggers=bool(item.get("triggers", True)),
                        negative=bool(item.get("negative", False)),
                        name=str(item.get("name") or ""),
                    )
                )
            except (TypeError, ValueError, KeyError):
                continue
        return cls(loras=loras, **values)


@dataclass
class ResolvedLora:
    choice: LoraChoice
    adapter: Adapter | None
    name: str  # the name in the token
    known: bool | None  # does SD.Next list it (None: its list was never read)


@dataclass
class Issue:
    level: str  # "error" blocks submitting; "warning" and "info" are advice
    code: str
    message: str
    action: str = ""  # "refresh-loras" offers the refresh button


@dataclass
class Built:
    prompt: str
    negative: str
    loras: list[ResolvedLora]
    issues: list[Issue]

    @property
    def blocking(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.level == "error"]


def format_weight(weight: float) -> str:
    return f"{round(weight, 2):g}"


def default_weight(adapter: Adapter) -> float:
    if adapter.preferred_weight is not None:
        return adapter.preferred_weight
    if adapter.weight_min is not None and adapter.weight_max is not None:
        return round((adapter.weight_min + adapter.weight_max) / 2, 2)
    return 1.0


def slider_range(adapter: Adapter | None) -> tuple[float, float]:
    low, high = SLIDER
    if adapter is not None:
        low = min(low, adapter.weight_min if adapter.weight_min is not None else low)
        high = max(high, adapter.weight_max if adapter.weight_max is not None else high)
    return max(low, WEIGHT[0]), min(high, WEIGHT[1])


def inserted_text(adapter: Adapter) -> str:
    """What a LoRA's "insert triggers" toggle adds: its activation text, else its trigger words."""
    if adapter.activation_text.strip():
        return adapter.activation_text.strip()
    return ", ".join(str(word).strip() for word in adapter.trigger_words or [] if str(word).strip())


def resolve(composition: Composition) -> list[ResolvedLora]:
    """Join each choice with its adapter and the name SD.Next knows it by (in two queries)."""
    ids = {c.adapter_id for c in composition.loras if c.adapter_id is not None}
    adapters = Adapter.objects.in_bulk(ids) if ids else {}
    names = lora_names.names_for(adapters, composition.backend)
    missing_names = [a for pk, a in adapters.items() if pk not in names]
    fallback = lora_names.fallback_names(missing_names) if missing_names else {}
    synced = lora_names.sync_state(composition.backend) is not None
    resolved = []
    for choice in composition.loras:
        adapter = adapters.get(choice.adapter_id) if choice.adapter_id is not None else None
        if adapter is not None:
            name = names.get(adapter.pk) or fallback.get(adapter.pk, adapter.name)
            known = adapter.pk in names if synced else None
        else:
            name, known = choice.name, None
        resolved.append(ResolvedLora(choice, adapter, name, known))
    if synced:
        unresolved = {r.name for r in resolved if r.adapter is None or not r.known}
        found = lora_names.known_names(composition.backend, unresolved)
        for r in resolved:
            if r.name in found:
                r.known = True
            elif r.adapter is None:
                r.known = False
    return resolved


def final_prompts(composition: Composition, resolved: list[ResolvedLora]) -> tuple[str, str]:
    """The user's prompt, then inserted trigger words / activation text not already in it, then the tokens."""
    prompt_parts, negative_parts = [composition.prompt.strip()], [composition.negative.strip()]
    for r in resolved:
        if r.adapter is None:
            continue
        if r.choice.triggers:
            text = inserted_text(r.adapter)
            if text and text.lower() not in " ".join(prompt_parts).lower():
                prompt_parts.append(text)
        if r.choice.negative:
            text = r.adapter.negative_text.strip()
            if text and text.lower() not in " ".join(negative_parts).lower():
                negative_parts.append(text)
    tokens = " ".join(f"<lora:{r.name}:{format_weight(r.choice.weight)}>" for r in resolved if r.name)
    prompt = ", ".join(part for part in prompt_parts if part)
    prompt = f"{prompt} {tokens}".strip() if tokens else prompt
    return prompt, ", ".join(part for part in negative_parts if part)


def checkpoint_family(checkpoint: str, info: backends.ServerInfo | None = None) -> str | None:
    """SD1/SD2/SDXL/SD3/Flux for a checkpoint: the loaded pipeline's class when it is loaded, else its name."""
    current = info.current if info and info.ok else {}
    loaded = current.get("title") and (
        not checkpoint or checkpoint in (current.get("title"), current.get("name"), current.get("filename"))
    )
    if loaded and current.get("class") in PIPELINE_FAMILIES:
        return PIPELINE_FAMILIES[current["class"]]
    name = (checkpoint or (current.get("title") or "")).lower()
    return next((family for family, pattern in NAME_FAMILIES if pattern.search(name)), None)


def lint(composition: Composition, resolved: list[ResolvedLora], info: backends.ServerInfo | None) -> list[Issue]:
    issues: list[Issue] = []
    backend = backends.all_backends().get(composition.backend)
    if backend is None or not backend.configured:
        message = backend.not_configured_message if backend else f"Unknown backend '{composition.backend}'."
        issues.append(Issue("error", "not-configured", message))
    if composition.checkpoint and info and info.ok and not info.has_checkpoint(composition.checkpoint):
        message = f"SD.Next does not list the checkpoint '{composition.checkpoint}'."
        issues.append(Issue("warning", "checkpoint", message))
    family = checkpoint_family(composition.checkpoint, info)
    typed = [(name, weight) for name, weight in lora_tags(composition.prompt)]
    seen: dict[str, int] = {}
    total = 0.0
    for r in resolved:
        label = r.adapter.name if r.adapter else r.name
        total += abs(r.choice.weight)
        identity = f"adapter:{r.adapter.pk}" if r.adapter else f"name:{r.name}"
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] == 2:
            issues.append(Issue("warning", "duplicate", f"{label} is added twice."))
        if r.adapter is None:
            if r.choice.adapter_id is not None and not r.name:
                issues.append(Issue("error", "missing", f"LoRA #{r.choice.adapter_id} is no longer in the catalog."))
            elif r.choice.adapter_id is not None:
                issues.append(Issue("warning", "missing", f"{label} is no longer in the catalog; sent by name."))
            if r.known is False:
                issues.append(_unknown(label, composition.backend))
            continue
        issues += _adapter_issues(r, label, family, composition.prompt)
        if r.known is False:
            issues.append(_unknown(label, composition.backend))
    issues += _shared_tokens(resolved)
    names_in_rows = {PurePath(r.name).name.lower() for r in resolved if r.name}
    typed_known = lora_names.known_names(composition.backend, [n for n, _ in typed]) if typed else set()
    synced = lora_names.sync_state(composition.backend) is not None
    for name, weight in typed:
        key = PurePath(name).name.lower()
        if key in names_in_rows:
            issues.append(Issue("warning", "duplicate", f"<lora:{name}> is in the prompt and in the LoRA list."))
        names_in_rows.add(key)
        try:
            total += abs(float(weight)) if weight and "@" not in weight else 1.0
        except ValueError:
            issues.append(Issue("warning", "syntax", f"<lora:{name}:{weight}> has a weight SD.Next cannot read."))
        if synced and name not in typed_known:
            issues.append(_unknown(name, composition.backend))
    if total > TOTAL_WEIGHT_LIMIT:
        issues.append(
            Issue(
                "warning",
                "total-weight",
                f"The LoRA weights add up to {format_weight(total)} (over {format_weight(TOTAL_WEIGHT_LIMIT)}): "
                "images tend to burn or fall apart; lower some weights.",
            )
        )
    if (resolved or typed) and not synced and backend is not None and backend.configured:
        issues.append(
            Issue(
                "info",
                "not-synced",
                f"The LoRA list of SD.Next ('{composition.backend}') has not been read yet.",
                "refresh-loras",
            )
        )
    return issues


def _shared_tokens(resolved: list[ResolvedLora]) -> list[Issue]:
    """Two adapters behind one `<lora:name>` token: SD.Next loads one file for both names.

    Within the composition (two rows, one token), and against the catalog: another adapter whose
    alias or name is this token (e.g. two copies both aliased ``inkwash_sd15``).
    """
    issues: list[Issue] = []
    by_token: dict[str, list[ResolvedLora]] = {}
    for r in resolved:
        if r.adapter is not None and r.name:
            by_token.setdefault(r.name.lower(), []).append(r)
    for rows in by_token.values():
        labels = list(dict.fromkeys(r.adapter.name for r in rows if r.adapter))
        if len({r.adapter.pk for r in rows if r.adapter}) > 1:
            issues.append(
                Issue(
                    "warning",
                    "shared-token",
                    f"{' and '.join(labels)} both produce <lora:{rows[0].name}>: SD.Next loads one file for both. "
                    "Give one of them another alias, or rename its file.",
                )
            )
    tokens = {r.name: r for rows in by_token.values() for r in rows[:1]}
    if not tokens:
        return issues
    in_rows = {r.adapter.pk for r in resolved if r.adapter}
    others = (
        Adapter.objects.annotate(lower_name=Lower("name"))
        .filter(Q(alias__in=list(tokens)) | Q(lower_name__in=[t.lower() for t in tokens]))
        .exclude(pk__in=in_rows)
        .only("pk", "name", "alias")[:20]
    )
    lowered = {t.lower(): r for t, r in tokens.items()}
    for other in others:
        r = tokens.get(other.alias) or lowered.get(other.name.lower())
        if r is None or r.adapter is None:
            continue
        how = f"aliased {other.alias}" if other.alias == r.name else "named so"
        issues.append(
            Issue(
                "warning",
                "shared-token",
                f"{r.adapter.name} and {other.name} ({how}) both answer to <lora:{r.name}>: SD.Next may load "
                f"either file. Give one of them another alias, or rename its file.",
            )
        )
    return issues


def _unknown(label: str, backend: str) -> Issue:
    return Issue(
        "warning",
        "unknown-to-sdnext",
        f"SD.Next ('{backend}') does not list {label}: {SKIP_PREDICTION}. Copy the file to SD.Next's "
        "LoRA folder or refresh the list.",
        "refresh-loras",
    )


def _adapter_issues(r: ResolvedLora, label: str, family: str | None, prompt: str) -> list[Issue]:
    adapter, weight, issues = r.adapter, r.choice.weight, []
    assert adapter is not None
    base = adapter.base_model
    if family and base not in (BaseModel.UNKNOWN, BaseModel.OTHER) and base != family:
        issues.append(
            Issue(
                "warning",
                "base-model",
                f"{label} is a {FAMILY_LABELS.get(base, base)} LoRA but the checkpoint looks "
                f"{FAMILY_LABELS.get(family, family)}: it will do nothing or break the image.",
            )
        )
    low, high = adapter.weight_min, adapter.weight_max
    if (low is not None and weight < low) or (high is not None and weight > high):
        shown = f"{format_weight(low) if low is not None else '…'}–{format_weight(high) if high is not None else '…'}"
        issues.append(
            Issue("warning", "weight-range", f"{label} at {format_weight(weight)} is outside its range {shown}.")
        )
    if not adapter.active:
        issues.append(Issue("warning", "inactive", f"{label} is deactivated in the catalog."))
    if adapter.status in (AdapterStatus.MISSING, AdapterStatus.OFFLINE):
        state = adapter.get_status_display().lower()
        issues.append(Issue("warning", "missing-file", f"{label}'s file is {state} in the library."))
    if adapter.trigger_words and not r.choice.triggers:
        words = [str(w) for w in adapter.trigger_words]
        if not any(word.lower() in prompt.lower() for word in words):
            shown = ", ".join(words[:3])
            issues.append(Issue("info", "triggers-off", f"{label} has trigger words ({shown}) that are not inserted."))
    return issues


def build(composition: Composition, info: backends.ServerInfo | None = None) -> Built:
    """Everything the preview shows and the submit sends."""
    resolved = resolve(composition)
    prompt, negative = final_prompts(composition, resolved)
    if info is None:
        info = backends.server_info(composition.backend, cached_only=True)
    return Built(prompt, negative, resolved, lint(composition, resolved, info))


def payload(composition: Composition, prompt: str, negative: str) -> dict:
    """The txt2img body. `sd_model_checkpoint` (not override_settings) so an unknown name fails loudly
    (docs/sdnext-contract.md §5)."""
    body = {
        "prompt": prompt,
        "negative_prompt": negative,
        "steps": composition.steps,
        "sampler_name": composition.sampler or "Default",
        "cfg_scale": composition.cfg_scale,
        "width": composition.width,
        "height": composition.height,
        "seed": composition.seed,
        "batch_size": composition.batch_size,
        "n_iter": composition.n_iter,
        "send_images": True,
        "save_images": False,
    }
    if composition.checkpoint:
        body["sd_model_checkpoint"] = composition.checkpoint
    return body
