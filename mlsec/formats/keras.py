"""Keras model configuration, read statically from ``.keras`` (v3 zip) and HDF5 files.

What matters for safety is in the model config JSON: Lambda layers carry marshalled Python
bytecode (run on load when safe mode is off, and always by Keras 2), and ``module`` /
``registered_name`` references make Keras import modules outside Keras. This module extracts
them without unmarshalling or importing anything.

HDF5 is read with ``h5py`` (a runtime dependency): HDF5 is far too intricate to parse by hand
safely (object headers, B-trees, global heaps for variable-length strings), and reading
attributes with h5py only decodes data, it never runs model code. h5py is imported lazily,
only when an HDF5 file is scanned.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsec.formats import FormatError

MAX_CONFIG_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 200
KERAS_ZIP_MEMBERS = ("config.json", "metadata.json")
# Module prefixes Keras itself (and its Google-maintained companions) serialise.
KERAS_MODULES = ("keras", "tf_keras", "tensorflow", "keras_hub", "keras_nlp", "keras_cv")
# What zipfile raises on damaged or hostile archives (bad CRCs and headers, corrupt deflate
# streams, unsupported versions and methods, encryption, truncation).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    EOFError,
    ValueError,
    OSError,
    struct.error,
    UnicodeDecodeError,
)
_PRINTABLE = re.compile(rb"[\x20-\x7e]{2,}")
_PRINTABLE_RECORD = re.compile(rb"[\x20-\x7e]+")
_SHORT_STRING_TYPES = frozenset(b"zZ")
_LONG_STRING_TYPES = frozenset(b"aAuts")


@dataclass(frozen=True)
class LambdaLayer:
    name: str
    where: str  # JSON path in the config, e.g. config.layers[2]
    code_b64: str | None  # the marshalled bytecode as stored (base64); never unmarshalled
    strings: tuple[str, ...] = ()  # printable runs in the bytecode: names, constants
    function: str | None = None  # for Keras 2 lambdas serialised by name
    module: str | None = None


@dataclass(frozen=True)
class ModuleReference:
    module: str
    name: str  # class_name / function name / registered_name
    where: str


@dataclass
class KerasInfo:
    format: str  # "keras" (v3 zip) or "keras-h5"
    config: Mapping[str, Any] | None
    keras_version: str | None = None
    backend: str | None = None
    lambdas: list[LambdaLayer] = field(default_factory=list)
    references: list[ModuleReference] = field(default_factory=list)
    training_config: Mapping[str, Any] | None = None
    # Elements of the weight datasets (optimizer state left out); None when not read.
    parameter_count: int | None = None

    @property
    def class_name(self) -> str | None:
        value = (self.config or {}).get("class_name")
        return value if isinstance(value, str) else None

    @property
    def model_name(self) -> str | None:
        inner = (self.config or {}).get("config")
        value = inner.get("name") if isinstance(inner, Mapping) else None
        return value if isinstance(value, str) else None

    def metadata_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (
            ("class_name", self.class_name),
            ("name", self.model_name),
            ("keras_version", self.keras_version),
            ("backend", self.backend),
        ):
            if value is not None:
                out[key] = value[:256]
        return out


def read_keras(path: str | os.PathLike[str]) -> KerasInfo:
    """The configuration of a ``.keras`` archive or a Keras HDF5 file."""
    with open(Path(path), "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"PK"):
        return read_keras_zip(path)
    if magic == b"\x89HDF\r\n\x1a\n":
        return read_keras_h5(path)
    raise FormatError("neither a .keras archive nor an HDF5 file")


def read_keras_zip(path: str | os.PathLike[str]) -> KerasInfo:
    try:
        with zipfile.ZipFile(Path(path)) as archive:
            config = _json_member(archive, "config.json")
            metadata = _json_member(archive, "metadata.json", required=False)
            parameter_count = _zip_weight_elements(archive)
    except ZIP_ERRORS as exc:
        raise FormatError(f"cannot read the .keras archive: {type(exc).__name__}: {exc}") from None
    if not isinstance(config, dict):
        raise FormatError("config.json is not a JSON object")
    meta = metadata if isinstance(metadata, dict) else {}
    info = KerasInfo(
        format="keras",
        config=config,
        keras_version=_str(meta.get("keras_version")),
        backend=_str(meta.get("backend")),
        parameter_count=parameter_count,
    )
    _inspect(info)
    return info


MAX_INFLATED_WEIGHTS = 64 * 1024 * 1024


def _zip_weight_elements(archive: zipfile.ZipFile) -> int | None:
    """Weight elements of a .keras archive's ``model.weights.h5`` (shapes only, as in
    :func:`read_keras_h5`); None when it is absent, unreadable, or compressed and too large
    to inflate (a stored member is read in place)."""
    try:
        entry = archive.getinfo("model.weights.h5")
    except KeyError:
        return None
    if entry.compress_type != zipfile.ZIP_STORED and entry.file_size > MAX_INFLATED_WEIGHTS:
        return None
    try:
        import io

        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        return None
    try:
        with archive.open(entry) as member:
            source: Any = (
                member
                if entry.compress_type == zipfile.ZIP_STORED
                else io.BytesIO(member.read(MAX_INFLATED_WEIGHTS + 1))
            )
            with h5py.File(source, "r") as h5:
                return _weight_elements(h5, h5py)
    except Exception:
        return None


def _json_member(archive: zipfile.ZipFile, name: str, required: bool = True) -> Any:
    try:
        entry = archive.getinfo(name)
    except KeyError:
        if required:
            raise FormatError(f"the archive has no {name}") from None
        return None
    if entry.file_size > MAX_CONFIG_BYTES:
        raise FormatError(f"{name} is {entry.file_size} bytes (limit {MAX_CONFIG_BYTES})")
    with archive.open(entry) as member:
        data = member.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise FormatError(f"{name} expands past {MAX_CONFIG_BYTES} bytes")
    return _loads(data, name)


def _loads(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from None


def read_keras_h5(path: str | os.PathLike[str]) -> KerasInfo:
    """Root-group attributes of a Keras HDF5 file (``model_config``, ``keras_version``...)."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency
        raise FormatError(f"h5py is not installed ({exc}); cannot read HDF5") from None
    try:
        with h5py.File(Path(path), "r") as h5:
            attrs = {
                key: _attr(h5.attrs, key)
                for key in ("model_config", "training_config", "keras_version", "backend")
            }
            parameter_count = _weight_elements(h5, h5py)
    except FormatError:
        raise
    except Exception as exc:  # h5py raises many types on damaged files; all mean "corrupt"
        raise FormatError(f"cannot read HDF5 attributes: {type(exc).__name__}: {exc}") from None
    raw_config = attrs["model_config"]
    config = _loads(raw_config, "model_config") if raw_config else None
    if config is not None and not isinstance(config, dict):
        raise FormatError("model_config is not a JSON object")
    raw_training = attrs["training_config"]
    training = _loads(raw_training, "training_config") if raw_training else None
    info = KerasInfo(
        format="keras-h5",
        config=config,
        keras_version=attrs["keras_version"],
        backend=attrs["backend"],
        training_config=training if isinstance(training, dict) else None,
        parameter_count=parameter_count,
    )
    _inspect(info)
    return info


