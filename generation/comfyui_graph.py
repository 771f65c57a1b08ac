"""ComfyUI graphs into a ``ParsedRecipe``: the API-format ``prompt`` chunk, else the UI-format ``workflow``.

API format: ``{node_id: {"class_type": ..., "inputs": {name: value or [source_id, output_index]}}}``.
We start at the sampler (``KSampler``/``KSamplerAdvanced``/any node with ``positive`` and ``negative``
inputs) and walk upstream: ``positive``/``negative`` to the text encoders, ``model`` through the LoRA
loaders to the checkpoint loader, ``latent_image`` to the empty latent's size. Graphs from the wild
have cycles, dangling links and unknown nodes: every walk keeps a visited set and a step budget, a
dangling link is a warning, and an unknown node is walked through by its inputs.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from generation.recipe_parsing import (
    MAX_PROMPT,
    ParsedLora,
    ParsedRecipe,
    RecipeError,
    as_float,
    as_int,
    as_text,
    lora_tokens,
)

MAX_NODES = 5000
MAX_STEPS = 20_000
TEXT_NODES = {"CLIPTextEncode", "CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner", "CLIPTextEncodeFlux"}
LATENT_NODES = {"EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo"}
# UI-format widgets_values, by position, for the node types we read (ComfyUI nodes.py INPUT_TYPES order;
# a seed widget is followed by its "control_after_generate" value).
WIDGETS = {
    "LoraLoader": ["lora_name", "strength_model", "strength_clip"],
    "LoraLoaderModelOnly": ["lora_name", "strength_model"],
    "CLIPTextEncode": ["text"],
    "KSampler": ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
    "KSamplerAdvanced": [
        "add_noise",
        "noise_seed",
        "control_after_generate",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "start_at_step",
        "end_at_step",
        "return_with_leftover_noise",
    ],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "EmptySD3LatentImage": ["width", "height", "batch_size"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "UNETLoader": ["unet_name", "weight_dtype"],
    "PrimitiveNode": ["value"],
}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int) and isinstance(value[1], int)


class Graph:
    def __init__(self, nodes: dict[str, dict]) -> None:
        self.nodes = nodes
        self.warnings: list[str] = []
        self.steps = 0

    def node(self, link: Any) -> tuple[str, dict] | None:
        if not _is_link(link):
            return None
        node_id = str(link[0])
        node = self.nodes.get(node_id)
        if node is None:
            message = f"a link points to node {node_id}, which is not in the graph"
            if message not in self.warnings:
                self.warnings.append(message)
            return None
        return node_id, node

    def inputs(self, node: dict) -> dict:
        inputs = node.get("inputs")
        return inputs if isinstance(inputs, dict) else {}

    def value(self, node: dict, name: str, depth: int = 0) -> Any:
        """An input's value, following a link to a primitive/constant node (e.g. a shared seed or text)."""
        value = self.inputs(node).get(name)
        if not _is_link(value):
            return value
        if depth > 8 or (found := self.node(value)) is None:
            return None
        source = self.inputs(found[1])
        for key in (name, "value", "text", "string", "seed", "noise_seed", "int", "float", "number"):
            if key in source:
                return self.value(found[1], key, depth + 1)
        return None

    def upstream(self, start: Any, wanted) -> list[tuple[str, dict]]:
        """Nodes reached from ``start`` going upstream (breadth first) that ``wanted(node)`` accepts; walking
        stops at accepted nodes. Cycles and the step budget are handled here."""
        found, seen = [], set()
        queue = deque([start])
        while queue:
            self.steps += 1
            if self.steps > MAX_STEPS:
                self.warnings.append("the graph is too large to follow completely; some parts were not read")
                break
            hit = self.node(queue.popleft())
            if hit is None or hit[0] in seen:
                continue
            seen.add(hit[0])
            if wanted(hit[1]):
                found.append(hit)
                continue
            queue.extend(v for v in self.inputs(hit[1]).values() if _is_link(v))
        return found


def _class(node: dict) -> str:
    return str(node.get("class_type") or node.get("type") or "")


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RecipeError(f"the '{what}' chunk is not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})") from exc


def nodes_from_api(data: Any) -> dict[str, dict]:
    if not isinstance(data, dict):
        raise RecipeError("the 'prompt' chunk is not a ComfyUI API graph (expected an object of nodes)")
    nodes = {str(k): v for k, v in data.items() if isinstance(v, dict) and "class_type" in v}
    if not nodes:
        raise RecipeError("the 'prompt' chunk has no ComfyUI nodes")
    return nodes


