"""Hugging Face model cards (``README.md`` YAML front matter and sections) and ``config.json``.

Only what the card says is kept: "[More Information Needed]" (the template's placeholder),
empty strings and empty lists count as missing. Files are read with a size bound and YAML is
parsed with ``yaml.safe_load`` (no object construction).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

MAX_CARD_BYTES = 1024 * 1024
MAX_CONFIG_BYTES = 1024 * 1024
MAX_SECTION_CHARS = 2000
# Bounds on what is taken from lists in front matter: YAML aliases let a small file describe
# huge (shared) structures, so every loop over card data is capped.
MAX_ITEMS = 256
PLACEHOLDER = "[More Information Needed]"
# Front matter keys of a model card (a Space card has "sdk"; a dataset card has none of the
# model-only keys besides license).
_MODEL_KEYS = ("pipeline_tag", "base_model", "model-index", "library_name", "model_name")

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
# Linear on hostile input: no lazy group followed by optional tails (trailing #s are
# stripped in Python).
_HEADING = re.compile(r"^#{1,6}[ \t]+([^\n]*)$", re.MULTILINE)

# Card sections (headings of the Hugging Face card template and common variants), by what
# the CycloneDX model card calls them.
_SECTION_ROLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("out_of_scope", re.compile(r"out[- ]of[- ]scope", re.I)),
    ("limitations", re.compile(r"limitation|bias|risk", re.I)),
    ("ethical", re.compile(r"ethic", re.I)),
    ("use_cases", re.compile(r"^(direct use|intended use|uses|intended uses?( &| and) .*)$", re.I)),
)


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip()
        return not text or text == PLACEHOLDER
    if isinstance(value, list | tuple | dict):
        return all(is_missing(v) for v in (value.values() if isinstance(value, dict) else value))
    return False


def _text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return None if is_missing(text) else text
    return None


def _texts(value: object) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple of the present ones (order kept, no dupes)."""
    items = value[:MAX_ITEMS] if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        text = _text(item)
        if text is not None and text not in out:
            out.append(text)
    return tuple(out)


@dataclass(frozen=True)
class CardMetric:
    type: str
    value: str
    dataset: str | None
    split: str | None


@dataclass(frozen=True)
class ModelCard:
    path: str  # relative to the scan root
    front_matter: bool
    declares_model: bool = False  # front matter with model keys (not a Space or dataset card)
    name: str | None = None
    version: str | None = None
    description: str | None = None
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    authors: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    eval_datasets: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    metrics: tuple[CardMetric, ...] = ()
    use_cases: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    ethical: tuple[str, ...] = ()


