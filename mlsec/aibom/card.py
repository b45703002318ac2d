"""Hugging Face model cards (``README.md`` YAML front matter and sections) and ``config.json``.

Only what the card says is kept: "[More Information Needed]" (the template's placeholder),
empty strings and empty lists count as missing. Files are read with a size bound and YAML is
parsed with ``yaml.safe_load`` (no object construction).

The body is read the way the Hugging Face card template (huggingface_hub's
``modelcard_template.md``) and the sentence-transformers, diffusers and GGUF card
conventions lay it out: fenced code is code (its ``#`` comment lines are not headings), the
description is the first prose paragraph (a heading ends a paragraph, so a paragraph right
under the title counts), and sections are matched to CycloneDX model card fields by what
their headings mean ("Intended uses", "Direct Use", "Bias, Risks, and Limitations",
"Training Data", "Evaluation", ...).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from mlsec.safeopen import open_regular

MAX_CARD_BYTES = 1024 * 1024
MAX_CONFIG_BYTES = 1024 * 1024
MAX_SECTION_CHARS = 2000
MAX_SECTIONS = 512  # headings looked at per card
MAX_BLOCKS = 10_000  # Markdown blocks looked at per card (real cards have a few hundred)
# Bounds on what is taken from lists in front matter: YAML aliases let a small file describe
# huge (shared) structures, so every loop over card data is capped.
MAX_ITEMS = 256
PLACEHOLDER = "[More Information Needed]"
# Front matter keys of a model card (a Space card has "sdk"; a dataset card has none of the
# model-only keys besides license).
_MODEL_KEYS = ("pipeline_tag", "base_model", "model-index", "library_name", "model_name")

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*)$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_LINK = re.compile(r"!?\[([^\]\n]{0,500})\]\([^)\n]{0,2000}\)")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
# A template placeholder left unrendered ({{ model_summary }}) is no description.
_TEMPLATE_TAG = re.compile(r"\{\{[^}\n]{0,500}\}\}|\{%[^%\n]{0,500}%\}")
# Inline patterns are bounded, and applied to bounded text only (MAX_INLINE_CHARS), so a
# hostile card of one long line costs linear time.
MAX_INLINE_CHARS = 4 * MAX_SECTION_CHARS
# Instructions a generated card leaves for its author ("[TODO: describe the data ...]").
_TODO = re.compile(r"\[TODO\b[^\]\n]{0,2000}\]|^[ \t]*TODO\b[^\n]*$", re.MULTILINE | re.IGNORECASE)

# Sections by meaning. Each heading (lower-cased, "[optional]" and punctuation removed) is
# matched against these in order; a heading may fill several roles ("Bias, Risks, and
# Limitations" is both technical limitations and ethical considerations).
_SECTION_ROLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("out_of_scope", re.compile(r"\bout of scope\b|\bmisuse\b|\bmalicious use")),
    (
        "use_cases",
        re.compile(
            r"^(?:intended |direct |downstream |primary )?uses?(?: cases?)?(?: and limitations)?$"
            r"|^intended (?:uses?|use cases?|purpose|usage)\b"
            r"|^use cases?$|^(?:direct|downstream) use\b|^applications?$"
        ),
    ),
    ("limitations", re.compile(r"limitation|\bshortcoming|\bcaveat|\bknown issues")),
    (
        "ethical",
        re.compile(r"\bethic|\bbias|\brisks?\b|\bsafety\b|\bfairness|^recommendations$"),
    ),
    ("tradeoffs", re.compile(r"trade ?offs?\b|\bquanti[sz]ation methods?\b")),
    ("training_data", re.compile(r"^(?:training|fine tuning|pre ?training) (?:data|datasets?)$")),
    (
        "evaluation",
        re.compile(
            r"^(?:evaluation|eval)(?: results?| data| metrics)?$|^results$|^benchmarks?$"
            r"|^(?:evaluation|benchmark) results$|^performance$|^metrics$"
        ),
    ),
)
# "Intended uses & limitations" (the transformers Trainer's card) is both.
_BOTH_USES_AND_LIMITS = re.compile(r"^intended uses? (?:and )?limitations$")


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
    tradeoffs: tuple[str, ...] = ()
    training_data: tuple[str, ...] = ()  # what the card's "Training Data" sections say
    evaluation: tuple[str, ...] = ()  # what its "Evaluation"/"Results" sections say


def read_bounded(path: Path, limit: int) -> bytes:
    with open_regular(path) as handle:
        return handle.read(limit)


def split_front_matter(text: str) -> tuple[Mapping[str, Any] | None, str]:
    """(front matter mapping or None, the body) of a Markdown card."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    try:
        data = yaml.safe_load(match.group(1))
    # Deep nesting is hostile input, not a crash; a bad date ("2024-13-45") is a ValueError.
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError):
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