MAX_WEIGHT_OBJECTS = 1_000_000
# Top-level groups of optimizer state (Keras 2 HDF5 and Keras 3 model.weights.h5).
_OPTIMIZER_GROUPS = ("optimizer_weights", "optimizer")


def _weight_elements(h5: Any, h5py: Any) -> int | None:
    """Elements of every weight dataset of an open Keras HDF5 file: under ``model_weights``
    in a whole-model file, else the file's layer groups, optimizer state left out. Shapes
    only: no dataset is read. None when there is no weight dataset or too many objects."""
    whole_model = isinstance(h5.get("model_weights", getlink=True), h5py.HardLink)
    root = h5["model_weights"] if whole_model else h5
    total = 0
    seen = 0
    found = False

    def children(group: Any, top: bool = False) -> list[Any]:
        # Hard links only: a soft or external link could lead out of the file.
        return [
            group[key]
            for key in group
            if not (top and key in _OPTIMIZER_GROUPS)
            and isinstance(group.get(key, getlink=True), h5py.HardLink)
        ]

    stack = children(root, top=True)
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_WEIGHT_OBJECTS:
            return None
        if isinstance(node, h5py.Dataset):
            shape = node.shape
            if shape is None:
                continue
            found = True
            count = 1
            for dim in shape:
                count *= int(dim)
            total += count
        elif isinstance(node, h5py.Group):
            stack.extend(children(node))
    return total if found else None


