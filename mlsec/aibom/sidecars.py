"""What a model's own files say beyond the card: its chat templates, the libraries it names,
its architecture hyper-parameters (GGUF metadata, ``config.json``) and its hub identity.

Every reader is bounded (size, depth) and treats a file it cannot read as saying nothing:
a hostile sidecar costs only its own facts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlsec.aibom.facts import ChatTemplate, LibraryRef
from mlsec.safeopen import open_regular

MAX_JSON_BYTES = 4 * 1024 * 1024  # tokenizer_config.json carries templates and added tokens
MAX_TEMPLATE_TEXT = 64 * 1024  # of a chat template's text kept in the BOM (the digest is whole)
MAX_CODE_BYTES = 1024 * 1024
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([A-Za-z_][\w]*)|import[ \t]+([A-Za-z_][\w]*))", re.M)
_HEX40 = re.compile(r"^[0-9a-f]{40}$")

# llama.cpp's llama_ftype (general.file_type): the quantisation of the weights as a whole.
GGUF_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
}
# GGUF "<arch>.<key>" and config.json keys, by the name the BOM gives them.
_GGUF_DETAILS = (
    ("context-length", "context_length"),
    ("layers", "block_count"),
    ("attention-heads", "attention.head_count"),
    ("kv-heads", "attention.head_count_kv"),
    ("embedding-length", "embedding_length"),
    ("vocabulary-size", "vocab_size"),
    ("experts", "expert_count"),
)
_CONFIG_DETAILS = (
    ("context-length", ("max_position_embeddings", "n_positions", "max_sequence_length")),
    ("layers", ("num_hidden_layers", "n_layer", "num_layers")),
    ("attention-heads", ("num_attention_heads", "n_head")),
    ("kv-heads", ("num_key_value_heads",)),
    ("embedding-length", ("hidden_size", "n_embd", "d_model")),
    ("vocabulary-size", ("vocab_size",)),
    ("experts", ("num_local_experts", "num_experts")),
)
# Import names that are not their distribution's name.
_IMPORT_TO_DIST = {
    "sentence_transformers": "sentence-transformers",
    "sklearn": "scikit-learn",
    "llama_cpp": "llama-cpp-python",
    "PIL": "pillow",
    "cv2": "opencv-python",
    "huggingface_hub": "huggingface-hub",
    "google": "",  # a namespace, not a distribution
}
# Libraries worth an edge from a model (what model code imports to run); not the standard
# library or the model's own helper modules.
_ML_LIBRARIES = frozenset(
    {
        "torch",
        "transformers",
        "sentence-transformers",
        "diffusers",
        "tensorflow",
        "keras",
        "jax",
        "flax",
        "onnx",
        "onnxruntime",
        "safetensors",
        "timm",
        "peft",
        "accelerate",
        "tokenizers",
        "numpy",
        "scikit-learn",
        "xgboost",
        "lightgbm",
        "llama-cpp-python",
        "open-clip-torch",
        "einops",
        "huggingface-hub",
        "gguf",
    }
)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON document in ``path``, or None when it is not readable JSON within bounds."""
    try:
        with open_regular(path) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            return None
        return json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None


def _template(source: str, name: str, text: str) -> ChatTemplate:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return ChatTemplate(source, name, digest, text[:MAX_TEMPLATE_TEXT])


def templates_in_tokenizer_config(relpath: str, data: Any) -> list[ChatTemplate]:
    value = data.get("chat_template") if isinstance(data, dict) else None
    if isinstance(value, str):
        return [_template(relpath, "chat_template", value)]
    found = []
    if isinstance(value, list):
        for entry in value[:64]:
            if isinstance(entry, dict) and isinstance(entry.get("template"), str):
                name = entry.get("name") if isinstance(entry.get("name"), str) else "default"
                found.append(_template(relpath, f"chat_template.{name}", entry["template"]))
    return found


def chat_templates(files: Iterable[tuple[str, Path]]) -> list[ChatTemplate]:
    """Templates of a model's tokenizer_config.json, chat_template.json and .jinja files."""
    found: list[ChatTemplate] = []
    for relpath, path in files:
        name = relpath.rsplit("/", 1)[-1].lower()
        if name.endswith(".jinja"):
            try:
                with open_regular(path) as handle:
                    raw = handle.read(MAX_JSON_BYTES)
            except OSError:
                continue
            found.append(
                _template(relpath, name.removesuffix(".jinja"), raw.decode("utf-8", "replace"))
            )
        elif name in ("tokenizer_config.json", "chat_template.json"):
            found.extend(templates_in_tokenizer_config(relpath, read_json(path)))
    return found


def gguf_details(path: Path, relpath: str) -> tuple[dict[str, str], list[str], list[ChatTemplate]]:
    """(architecture details, languages, chat templates) from a GGUF header."""
    from mlsec.formats import FormatError
    from mlsec.formats.gguf import GGUFArray, read_gguf

    try:
        info = read_gguf(path)
    except (FormatError, OSError, ValueError):
        return {}, [], []
    meta = info.metadata
    arch = meta.get("general.architecture")
    details: dict[str, str] = {}
    if isinstance(arch, str):
        for name, key in _GGUF_DETAILS:
            value = meta.get(f"{arch}.{key}")
            if isinstance(value, int) and not isinstance(value, bool):
                details[name] = str(value)
    if "vocabulary-size" not in details:
        tokens = meta.get("tokenizer.ggml.tokens")
        if isinstance(tokens, GGUFArray):
            details["vocabulary-size"] = str(tokens.count)
    file_type = meta.get("general.file_type")
    if isinstance(file_type, int) and file_type in GGUF_FILE_TYPES:
        details["quantization"] = GGUF_FILE_TYPES[file_type]
    if isinstance(meta.get("tokenizer.ggml.model"), str):
        details["tokenizer"] = str(meta["tokenizer.ggml.model"])[:64]
    languages: list[str] = []
    value = meta.get("general.languages")
    if isinstance(value, GGUFArray):
        languages = [str(v) for v in value.head if isinstance(v, str)][:64]
    templates = [
        _template(relpath, key, text)
        for key, text in sorted(info.chat_templates.items())
        if key not in info.truncated_keys
    ]
    return details, languages, templates