@dataclass(frozen=True)
class _Block:
    kind: str  # "heading", "paragraph", "code", "list", "table", "quote", "html", "rule"
    text: str
    level: int = 0


def _blocks(body: str) -> Iterator[_Block]:
    """The card body as Markdown blocks (CommonMark's block structure, simplified: what a
    card needs). Linear in the size of the body."""
    lines = _strip_comments(body).replace("\r\n", "\n").split("\n")
    paragraph: list[str] = []
    kind = "paragraph"
    fence: str | None = None
    code: list[str] = []

    def flush() -> Iterator[_Block]:
        nonlocal paragraph, kind
        if paragraph:
            yield _Block(kind, "\n".join(paragraph))
        paragraph, kind = [], "paragraph"

    for line in lines:
        if fence is not None:
            if line.strip().startswith(fence):
                yield _Block("code", "\n".join(code))
                fence, code = None, []
            else:
                code.append(line)
            continue
        fenced = _FENCE.match(line)
        if fenced:
            yield from flush()
            fence = fenced.group(1)
            continue
        heading = _HEADING.match(line)
        if heading:
            yield from flush()
            title = heading.group(2).strip().rstrip("#").strip()
            yield _Block("heading", title, len(heading.group(1)))
            continue
        stripped = line.strip()
        if not stripped:
            yield from flush()
            continue
        if paragraph and kind == "paragraph" and _SETEXT.match(line):
            # "Title\n=====": the paragraph so far was a heading.
            title = " ".join(p.strip() for p in paragraph)
            paragraph = []
            yield _Block("heading", title, 1 if stripped[0] == "=" else 2)
            continue
        line_kind = _line_kind(stripped)
        if paragraph and line_kind != kind and line_kind != "paragraph":
            yield from flush()
        if not paragraph:
            kind = line_kind
        paragraph.append(line)
    if fence is not None:
        yield _Block("code", "\n".join(code))
    yield from flush()


def _line_kind(stripped: str) -> str:
    if stripped.startswith(("- ", "* ", "+ ")) or re.match(r"\d{1,3}[.)] ", stripped):
        return "list"
    if stripped.startswith("|"):
        return "table"
    if stripped.startswith(">"):
        return "quote"
    if stripped.startswith("<"):
        return "html"
    if set(stripped) <= set("-*_ ") and len(stripped.replace(" ", "")) >= 3:
        return "rule"
    return "paragraph"


def _plain(text: str) -> str:
    """Markdown inline text as plain text: links by their text, emphasis marks dropped,
    whitespace folded."""
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _EMPHASIS.sub("", text)
    return " ".join(text.split())


def _prose(block: _Block) -> str | None:
    """The block's plain text if it is a prose paragraph worth calling a description."""
    if block.kind != "paragraph":
        return None
    text = _plain(_TODO.sub("", _TEMPLATE_TAG.sub("", block.text[:MAX_INLINE_CHARS])))
    if is_missing(text) or not any(c.isalpha() for c in text):
        return None
    if text.startswith(("[!", "[[")):  # admonitions, doc-builder directives
        return None
    return text


_DESCRIPTION_HEADING = re.compile(
    r"^(?:model (?:card )?)?(?:details|description|summary|overview)$|^introduction$"
    r"|^about(?: (?:this|the) model)?$|^model$|^(?:model )?information$"
)


def _first_paragraph(blocks: list[_Block]) -> str | None:
    """The first prose paragraph of the card: not a heading, code, list, table, image, badge,
    quote or HTML, and not a lead-in ending with a colon ("Then you can use it like this:").
    Only before the first heading, under the title (the first heading) or under a heading
    that announces a description ("Model Details", "Description", "Overview"): prose under
    "How to Get Started" or "Citation" describes something else."""
    seen_heading = False
    allowed = True
    headings = 0
    for block in blocks:
        if block.kind == "heading":
            headings += 1
            if headings > MAX_SECTIONS:
                return None
            heading = _normalise_heading(block.text)
            allowed = not seen_heading or bool(_DESCRIPTION_HEADING.match(heading))
            seen_heading = True
            continue
        if not allowed:
            continue
        text = _prose(block)
        if text is None or text.endswith(":"):
            continue
        return text[:MAX_SECTION_CHARS]
    return None


def _normalise_heading(title: str) -> str:
    title = _plain(title[:500]).lower()
    title = re.sub(r"\[optional\]", " ", title)
    title = title.replace("&", " and ")
    title = re.sub(r"[^a-z0-9]+", " ", title)
    return " ".join(title.split())


