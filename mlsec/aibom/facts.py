"""What the AIBOM analyzer learns about the repository: the data the CycloneDX renderer builds
the bill of materials from (``report.facts["aibom"]``).

Every field is either found in the repository (a model card, a config file, a format header,
git, the other analyzers' facts) or absent. Nothing here is a default or a guess: an absent
value means less information in the BOM and, where it matters, an MLS3xx finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsec.facts import _jsonable


@dataclass(frozen=True)
class GitProvenance:
    commit: str
    branch: str | None = None  # None when HEAD is detached
    dirty: bool = False  # tracked files differ from the commit, or untracked files exist
    tag: str | None = None  # a tag pointing at HEAD
    remote_url: str | None = None  # 'origin' (else the first remote), credentials removed
    commit_time: int | None = None  # committer time of HEAD, seconds since the epoch


@dataclass(frozen=True)
class BomFile:
    """One file of a model: its hash, or the Git LFS oid when only the pointer is present."""

    path: str  # relative to the scan root
    size: int  # of the artifact (the LFS size for a pointer)
    sha256: str | None  # None: the file could not be read
    hash_source: str  # "file", "git-lfs-pointer" or "unavailable"
    # "weights", "config", "card", "tokenizer", "chat-template", "code", "data", "other"
    role: str
    format: str | None = None


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template shipped with a model (loaders render it: it is code of a kind)."""

    source: str  # the file it is in (tokenizer_config.json, chat_template.jinja, a .gguf)
    name: str  # "chat_template", "chat_template.tool_use", "tokenizer.chat_template"
    sha256: str  # of the template text, UTF-8
    text: str  # as found (bounded by the reader)


@dataclass(frozen=True)
class LibraryRef:
    """A library a model names: its card's library_name, its config's saving library, the
    imports of the code it ships."""

    name: str  # PEP 503 normalised distribution name
    sources: tuple[str, ...]  # where it is named: "README.md (library_name)", "config.json"
    version: str | None = None  # the version a config says the model was saved with


@dataclass(frozen=True)
class Metric:
    type: str
    value: str
    slice: str | None = None  # the dataset (and split) the metric was measured on


@dataclass(frozen=True)
class DatasetRef:
    """A dataset named by a model card or by code (``load_dataset("...")``)."""

    name: str
    bom_ref: str
    url: str | None = None  # the hub page when the name is a Hugging Face dataset id
    sources: tuple[str, ...] = ()  # where it is named: "README.md (datasets)", "train.py:12"
    roles: tuple[str, ...] = ()  # "training" (card datasets), "evaluation" (model-index), "code"


@dataclass(frozen=True)
class Completeness:
    profile: str  # "ntia-minimum-elements" or "eu-ai-act-annex-iv"
    present: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def score(self) -> float:
        total = len(self.present) + len(self.missing)
        return round(len(self.present) / total, 2) if total else 1.0


@dataclass(frozen=True)
class BomModel:
    bom_ref: str
    name: str
    path: str  # the model's folder or file, relative to the scan root ("." for the root)
    files: tuple[BomFile, ...]
    version: str | None = None
    # "card", "config", "gguf", "onnx", "hub-revision", "git-tag" (the last only for models
    # the repository itself produces: see build.AibomBuilder._identity)
    version_source: str | None = None
    description: str | None = None
    license: str | None = None  # as written (SPDX id, expression, or a name)
    license_spdx: bool = False  # whether it maps to SPDX
    license_url: str | None = None
    supplier: str | None = None
    authors: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    hub_url: str | None = None
    hub_id: str | None = None  # "org/name" on the Hugging Face hub, when known
    hub_revision: str | None = None  # the hub commit the files were downloaded at
    card_path: str | None = None
    formats: tuple[str, ...] = ()
    framework: str | None = None
    library_name: str | None = None
    parameter_count: int | None = None
    task: str | None = None
    architecture_family: str | None = None
    architecture: str | None = None
    datasets: tuple[str, ...] = ()  # bom-refs of DatasetRef
    metrics: tuple[Metric, ...] = ()
    use_cases: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    ethical_considerations: tuple[str, ...] = ()
    tradeoffs: tuple[str, ...] = ()
    training_data_notes: tuple[str, ...] = ()  # the card's "Training Data" sections
    evaluation_notes: tuple[str, ...] = ()  # the card's "Evaluation"/"Results" sections
    inputs: tuple[str, ...] = ()  # formats, from the task (tasks.task_facts)
    outputs: tuple[str, ...] = ()
    approach: str | None = None
    # Architecture hyper-parameters read from the model: context-length, layers,
    # attention-heads, kv-heads, embedding-length, vocabulary-size, quantization
    architecture_details: Mapping[str, str] = field(default_factory=dict)
    chat_templates: tuple[ChatTemplate, ...] = ()
    libraries: tuple[LibraryRef, ...] = ()
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    format_metadata: Mapping[str, str] = field(default_factory=dict)  # "gguf:general.name"
    missing_files: tuple[str, ...] = ()  # shards an index (*.index.json) names but absent
    last_commit: str | None = None  # the last commit touching the model's files
    committed: bool = False  # every file of the model is tracked and unchanged
    completeness: tuple[Completeness, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class AibomFacts:
    repository: str  # the repository's name (remote name, else the folder's)
    git: GitProvenance | None
    models: tuple[BomModel, ...] = ()
    datasets: tuple[DatasetRef, ...] = ()
    # Tokenizer vocabularies and arrays files outside every model (Whisper's assets/):
    # listed as data, not as models.
    loose_files: tuple[BomFile, ...] = ()
    timestamp: int | None = None  # seconds since the epoch; SOURCE_DATE_EPOCH when set
    reproducible: bool = False
    serial: str | None = None  # a random UUID unless reproducible (then derived from content)

    def to_json(self) -> Any:
        data = _plain(self)
        for model, raw in zip(self.models, data["models"], strict=True):
            raw["completeness"] = [{**_plain(c), "score": c.score} for c in model.completeness]
        return _jsonable(data)


def _plain(value: Any) -> Any:
    """A record tree as dicts and lists (``dataclasses.asdict`` deep-copies every leaf: ten
    times slower on a BOM of 1,000 models)."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
