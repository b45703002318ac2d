"""The non-pickle model formats, statically: safetensors, GGUF, ONNX, Keras, SavedModel.

Each file is parsed with the bounded parsers in :mod:`mlsec.formats` (nothing is loaded,
rendered, unmarshalled or imported) and checked for what makes the format dangerous:

- safetensors: an invalid header (MLS140), bytes no tensor covers (MLS141);
- GGUF: a malformed header (MLS142), chat templates that reach Python internals through
  Jinja (MLS143, MLS145) or do not parse (MLS144);
- ONNX: malformed protobuf (MLS146), external data escaping the model folder (MLS147),
  custom operator domains (MLS148);
- Keras (.keras and HDF5): unreadable config (MLS149), Lambda layers (MLS150, MLS151), modules
  outside Keras (MLS152, MLS153);
- TensorFlow SavedModel: malformed protobuf (MLS154), operations that call Python, write or
  read files (MLS155-MLS157).

Every model file also yields a :class:`~mlsec.facts.ModelFileFact` for the AIBOM.

Which check a file gets is the registry's answer (:func:`mlsec.models.registry.leaf_format`:
each row names its ``check``, a method ``_<check>`` of :class:`FormatChecks`). The same checks
run on members of archives: the container walk hands each member in one of these formats to
:func:`check_member` (see :func:`wants_member`), and the findings name the archive as
``path`` and the nested member as ``member``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple

from mlsec.analyzers import AnalysisContext, AnalyzerResult, FileAnalyzer, FileOutcome
from mlsec.facts import ModelFacts, ModelFileFact
from mlsec.findings import Finding, Severity, join_member
from mlsec.formats import FormatError
from mlsec.models.registry import FileKind, leaf_format, member_format
from mlsec.models.sniff import is_keras_zip
from mlsec.rules import load_list
from mlsec.walk import Target

# safetensors ``__metadata__["format"]`` values written by the frameworks' savers.
_SAFETENSORS_FRAMEWORKS = {
    "pt": "pytorch",
    "tf": "tensorflow",
    "flax": "flax",
    "np": "numpy",
    "mlx": "mlx",
    "paddle": "paddle",
}
# ONNX has no magic; a ModelProto almost always starts with ir_version (field 1, varint).
_ONNX_HEAD = re.compile(rb"^\x08[\x01-\x20]")
# Lambda bytecode naming any of these is reported as critical (MLS151).
_DANGEROUS_CODE_NAMES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "system",
        "popen",
        "subprocess",
        "Popen",
        "check_output",
        "run",
        "spawn",
        "execv",
        "execve",
        "eval",
        "exec",
        "compile",
        "__import__",
        "import_module",
        "open",
        "socket",
        "builtins",
        "__builtins__",
        "getattr",
        "loads",
        "urlopen",
        "requests",
    }
)


class Subject(NamedTuple):
    """One thing to check: a file on disk and how its findings name it.

    ``path``: the bytes on disk (the scanned file, or a temporary copy of an archive member);
    ``relpath``: the finding's path (for a member, the archive that holds it); ``member``: the
    member path inside that archive (None for a top-level file), prefixed to the members the
    checks name themselves; ``name``: the name extensions are read from.
    """

    path: Path
    relpath: str
    member: str | None
    name: str
    size: int
    kind: FileKind

    @classmethod
    def of(cls, target: Target) -> Subject:
        return cls(target.path, target.relpath, None, target.relpath, target.size, target.kind)

    def within(self, inner: str | None) -> str | None:
        """The finding member for ``inner`` (a member the check itself names) or the file."""
        return join_member(self.member, inner)


# PyTorch zip checkpoints keep raw tensor bytes in ``<folder>/data/<n>``: small int64 values
# can look like a safetensors header length followed by "{", so those are never taken for one.
_TORCH_STORAGE = re.compile(r"(?:^|/)data/\d+$")


def wants_member(kind: FileKind, name: str) -> bool:
    """Whether an archive member (sniffed ``kind``, ``name``) is one of the formats checked here.

    Zip members are left to the container walk (a nested ``.keras`` is recognised there by its
    member names); the name counts only where content cannot tell (protobufs, broken headers).
    """
    if _TORCH_STORAGE.search(name):
        return False
    return member_format(kind, name) is not None


def check_member(
    ctx: AnalysisContext, path: Path, relpath: str, member: str | None, name: str, kind: FileKind
) -> list[Finding]:
    """The findings of the format checks for an archive member copied to ``path``."""
    subject = Subject(path, relpath, member, name, path.stat().st_size, kind)
    return list(FormatChecks(ctx, facts=None).dispatch(subject))


HEADER_WORK = 64 * 1024  # what reading a header costs, counted as bytes (see work_size)


class ModelFormatsAnalyzer(FileAnalyzer):
    name = "model-formats"
    description = "Checking safetensors, GGUF, ONNX, Keras and SavedModel files"
    per_file_outcomes = True  # facts through take_facts: workers and the cache

    def __init__(self) -> None:
        self._facts: list[ModelFileFact] = []

    # -- which files ------------------------------------------------------------------
    def accepts(self, target: Target) -> bool:
        return leaf_format(target.kind, target.relpath) is not None

    def work_size(self, target: Target) -> int:
        row = leaf_format(target.kind, target.relpath)
        # A 5 GB safetensors file is a header to read: a small file's work, not a big one's
        # (8 of them took 34 ms in two workers, 4 ms here: `python benchmarks/bench_scale.py
        # --cases weights-hash`).
        return min(target.size, HEADER_WORK) if row is not None and row.header_only else target.size

    def begin(self, ctx: AnalysisContext) -> None:
        self._facts = []

    def take_facts(self) -> list[ModelFileFact]:
        facts, self._facts = self._facts, []
        return facts

    def summarize(self, facts: list[Any], result: AnalyzerResult) -> ModelFacts:
        worst: dict[str, Severity] = {}
        for finding in result.findings:
            current = worst.get(finding.path)
            if current is None or finding.severity.rank > current.rank:
                worst[finding.path] = finding.severity
        return ModelFacts(
            files=tuple(
                fact
                if (severity := worst.get(fact.path)) is None
                else _with_severity(fact, severity)
                for fact in facts
            )
        )

    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        return list(FormatChecks(ctx, self._facts).dispatch(Subject.of(target)))

    def analyze_one(self, target: Target, ctx: AnalysisContext) -> FileOutcome:
        outcome = super().analyze_one(target, ctx)
        if any(
            isinstance(f, ModelFileFact) and f.metadata.get("external_data") for f in outcome.facts
        ):
            # MLS147 follows the external-data paths through the model's folder, whose links
            # can change while the .onnx file does not: not for the result cache.
            return outcome._replace(cacheable=False)
        return outcome


class FormatChecks:
    """The per-format checks, for top-level files and archive members alike.

    ``facts``: where model facts go (None for archive members: the AIBOM lists files).
    """

    def __init__(self, ctx: AnalysisContext, facts: list[ModelFileFact] | None) -> None:
        self.ctx = ctx
        self._facts = facts

    def dispatch(self, target: Subject) -> Iterator[Finding]:
        row = leaf_format(target.kind, target.name)
        if row is not None and row.check is not None:
            check: Callable[[Subject, AnalysisContext], Iterator[Finding]]
            check = getattr(self, "_" + row.check)
            yield from check(target, self.ctx)

    def _not_keras(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        yield _finding(
            ctx,
            target,
            "MLS149",
            "File is named .keras but is neither a zip archive nor HDF5",
            key="not-keras",
        )

    # -- safetensors ------------------------------------------------------------------
    def _safetensors(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        from mlsec.formats.safetensors import read_header

        try:
            header = read_header(target.path)
        except FormatError as exc:
            yield _finding(
                ctx,
                target,
                "MLS140",
                f"Invalid safetensors header: {exc}",
                key="header",
            )
            self._fact(target, "safetensors", None, None, {})
            return
        if header.gaps:
            hidden = sum(end - begin for begin, end in header.gaps)
            first = header.gaps[0][0] + header.data_start
            yield _finding(
                ctx,
                target,
                "MLS141",
                f"{hidden} bytes of the data area belong to no tensor"
                f" ({len(header.gaps)} range(s), the first at file offset {first})",
                offset=first,
                key="gaps",
                details={"gaps": [list(g) for g in header.gaps[:16]], "bytes": hidden},
            )
        dtypes = sorted({t.dtype for t in header.tensors.values()})
        metadata: dict[str, Any] = {
            "tensor_count": len(header.tensors),
            "dtypes": dtypes,
        }
        if header.metadata:
            metadata["metadata"] = _small_strings(header.metadata)
        framework = _SAFETENSORS_FRAMEWORKS.get(header.metadata.get("format", ""))
        self._fact(target, "safetensors", framework, header.parameter_count, metadata)

    # -- GGUF -------------------------------------------------------------------------------
    def _gguf(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        from mlsec.analyzers.chat_template import template_findings
        from mlsec.formats.gguf import read_gguf

        try:
            info = read_gguf(target.path)
        except FormatError as exc:
            yield _finding(ctx, target, "MLS142", f"Invalid GGUF header: {exc}", key="header")
            self._fact(target, "gguf", "gguf", None, {})
            return
        for key, template in info.chat_templates.items():
            cut = len(template) if key in info.truncated_keys else None
            yield from template_findings(
                ctx, target.relpath, target.within(key), key, template, truncated_at=cut
            )
        metadata = info.metadata_json()
        metadata["gguf_version"] = info.version
        metadata["tensor_count"] = info.tensor_count
        if info.chat_templates:
            metadata["chat_templates"] = sorted(info.chat_templates)
        self._fact(target, "gguf", "gguf", info.parameter_count, metadata)

    def _template_file(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        """Chat templates shipped beside the weights (Hugging Face tokenizer files)."""
        from mlsec.analyzers.chat_template import template_file_findings

        yield from template_file_findings(
            ctx, target.path, target.relpath, target.member, target.name
        )

    # -- ONNX -------------------------------------------------------------------------------
    def _onnx(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        from mlsec.formats.onnx import read_onnx

        sniffed = target.kind is not FileKind.ONNX
        if sniffed:  # a binary of unknown kind: only if it starts like a ModelProto
            with open(target.path, "rb") as handle:
                if not _ONNX_HEAD.match(handle.read(2)):
                    return
        try:
            info = read_onnx(target.path)
        except FormatError as exc:
            if not sniffed:
                yield _finding(
                    ctx, target, "MLS146", f"ONNX model cannot be parsed: {exc}", key="parse"
                )
                self._fact(target, "onnx", "onnx", None, {})
            return
        known = load_list("onnx_domains").get("known", {})
        for domain in sorted(info.custom_domains - set(known)):
            ops = sorted(op for d, op in info.operators if d == domain)
            yield _finding(
                ctx,
                target,
                "MLS148",
                f"Operators from custom domain {domain!r} ({', '.join(ops[:8])}) need a custom"
                " operator library to run",
                key=f"domain:{domain}",
                details={"domain": domain, "operators": ops[:64]},
            )
        model_dir = target.path.parent
        seen: set[str] = set()
        for external in info.external_data:
            if external.location in seen:
                continue
            seen.add(external.location)
            reason = _escape_reason(model_dir, external.location)
            if reason:
                yield _finding(
                    ctx,
                    target,
                    "MLS147",
                    f"External data of tensor {external.tensor[:80]!r} is read from"
                    f" {external.location[:200]!r}, {reason}",
                    key=f"external:{external.location}",
                    details={"tensor": external.tensor, "location": external.location},
                )
        metadata = info.metadata_json()
        if info.custom_domains:
            metadata["custom_domains"] = sorted(info.custom_domains)
        if info.external_data:
            metadata["external_data"] = sorted(seen)[:32]
        self._fact(target, "onnx", "onnx", info.parameter_count, metadata)

    # -- Keras ------------------------------------------------------------------------------
    def _keras_zip(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        if not is_keras_zip(target.path):
            if target.name.lower().endswith(".keras"):
                yield _finding(
                    ctx,
                    target,
                    "MLS149",
                    "The .keras archive has no config.json/metadata.json",
                    key="not-keras",
                )
            return
        from mlsec import native

        try:  # weights are counted with libhdf5: in the bounded worker, like an HDF5 file
            info = native.read_keras_zip(
                target.path, timeout=ctx.options.limits.file_timeout_seconds
            )
        except native.NativeFailure as exc:
            yield _finding(
                ctx, target, exc.rule_id, f"Keras archive not checked: {exc}", key=f"zip-{exc.key}"
            )
            self._fact(target, "keras", "keras", None, {})
            return
        except FormatError as exc:
            yield _finding(ctx, target, "MLS149", f"Keras archive: {exc}", key="config")
            self._fact(target, "keras", "keras", None, {})
            return
        yield from self._keras_findings(target, ctx, info, member="config.json")

    def _keras_h5(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        from mlsec import native

        try:  # libhdf5 runs in the bounded worker: a hang or blow-up costs this file only
            info = native.read_keras_h5(
                target.path, timeout=ctx.options.limits.file_timeout_seconds
            )
        except native.NativeFailure as exc:
            yield _finding(
                ctx, target, exc.rule_id, f"Keras HDF5 file not checked: {exc}", key=f"h5-{exc.key}"
            )
            return
        except FormatError as exc:
            yield _finding(ctx, target, "MLS149", f"Keras HDF5 file: {exc}", key="config")
            return
        if info.config is None and info.keras_version is None:
            return  # an HDF5 file, but not a Keras model (or weights only)
        yield from self._keras_findings(target, ctx, info, member=None)

    def _keras_saved_metadata(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        from mlsec.formats.keras import read_keras_saved_metadata

        try:
            info = read_keras_saved_metadata(target.path)
        except FormatError as exc:
            yield _finding(ctx, target, "MLS149", f"Keras SavedModel metadata: {exc}", key="config")
            return
        yield from self._keras_findings(target, ctx, info, member=None)

    def _keras_findings(
        self, target: Subject, ctx: AnalysisContext, info: Any, member: str | None
    ) -> Iterator[Finding]:
        for layer in info.lambdas:
            dangerous = sorted(set(layer.strings) & _DANGEROUS_CODE_NAMES)
            if layer.code_b64 is None:
                ref = f"{layer.module or '?'}.{layer.function}"
                yield from self._reference(
                    target, ctx, layer.module or "", ref, layer.where, member
                )
                continue
            hint = ", ".join(layer.strings[:12])
            if dangerous:
                rule, what = "MLS151", f"naming {', '.join(dangerous)}"
            else:
                rule, what = "MLS150", "that runs on load"
            yield _finding(
                ctx,
                target,
                rule,
                f"Lambda layer {layer.name!r} carries Python bytecode {what}"
                f" (strings in the code: {hint or 'none'})",
                inner=member,
                key=f"lambda:{layer.where}",
                details={"layer": layer.name, "where": layer.where, "strings": list(layer.strings)},
            )
        for ref in info.references:
            yield from self._reference(
                target, ctx, ref.module, f"{ref.module}.{ref.name}", ref.where, member
            )
        self._fact(
            target,
            info.format,
            "keras",
            getattr(info, "parameter_count", None),
            {**info.metadata_json(), "lambda_layers": len(info.lambdas)},
        )

    def _reference(
        self,
        target: Subject,
        ctx: AnalysisContext,
        module: str,
        shown: str,
        where: str,
        member: str | None,
    ) -> Iterator[Finding]:
        from mlsec.formats.keras import keras_internal_danger

        dangerous = load_list("keras_modules").get("dangerous", {})
        root = module.split(".", 1)[0]
        why = dangerous.get(root) or keras_internal_danger(module, shown.rsplit(".", 1)[-1])
        if why:
            yield _finding(
                ctx,
                target,
                "MLS153",
                f"Keras config references {shown} ({why}) at {where}",
                inner=member,
                key=f"module:{shown}",
                details={"module": module, "where": where},
            )
        else:
            yield _finding(
                ctx,
                target,
                "MLS152",
                f"Keras config references {shown}, outside Keras: loading imports or needs"
                f" that code (at {where})",
                inner=member,
                key=f"module:{shown}",
                details={"module": module, "where": where},
            )

    # -- SavedModel -------------------------------------------------------------------------
    def _graph_def(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        """A ``.pb`` that is not ``saved_model.pb``: a frozen GraphDef, if it parses as one."""
        from mlsec.formats.savedmodel import read_graph_def

        try:
            info = read_graph_def(target.path)
        except FormatError:
            # or an ONNX model named .pb
            yield from self._onnx(target._replace(kind=FileKind.BINARY), ctx)
            return
        yield from self._op_findings(target, ctx, info)
        self._fact(target, "tf-graphdef", "tensorflow", None, {"op_types": len(info.ops)})

    def _saved_model(self, target: Subject, ctx: AnalysisContext) -> Iterator[Finding]:
        from mlsec.formats.savedmodel import read_saved_model, read_saved_model_text

        text = target.name.lower().endswith(".pbtxt")
        try:
            info = read_saved_model_text(target.path) if text else read_saved_model(target.path)
        except FormatError as exc:
            yield _finding(
                ctx, target, "MLS154", f"SavedModel cannot be parsed: {exc}", key="parse"
            )
            self._fact(target, "tf-savedmodel", "tensorflow", None, {})
            return
        yield from self._op_findings(target, ctx, info)
        self._fact(target, "tf-savedmodel", "tensorflow", None, info.metadata_json())

    def _op_findings(self, target: Subject, ctx: AnalysisContext, info: Any) -> Iterator[Finding]:
        ops = load_list("tensorflow_ops")
        for table, rule in (("python", "MLS155"), ("write", "MLS156"), ("read", "MLS157")):
            listed: Mapping[str, str] = ops.get(table, {})
            for op in sorted(set(info.ops) & set(listed)):
                node = info.ops[op]
                where = f" (node {node[:120]!r})" if node else ""
                yield _finding(
                    ctx,
                    target,
                    rule,
                    f"Graph uses {op}{where}: {listed[op]}",
                    key=f"op:{op}",
                    details={"op": op, "node": node, "count": info.op_counts.get(op, 0)},
                )

    # -- facts ------------------------------------------------------------------------------
    def _fact(
        self,
        target: Subject,
        fmt: str,
        framework: str | None,
        parameter_count: int | None,
        metadata: Mapping[str, Any],
    ) -> None:
        if self._facts is None:
            return
        self._facts.append(
            ModelFileFact(
                path=target.relpath,
                format=fmt,
                size=target.size,
                framework=framework,
                parameter_count=parameter_count,
                metadata=dict(metadata),
            )
        )


def _finding(
    ctx: AnalysisContext,
    target: Subject,
    rule_id: str,
    message: str,
    inner: str | None = None,
    **kwargs: Any,
) -> Finding:
    """A finding on ``target``; ``inner``: what in it (a Keras archive member, a GGUF key)."""
    return ctx.finding(rule_id, target.relpath, message, member=target.within(inner), **kwargs)


def _with_severity(fact: ModelFileFact, severity: Severity) -> ModelFileFact:

    return fact._replace(max_severity=severity)


def _escape_reason(model_dir: Path, location: str) -> str | None:
    """Why an ONNX external-data location leaves the model folder, or None if it stays."""
    if not location:
        return None
    if "\x00" in location:
        return "a path with a NUL byte (readers may cut it short)"
    if (
        PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).is_absolute()
        or PureWindowsPath(location).drive
        or location.startswith(("\\", "/"))
    ):
        return "an absolute path"
    parts = re.split(r"[\\/]", location)
    if ".." in parts:
        return "a path that climbs out of the model's folder with '..'"
    base = os.path.realpath(model_dir)
    resolved = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, resolved]) != base:
        return f"which resolves (through a symlink) outside the model's folder to {resolved!r}"
    return None


def _small_strings(values: Mapping[str, str], limit: int = 32) -> dict[str, str]:
    return {str(k)[:128]: str(v)[:512] for k, v in list(values.items())[:limit]}


__all__ = ["ModelFormatsAnalyzer"]