def _roles(title: str) -> list[str]:
    heading = _normalise_heading(title)
    if not heading:
        return []
    if _BOTH_USES_AND_LIMITS.match(heading):
        return ["use_cases", "limitations"]
    roles = [role for role, pattern in _SECTION_ROLES if pattern.search(heading)]
    if "out_of_scope" in roles:
        return ["out_of_scope"]
    if "use_cases" in roles:
        return ["use_cases"]
    return roles


def _section_text(blocks: list[_Block]) -> str:
    """A section's text: its prose, lists and tables (not its code), placeholders dropped."""
    parts = []
    size = 0
    for block in blocks:
        if block.kind in ("code", "html", "rule"):
            continue
        if size > MAX_SECTION_CHARS:
            break
        raw = block.text[:MAX_INLINE_CHARS]
        text = _TODO.sub("", _TEMPLATE_TAG.sub("", raw)).replace(PLACEHOLDER, "").strip()
        if block.kind == "paragraph":
            text = _plain(text)
        if text and any(c.isalpha() for c in text):
            parts.append(text)
            size += len(text)
    joined = "\n\n".join(parts)
    return joined[:MAX_SECTION_CHARS]


def _sections(blocks: list[_Block]) -> dict[str, list[str]]:
    """Text of the card's sections by role; a section runs to the next heading of the same
    or a higher level, so "## Uses" holds its "### Direct Use" unless that one is matched
    on its own."""
    found: dict[str, list[str]] = {}
    headings = [i for i, b in enumerate(blocks) if b.kind == "heading"][:MAX_SECTIONS]
    claimed: set[int] = set()  # headings whose text an enclosing matched section took
    for position, index in enumerate(headings):
        if index in claimed:
            continue
        heading = blocks[index]
        roles = _roles(heading.text)
        if not roles:
            continue
        end = len(blocks)
        for later in headings[position + 1 :]:
            if blocks[later].level <= heading.level:
                end = later
                break
        # Sub-sections with a role of their own are theirs ("### Out-of-Scope Use" under
        # "## Uses"), the rest belong to this section.
        own: list[_Block] = []
        skip_level: int | None = None
        for offset, block in enumerate(blocks[index + 1 : end], start=index + 1):
            if block.kind == "heading":
                if skip_level is not None and block.level > skip_level:
                    continue
                skip_level = None
                sub_roles = _roles(block.text)
                if sub_roles and sub_roles != roles:
                    skip_level = block.level
                else:
                    claimed.add(offset)
                continue
            if skip_level is None:
                own.append(block)
        text = _section_text(own)
        if not text:
            continue
        for role in roles:
            if text not in found.setdefault(role, []):
                found[role].append(text)
    return found


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
    return parse_card_text(text, relpath)


def parse_card_text(text: str, relpath: str) -> ModelCard:
    meta, body = split_front_matter(text)
    blocks = list(itertools.islice(_blocks(body), MAX_BLOCKS))
    sections = _sections(blocks)
    base = ModelCard(
        path=relpath,
        front_matter=False,
        description=_first_paragraph(blocks),
        use_cases=tuple(sections.get("use_cases", ())),
        out_of_scope=tuple(sections.get("out_of_scope", ())),
        limitations=tuple(sections.get("limitations", ())),
        ethical=tuple(sections.get("ethical", ())),
        tradeoffs=tuple(sections.get("tradeoffs", ())),
        training_data=tuple(sections.get("training_data", ())),
        evaluation=tuple(sections.get("evaluation", ())),
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
    name_or_path: str | None = None  # "_name_or_path": the hub id it was saved from
    version: str | None = None  # "model_version" / "version", when the config states one


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
        torch_dtype=_text(data.get("torch_dtype")) or _text(data.get("dtype")),
        transformers_version=_text(data.get("transformers_version")),
        name_or_path=_text(data.get("_name_or_path")),
        version=_version(data),
    )


def _version(data: Mapping[str, Any]) -> str | None:
    for key in ("model_version", "version"):
        value = data.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = _text(value)
            if text and len(text) <= 64:
                return text
    return None


def adapter_base_model(path: Path) -> str | None:
    """The base model a PEFT adapter names (``adapter_config.json``
    ``base_model_name_or_path``), when it is a hub id rather than a local path."""
    try:
        data = json.loads(read_bounded(path, MAX_CONFIG_BYTES))
    except (OSError, ValueError, RecursionError):
        return None
    value = _text(data.get("base_model_name_or_path")) if isinstance(data, dict) else None
    if value and not value.startswith(("/", ".", "~")) and value.count("/") <= 1:
        return value
    return None