def config_details(data: Any) -> dict[str, str]:
    """Architecture details a transformers config.json states (text_config for multimodal)."""
    if not isinstance(data, dict):
        return {}
    scopes = [data]
    if isinstance(data.get("text_config"), dict):
        scopes.append(data["text_config"])
    details: dict[str, str] = {}
    for name, keys in _CONFIG_DETAILS:
        for scope in scopes:
            value = next((scope[k] for k in keys if k in scope), None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                details[name] = str(value)
                break
    quant = data.get("quantization_config")
    if isinstance(quant, dict) and isinstance(quant.get("quant_method"), str):
        bits = quant.get("bits") or quant.get("weight_bits")
        method = quant["quant_method"][:32]
        details["quantization"] = f"{method} {bits}-bit" if isinstance(bits, int) else method
    return details


def _add(found: dict[str, LibraryRef], name: str, source: str, version: str | None = None) -> None:
    key = normalise(name)
    if not key or len(key) > 100:
        return
    known = found.get(key)
    if known is None:
        found[key] = LibraryRef(key, (source,), version)
    elif source not in known.sources:
        found[key] = LibraryRef(key, (*known.sources, source), known.version or version)


def libraries(
    files: Iterable[tuple[str, Path]],
    library_name: str | None,
    card_path: str | None,
) -> tuple[LibraryRef, ...]:
    """Libraries a model names: the card's ``library_name``, the library and version its
    configs say saved it (``transformers_version``, ``_diffusers_version``,
    config_sentence_transformers.json), the modules of ``modules.json`` and the imports of
    the code it ships (``modeling_*.py`` loaded with trust_remote_code)."""
    found: dict[str, LibraryRef] = {}
    if library_name:
        _add(found, library_name, f"{card_path} (library_name)")
    for relpath, path in files:
        name = relpath.rsplit("/", 1)[-1]
        if name in ("config.json", "model_index.json", "config_sentence_transformers.json"):
            data = read_json(path)
            if not isinstance(data, dict):
                continue
            for key, dist in (
                ("transformers_version", "transformers"),
                ("_diffusers_version", "diffusers"),
            ):
                value = data.get(key)
                if isinstance(value, str) and len(value) < 64:
                    _add(found, dist, relpath, value)
            versions = data.get("__version__")
            if isinstance(versions, dict):
                for dist, value in list(versions.items())[:16]:
                    if isinstance(dist, str) and isinstance(value, str) and len(value) < 64:
                        dist_name = "torch" if dist == "pytorch" else dist
                        _add(found, _IMPORT_TO_DIST.get(dist_name, dist_name), relpath, value)
        elif name == "modules.json":
            data = read_json(path)
            for entry in data[:64] if isinstance(data, list) else ():
                kind = entry.get("type") if isinstance(entry, dict) else None
                if isinstance(kind, str) and kind.split(".")[0] == "sentence_transformers":
                    _add(found, "sentence-transformers", relpath)
        elif name.endswith(".py"):
            try:
                with open_regular(path) as handle:
                    code = handle.read(MAX_CODE_BYTES).decode("utf-8", "replace")
            except OSError:
                continue
            for match in _IMPORT.finditer(code):
                module = match.group(1) or match.group(2)
                dist = _IMPORT_TO_DIST.get(module, module)
                if normalise(dist) in _ML_LIBRARIES:
                    _add(found, dist, relpath)
    return tuple(sorted(found.values(), key=lambda lib: lib.name))


def hub_snapshot(relpath: str) -> tuple[str, str] | None:
    """(hub id, revision) of a file in a Hugging Face cache snapshot
    (``models--org--name/snapshots/<commit>/...``)."""
    parts = relpath.split("/")
    for index, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[index + 1] == "snapshots":
            revision = parts[index + 2]
            hub_id = part.removeprefix("models--").replace("--", "/", 1)
            if _HEX40.match(revision) and hub_id and "--" not in hub_id:
                return hub_id, revision
    return None


def download_metadata(folder: Path) -> str | None:
    """The hub commit ``huggingface_hub`` downloaded a ``local_dir`` at: the first line of
    ``.cache/huggingface/download/<file>.metadata`` is the commit hash."""
    meta_dir = folder / ".cache" / "huggingface" / "download"
    try:
        entries = sorted(meta_dir.glob("*.metadata"))[:64]
    except OSError:
        return None
    revisions = set()
    for entry in entries:
        try:
            with open_regular(entry) as handle:
                first = handle.read(128).decode("ascii", "replace").splitlines()
        except OSError:
            continue
        if first and _HEX40.match(first[0].strip()):
            revisions.add(first[0].strip())
    return revisions.pop() if len(revisions) == 1 else None


def scalar(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value.strip() else None