def read_keras_saved_metadata(path: str | os.PathLike[str]) -> KerasInfo:
    """Layer configs from ``keras_metadata.pb`` (Keras 2 SavedModel), via the wire reader.

    ``SavedMetadata.nodes`` (field 1) are ``SavedObject`` messages whose ``node_path``
    (field 3) names the layer and whose ``metadata`` (field 5) is the layer's JSON.
    """
    from mlsec.formats.protobuf import LEN, iter_fields, mapped, text

    layers: list[tuple[str, Any]] = []
    with mapped(path) as buf:
        for node in iter_fields(buf, 0, len(buf)):
            if node.number != 1 or node.wire_type != LEN:
                raise FormatError(f"unexpected field {node.number} in keras_metadata.pb")
            node_path, metadata = "", None
            for f in iter_fields(buf, node.value, node.end):
                if f.number == 3 and f.wire_type == LEN:
                    node_path = text(buf, f, 1024)
                elif f.number == 5 and f.wire_type == LEN:
                    if f.length > MAX_CONFIG_BYTES:
                        raise FormatError(f"metadata of {node_path!r} is too large")
                    metadata = _loads(bytes(buf[f.value : f.end]), f"metadata of {node_path!r}")
            if isinstance(metadata, dict):
                layers.append((node_path, metadata))
    if not layers:
        raise FormatError("keras_metadata.pb holds no layer metadata")
    root = next((m for p, m in layers if p == "root"), layers[0][1])
    info = KerasInfo(format="keras-savedmodel", config=root)
    for node_path, metadata in layers:
        for where, entry in _walk(metadata, node_path or "node", 0):
            _check_node(info, where, entry)
    _dedupe_lambdas(info)
    return info


def _dedupe_lambdas(info: KerasInfo) -> None:
    """The same Lambda appears in its own node and in its model's config: keep one."""
    seen: set[tuple[str, str | None, str | None]] = set()
    kept = []
    for layer in info.lambdas:
        ident = (layer.name, layer.code_b64, layer.function)
        if ident not in seen:
            seen.add(ident)
            kept.append(layer)
    info.lambdas = kept
    refs: dict[tuple[str, str], ModuleReference] = {}
    for ref in info.references:
        refs.setdefault((ref.module, ref.name), ref)
    info.references = list(refs.values())


def _attr(attrs: Any, key: str) -> str | None:
    if key not in attrs:
        return None
    value = attrs[key]
    if isinstance(value, bytes):
        if len(value) > MAX_CONFIG_BYTES:
            raise FormatError(f"attribute {key} is too large")
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None  # arrays and numbers are not Keras configuration


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _inspect(info: KerasInfo) -> None:
    for root_name, root in (("config", info.config), ("training_config", info.training_config)):
        if root is None:
            continue
        for where, node in _walk(root, root_name, 0):
            _check_node(info, where, node)


def _walk(node: Any, where: str, depth: int) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if depth > MAX_DEPTH:
        raise FormatError("configuration nested too deeply")
    if isinstance(node, Mapping):
        yield where, node
        for key, value in node.items():
            if isinstance(value, Mapping | list):
                yield from _walk(value, f"{where}.{key}", depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, Mapping | list):
                yield from _walk(value, f"{where}[{index}]", depth + 1)


def _check_node(info: KerasInfo, where: str, node: Mapping[str, Any]) -> None:
    class_name = node.get("class_name")
    config = node.get("config")
    if class_name == "Lambda" and isinstance(config, Mapping):
        info.lambdas.append(_lambda(where, config))
    module = node.get("module")
    if "function_type" in node:
        return  # a Keras 2 Lambda's own config: its module is reported with the Lambda
    internal = _keras_internal(node, module)
    if internal is not None:
        info.references.append(ModuleReference(internal.module, internal.name, where))
    elif isinstance(module, str) and module and not _is_keras_module(module):
        name = node.get("registered_name") or class_name or ""
        if class_name == "function" and isinstance(config, str):
            name = config  # a function reference: {"module": m, "config": "<function>"}
        info.references.append(ModuleReference(module, str(name)[:200], where))
    registered = node.get("registered_name")
    if (
        isinstance(registered, str)
        and ">" in registered
        and not isinstance(module, str)
        and not _is_keras_module(registered.split(">", 1)[0].lower())
    ):
        package = registered.split(">", 1)[0]
        info.references.append(ModuleReference(package, registered[:200], where))


# Keras's own module spellings, stripped before a name is matched against keras_internal.
_KERAS_PREFIXES = (
    "tensorflow.python.keras.",
    "tensorflow.keras.",
    "tf.keras.",
    "tf_keras.src.",
    "tf_keras.",
    "keras.src.",
    "keras.",
)