def nodes_from_workflow(data: Any) -> dict[str, dict]:
    """The UI format (``nodes`` with ``widgets_values``, ``links`` as [id, from, slot, to, slot, type])
    turned into API-format nodes for the node types in WIDGETS; other nodes keep only their links."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise RecipeError("the 'workflow' chunk is not a ComfyUI workflow (no 'nodes' list)")
    links: dict[int, list] = {}
    for link in data.get("links") or []:
        if isinstance(link, list) and len(link) >= 4 and isinstance(link[0], int):
            links[link[0]] = [str(link[1]), link[2] if isinstance(link[2], int) else 0]
    nodes: dict[str, dict] = {}
    for item in data["nodes"][:MAX_NODES]:
        if not isinstance(item, dict) or "id" not in item:
            continue
        kind = str(item.get("type") or "")
        inputs: dict[str, Any] = {}
        widgets = item.get("widgets_values")
        if isinstance(widgets, list):
            for name, value in zip(WIDGETS.get(kind, []), widgets, strict=False):
                inputs[name] = value
        for slot in item.get("inputs") or []:
            if isinstance(slot, dict) and isinstance(slot.get("link"), int) and slot["link"] in links:
                inputs[str(slot.get("name") or "")] = links[slot["link"]]
        if kind == "PrimitiveNode" and isinstance(widgets, list) and widgets:
            inputs["value"] = widgets[0]
        nodes[str(item["id"])] = {"class_type": kind, "inputs": inputs}
    if not nodes:
        raise RecipeError("the 'workflow' chunk has no nodes")
    return nodes


def _sampler(graph: Graph) -> tuple[str, dict] | None:
    samplers = [
        (node_id, node)
        for node_id, node in graph.nodes.items()
        if "positive" in graph.inputs(node) and ("steps" in graph.inputs(node) or "Sampler" in _class(node))
    ]
    if not samplers:
        return None

    def starts_from_empty_latent(item: tuple[str, dict]) -> bool:
        latent = graph.inputs(item[1]).get("latent_image")
        return bool(graph.upstream(latent, lambda n: _class(n) in LATENT_NODES)) if latent else False

    def order(item: tuple[str, dict]) -> tuple:
        node_id = item[0]
        return (not starts_from_empty_latent(item), int(node_id) if node_id.isdigit() else 10**9, node_id)

    return sorted(samplers, key=order)[0]  # the first pass (a hires pass starts from a decoded latent)


def _texts(graph: Graph, link: Any) -> str:
    parts = []
    for _, node in graph.upstream(link, lambda n: _class(n) in TEXT_NODES):
        for key in ("text", "text_g", "clip_l", "t5xxl", "text_l"):
            text = as_text(graph.value(node, key))
            if text and text not in parts:
                parts.append(text)
    return "\n".join(parts)[:MAX_PROMPT]


def _lora_entries(graph: Graph, node: dict) -> list[ParsedLora]:
    inputs = graph.inputs(node)
    loras = []
    name = graph.value(node, "lora_name")
    if isinstance(name, str) and name.strip():
        weight = as_float(graph.value(node, "strength_model"))
        if weight is None:
            weight = as_float(graph.value(node, "strength"))
        loras.append(_lora_from_file(name, weight))
    for value in inputs.values():  # stackers (rgthree Power Lora Loader): {"on": true, "lora": ..., "strength": ...}
        usable = isinstance(value, dict) and isinstance(value.get("lora"), str) and value.get("on", True) is not False
        if usable and value["lora"].strip() and value["lora"] != "None":
            loras.append(_lora_from_file(value["lora"], as_float(value.get("strength"))))
    return loras


def _lora_from_file(path: str, weight: float | None) -> ParsedLora:
    path = as_text(path, 1000).replace("\\", "/")
    stem = path.rsplit("/", 1)[-1]
    for suffix in (".safetensors", ".ckpt", ".pt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return ParsedLora(name=stem, weight=1.0 if weight is None else weight, file=path)


def _is_lora_node(node: dict) -> bool:
    inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
    return "lora_name" in inputs or any(isinstance(v, dict) and "lora" in v for v in inputs.values())


def recipe_from_nodes(nodes: dict[str, dict], source_chunk: str) -> ParsedRecipe:
    if len(nodes) > MAX_NODES:
        raise RecipeError(f"the graph has {len(nodes):,} nodes (limit {MAX_NODES:,})")
    graph = Graph(nodes)
    recipe = ParsedRecipe(source="comfyui")
    sampler = _sampler(graph)
    if sampler is None:
        graph.warnings.append("no sampler node (KSampler) found: prompts and LoRAs are read from the whole graph")
        texts = [as_text(graph.value(n, "text")) for _, n in sorted(nodes.items()) if _class(n) in TEXT_NODES]
        recipe.prompt = next((t for t in texts if t), "")
        chain = [(i, n) for i, n in nodes.items() if _is_lora_node(n)]
    else:
        node = sampler[1]
        inputs = graph.inputs(node)
        recipe.prompt = _texts(graph, inputs.get("positive"))
        recipe.negative = _texts(graph, inputs.get("negative"))
        recipe.steps = as_int(graph.value(node, "steps"), 1, 10_000)
        recipe.cfg_scale = as_float(graph.value(node, "cfg"))
        seed = graph.value(node, "seed")
        recipe.seed = as_int(seed if seed is not None else graph.value(node, "noise_seed"))
        recipe.sampler = as_text(graph.value(node, "sampler_name"), 100)
        scheduler = as_text(graph.value(node, "scheduler"), 100)
        if scheduler:
            recipe.parameters["scheduler"] = scheduler
        denoise = as_float(graph.value(node, "denoise"))
        if denoise is not None:
            recipe.parameters["denoise"] = denoise
        for _, latent in graph.upstream(inputs.get("latent_image"), lambda n: _class(n) in LATENT_NODES)[:1]:
            recipe.width = as_int(graph.value(latent, "width"), 1, 100_000)
            recipe.height = as_int(graph.value(latent, "height"), 1, 100_000)
        chain = _model_chain(graph, inputs.get("model"), recipe)
        if not chain:
            chain = [(i, n) for i, n in nodes.items() if _is_lora_node(n)]
    if recipe.width is None:
        for _, latent in sorted((i, n) for i, n in nodes.items() if _class(n) in LATENT_NODES)[:1]:
            recipe.width = as_int(graph.value(latent, "width"), 1, 100_000)
            recipe.height = as_int(graph.value(latent, "height"), 1, 100_000)
    if not recipe.checkpoint:
        for _, loader in sorted((i, n) for i, n in nodes.items() if "ckpt_name" in graph.inputs(n))[:1]:
            recipe.checkpoint = as_text(graph.value(loader, "ckpt_name"), 255)
    for _, node in chain:
        recipe.loras.extend(_lora_entries(graph, node))
    recipe.loras.extend(lora_tokens(recipe.prompt))  # some custom text nodes accept <lora:...> tokens
    recipe.parameters["graph"] = source_chunk
    recipe.warnings.extend(graph.warnings)
    if not recipe.prompt and not recipe.loras:
        raise RecipeError("the graph has no text prompt and no LoRA loader")
    return recipe


def _model_chain(graph: Graph, link: Any, recipe: ParsedRecipe) -> list[tuple[str, dict]]:
    """LoRA loaders between the sampler's ``model`` input and the checkpoint loader, checkpoint side first."""
    chain: list[tuple[str, dict]] = []
    seen: set[str] = set()
    while link is not None:
        graph.steps += 1
        hit = graph.node(link)
        if hit is None or graph.steps > MAX_STEPS:
            break
        node_id, node = hit
        if node_id in seen:
            graph.warnings.append(f"the model links loop back to node {node_id}; stopped there")
            break
        seen.add(node_id)
        inputs = graph.inputs(node)
        if "ckpt_name" in inputs or "unet_name" in inputs:
            recipe.checkpoint = as_text(graph.value(node, "ckpt_name") or graph.value(node, "unet_name"), 255)
            break
        if _is_lora_node(node):
            chain.append(hit)
        link = inputs.get("model") or next((v for k, v in inputs.items() if _is_link(v) and "model" in k), None)
    return chain[::-1]


def parse(prompt_text: str, workflow_text: str) -> ParsedRecipe:
    """The API graph when present and usable, else the UI workflow."""
    problems = []
    if prompt_text.strip():
        try:
            return recipe_from_nodes(nodes_from_api(_load(prompt_text, "prompt")), "prompt")
        except RecipeError as exc:
            problems.append(str(exc))
    if workflow_text.strip():
        try:
            recipe = recipe_from_nodes(nodes_from_workflow(_load(workflow_text, "workflow")), "workflow")
            recipe.warnings = [*problems, *recipe.warnings]
            return recipe
        except RecipeError as exc:
            problems.append(str(exc))
    raise RecipeError("; ".join(problems) or "empty graph")