def read_bounded(path: Path, limit: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(limit)


def split_front_matter(text: str) -> tuple[Mapping[str, Any] | None, str]:
    """(front matter mapping or None, the body) of a Markdown card."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    try:
        data = yaml.safe_load(match.group(1))
    except (yaml.YAMLError, RecursionError):  # deep nesting is hostile input, not a crash
        return None, text[match.end() :]
    return (data if isinstance(data, dict) else None), text[match.end() :]


def _strip_comments(text: str) -> str:
    """Text without HTML comments (an unclosed one runs to the end), in linear time."""
    parts: list[str] = []
    position = 0
    while (start := text.find("<!--", position)) != -1:
        parts.append(text[position:start])
        end = text.find("-->", start + 4)
        if end == -1:
            return "".join(parts)
        position = end + 3
    parts.append(text[position:])
    return "".join(parts)


def _sections(body: str) -> dict[str, list[str]]:
    """Text of the card's sections by role (use_cases, limitations, ...), placeholders dropped."""
    found: dict[str, list[str]] = {}
    headings = list(_HEADING.finditer(body))
    for index, heading in enumerate(headings):
        title = heading.group(1).strip().rstrip("#").strip()
        end = headings[index + 1].start() if index + 1 < len(headings) else len(body)
        # Drop the placeholder and the HTML comments the template leaves as instructions.
        content = _strip_comments(body[heading.end() : end].replace(PLACEHOLDER, "")).strip()
        if not content:
            continue
        for role, pattern in _SECTION_ROLES:
            if pattern.search(title):
                text = content if len(content) <= MAX_SECTION_CHARS else content[:MAX_SECTION_CHARS]
                found.setdefault(role, []).append(text)
                break
    return found


def _first_paragraph(body: str) -> str | None:
    """The first prose paragraph of the card (not a heading, list, table, image or comment)."""
    body = _strip_comments(body)
    for block in re.split(r"\n\s*\n", body):
        text = block.strip()
        if not text or text[0] in "#|-*!<>[`" or text.startswith("```"):
            continue
        if is_missing(text):
            continue
        return " ".join(text.split())[:MAX_SECTION_CHARS]
    return None


def _metrics(model_index: object) -> tuple[tuple[CardMetric, ...], tuple[str, ...], str | None]:
    """Metrics, evaluation datasets and the model name from ``model-index``."""
    metrics: list[CardMetric] = []
    datasets: list[str] = []
    name: str | None = None
    if not isinstance(model_index, list):
        return (), (), None
    for entry in model_index[:MAX_ITEMS]:
        if not isinstance(entry, dict):
            continue
        name = name or _text(entry.get("name"))
        results = entry.get("results")
        for result in results[:MAX_ITEMS] if isinstance(results, list) else ():
            if len(metrics) >= MAX_ITEMS:
                break
            if not isinstance(result, dict):
                continue
            dataset = result.get("dataset") if isinstance(result.get("dataset"), dict) else {}
            assert isinstance(dataset, dict)
            dataset_id = _text(dataset.get("type")) or _text(dataset.get("name"))
            split = _text(dataset.get("split"))
            if dataset_id and dataset_id not in datasets:
                datasets.append(dataset_id)
            found = result.get("metrics")
            for metric in found[:MAX_ITEMS] if isinstance(found, list) else ():
                if len(metrics) >= MAX_ITEMS:
                    break
                if not isinstance(metric, dict):
                    continue
                kind = _text(metric.get("type")) or _text(metric.get("name"))
                value = _text(metric.get("value"))
                if kind and value is not None:
                    shown = _text(dataset.get("name")) or dataset_id
                    metrics.append(CardMetric(kind, value, shown, split))
    return tuple(metrics), tuple(datasets), name


def parse_card(path: Path, relpath: str) -> ModelCard:
    """Parse a model card; a card without front matter still gives its sections."""
    text = read_bounded(path, MAX_CARD_BYTES).decode("utf-8", "replace")
    meta, body = split_front_matter(text)
    sections = _sections(body)
    base = ModelCard(
        path=relpath,
        front_matter=False,
        description=_first_paragraph(body),
        use_cases=tuple(sections.get("use_cases", ())),
        out_of_scope=tuple(sections.get("out_of_scope", ())),
        limitations=tuple(sections.get("limitations", ())),
        ethical=tuple(sections.get("ethical", ())),
    )
    if meta is None:
        return base
    metrics, eval_datasets, index_name = _metrics(meta.get("model-index"))
    authors = _texts(meta.get("authors")) or _texts(meta.get("author"))
    declares_model = "sdk" not in meta and any(key in meta for key in _MODEL_KEYS)
    return replace(
        base,
        front_matter=True,
        declares_model=declares_model,
        name=_text(meta.get("model_name")) or index_name,
        version=_text(meta.get("version")) or _text(meta.get("model_version")),
        license=_text(meta.get("license")),
        license_name=_text(meta.get("license_name")),
        license_link=_text(meta.get("license_link")),
        authors=authors,
        base_models=_texts(meta.get("base_model")),
        datasets=_texts(meta.get("datasets")),
        eval_datasets=eval_datasets,
        pipeline_tag=_text(meta.get("pipeline_tag")),
        library_name=_text(meta.get("library_name")),
        languages=_texts(meta.get("language")),
        tags=_texts(meta.get("tags")),
        metrics=metrics,
    )


@dataclass(frozen=True)
class ModelConfig:
    """What ``config.json`` (transformers) tells about the architecture."""

    path: str
    model_type: str | None = None  # the architecture family, e.g. "bert", "llama"
    architectures: tuple[str, ...] = ()  # e.g. ("BertForSequenceClassification",)
    torch_dtype: str | None = None
    transformers_version: str | None = None


def parse_config(path: Path, relpath: str) -> ModelConfig | None:
    """The architecture fields of a config.json, or None if it is not a JSON object."""
    try:
        data = json.loads(read_bounded(path, MAX_CONFIG_BYTES))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(data, dict):
        return None
    return ModelConfig(
        path=relpath,
        model_type=_text(data.get("model_type")),
        architectures=_texts(data.get("architectures")),
        torch_dtype=_text(data.get("torch_dtype")),
        transformers_version=_text(data.get("transformers_version")),
    )