def keras_internal_danger(module: str, name: str) -> str | None:
    """Why ``module``.``name``, a name inside Keras (``keras.utils`` + ``get_file``), loads
    files, downloads or turns safe mode off (``rules/lists/keras_modules.toml``
    ``[keras_internal]``), or None. Non-Keras modules are None (judged by their package)."""
    from mlsec.rules import load_list

    listed = load_list("keras_modules").get("keras_internal", {})
    dotted = f"{module}.{name}" if module else name
    if module and not any(dotted.startswith(p) for p in _KERAS_PREFIXES):
        return None
    tail = dotted
    for prefix in _KERAS_PREFIXES:
        if dotted.startswith(prefix):
            tail = dotted.removeprefix(prefix)
            break
    names: Mapping[str, str] = listed.get("names", {})
    last = tail.rsplit(".", 1)[-1]
    if last in names:
        return names[last]
    modules: Mapping[str, str] = listed.get("modules", {})
    for listed_module, why in modules.items():
        if tail.startswith(listed_module + "."):
            return why
    return None


def _keras_internal(node: Mapping[str, Any], module: object) -> ModuleReference | None:
    """A dangerous Keras-internal name the node resolves to (module + class_name,
    registered_name, or a function reference's name), as a reference."""
    if module is not None and not (isinstance(module, str) and _is_keras_module(module)):
        return None
    class_name = node.get("class_name")
    registered = node.get("registered_name")
    config = node.get("config")
    candidates = [class_name, registered]
    if isinstance(registered, str) and ">" in registered:
        candidates.append(registered.split(">", 1)[1])
    if class_name == "function" and isinstance(config, str):
        candidates.append(config)
    base = module if isinstance(module, str) else ""
    for candidate in candidates:
        if isinstance(candidate, str) and candidate and keras_internal_danger(base, candidate):
            return ModuleReference(base or "keras", candidate[:200], "")
    return None


def _is_keras_module(module: str) -> bool:
    root = module.split(".", 1)[0]
    return root in KERAS_MODULES


def _lambda(where: str, config: Mapping[str, Any]) -> LambdaLayer:
    name = str(config.get("name", ""))[:200]
    function = config.get("function")
    code: str | None = None
    if isinstance(function, Mapping) and function.get("class_name") == "__tuple__":
        items = function.get("items")  # Keras 2 SavedModel JSON encodes tuples like this
        function = items if isinstance(items, list) else None
    if isinstance(function, Mapping):  # Keras 3: {"class_name": "__lambda__", "config": {...}}
        inner = function.get("config")
        if isinstance(inner, Mapping) and isinstance(inner.get("code"), str):
            code = inner["code"]
        elif isinstance(inner, str):  # a named function
            return LambdaLayer(name, where, None, (), inner[:200], _str(function.get("module")))
    elif isinstance(function, list) and function and isinstance(function[0], str):
        code = function[0]  # Keras 2: [code, defaults, closure]
    elif isinstance(function, str):
        if config.get("function_type") == "lambda":
            code = function
        else:
            return LambdaLayer(name, where, None, (), function[:200], _str(config.get("module")))
    return LambdaLayer(name, where, code, _code_strings(code) if code else ())


def _code_strings(code_b64: str) -> tuple[str, ...]:
    """Strings in marshalled bytecode: a hint of what it does (it is never unmarshalled).

    Marshal stores names and constants as typed records: a type byte (``z``/``Z`` short ASCII
    with a 1-byte length; ``a``/``A``/``u``/``t``/``s`` with a 4-byte length; the high bit
    flags a back-reference target). Scanning for records that hold printable text recovers
    names such as ``os`` and ``system`` without interpreting the code.
    """
    try:
        raw = base64.b64decode(code_b64.encode("ascii", "replace")[: 4 * 1024 * 1024])
    except (binascii.Error, ValueError):
        return ()
    found: dict[str, None] = {}
    index = 0
    while index < len(raw) and len(found) < 64:
        kind = raw[index] & 0x7F
        text: bytes | None = None
        length = step = 0
        if kind in _SHORT_STRING_TYPES and index + 1 < len(raw):
            length = raw[index + 1]
            text = raw[index + 2 : index + 2 + length] if length else None
            step = 2 + length
        elif kind in _LONG_STRING_TYPES and index + 5 <= len(raw):
            length = int.from_bytes(raw[index + 1 : index + 5], "little")
            text = raw[index + 5 : index + 5 + length] if 0 < length <= 4096 else None
            step = 5 + length
        if (
            text is not None
            and len(text) == length
            and text.strip()
            and _PRINTABLE_RECORD.fullmatch(text)
        ):
            found.setdefault(text.decode("ascii"), None)
            index += step
            continue
        index += 1
    if not found:  # not marshal as we know it: fall back to printable runs
        for match in _PRINTABLE.finditer(raw):
            found.setdefault(match.group().decode("ascii"), None)
            if len(found) >= 64:
                break
    return tuple(found)
