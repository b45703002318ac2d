"""Pickles and every container that carries them, found by content and scanned statically.

One :class:`_FileScan` per file walks the container layers (zip, tar, gzip/bz2/xz/lzma/lz4/
zlib, joblib, NumPy ``.npy``/``.npz``, PyTorch zip/legacy/TorchScript) down to each pickle
stream, runs the static opcode machine of :mod:`mlsec.formats.pickle` on it, and judges every
import against :mod:`mlsec.analyzers.pickle_policy`. Nothing is loaded or imported; limits
(depth, members, expansion, opcodes, time) become MLS904 findings. Members in the other model
formats (GGUF, safetensors, ONNX, Keras, SavedModel) get the format analyzer's checks.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, cast

from mlsec.analyzers import AnalysisContext, AnalyzerResult, FileAnalyzer
from mlsec.analyzers.pickle_judge import MemberImports, judge
from mlsec.analyzers.pickle_policy import (
    ModelsConfig,
    PicklePolicy,
    Tier,
    parse_models_config,
)
from mlsec.errors import MlsecError
from mlsec.facts import ModelFacts, ModelFileFact
from mlsec.findings import Finding, Severity, join_member
from mlsec.formats import FormatError
from mlsec.formats.pickle import (
    Call,
    Global,
    Machine,
    Opaque,
    PickleError,
    PickleHooks,
    PickleResult,
    hidden_pickles,
    render,
    run_pickle,
)
from mlsec.formats.streams import (
    Budget,
    ByteReader,
    LimitExceeded,
    Truncated,
    Window,
    open_decompressed,
)
from mlsec.formats.zipread import (
    METHODS,
    UnsupportedCompression,
    ZipArchive,
    crc_matches,
    open_member,
    read_zip,
)
from mlsec.models.checks import check_member, wants_member
from mlsec.models.registry import PICKLE_EXTENSIONS, PICKLE_NAMES, WALKED, FileKind
from mlsec.models.sniff import HEAD_SIZE, is_keras_archive, sniff
from mlsec.walk import Target

if TYPE_CHECKING:
    import tarfile

ACCEPTED = WALKED  # the kinds the container walk opens (rows of mlsec.models.registry)
_COMPRESSED = {
    FileKind.GZIP: "gzip",
    FileKind.BZIP2: "bzip2",
    FileKind.XZ: "xz",
    FileKind.LZMA: "lzma",
    FileKind.LZ4: "lz4",
    FileKind.ZSTD: "zstd",
    FileKind.ZLIB: "zlib",
}
_COMPRESSION_SUFFIXES = (
    ".gz",
    ".gzip",
    ".bz2",
    ".xz",
    ".lzma",
    ".lz4",
    ".zst",
    ".zstd",
    ".z",
    ".zlib",
    ".tgz",
)
TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_TAR = {"sys_info", "pickle", "storages", "tensors"}
_ELEMENT_SIZE = {
    "Double": 8,
    "Float": 4,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexDouble": 16,
    "ComplexFloat": 8,
    "QInt8": 1,
    "QUInt8": 1,
    "QInt32": 4,
}
_MAX_CRC_CHECK = 64 * 1024**2
# joblib, and the copy scikit-learn vendored before 0.23 (files saved with it still load).
# joblib's array wrapper, also under its old name vendored in scikit-learn (< 0.23): exact
# names only (a look-alike module gets no array bytes skipped)
_JOBLIB_MODULES = frozenset({"joblib.numpy_pickle", "sklearn.externals.joblib.numpy_pickle"})
_SHADOW_WINDOW = 64 * 1024
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*$")
_MAX_CODE_READ = 1024**2
_SPOOL_MEMORY = 16 * 1024**2
_FORMAT_RANK = {
    "pickle": 1,
    "zip": 1,
    "tar": 1,
    "numpy": 2,
    "npz": 2,
    "joblib": 3,
    "pytorch-legacy": 4,
    "pytorch-zip": 4,
    "torchscript": 5,
}


class PickleModelsAnalyzer(FileAnalyzer):
    """Static analysis of pickles and pickle-carrying containers (MLS100-MLS107, MLS904)."""

    name = "models"
    description = "Checking model files"
    per_file_outcomes = True  # facts through take_facts: workers and the cache

    def __init__(self) -> None:
        self._config: ModelsConfig | None = None
        self._policy: PicklePolicy | None = None
        self._facts: list[ModelFileFact] = []

    def accepts(self, target: Target) -> bool:
        return target.kind in ACCEPTED or _ends_like_zip(target)

    def begin(self, ctx: AnalysisContext) -> None:
        # Only when a file is to be analysed: parsing the allowlist costs 7 ms.
        self._policy = PicklePolicy.load(self._config)
        self._facts = []

    def take_facts(self) -> list[ModelFileFact]:
        facts, self._facts = self._facts, []
        return facts

    def summarize(self, facts: list[Any], result: AnalyzerResult) -> ModelFacts:
        return ModelFacts(files=tuple(facts))

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        # A bad [models] section is an error on every scan, model files or not.
        origin = str(ctx.options.config_file or "[models]")
        self._config = parse_models_config(ctx.options.section("models"), origin)
        result = super().analyze(targets, ctx)
        result.findings.extend(_not_pickles(targets, ctx))
        return result

    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        if self._policy is None:
            self._policy = PicklePolicy.load()
        scan = _FileScan(target, ctx, self._policy)
        findings = scan.run()
        fact = scan.fact(findings)
        if fact is not None:
            self._facts.append(fact)
        return findings


class _FileScan:
    def __init__(self, target: Target, ctx: AnalysisContext, policy: PicklePolicy) -> None:
        self.target = target
        self.ctx = ctx
        self.policy = policy
        limits = ctx.options.limits
        self.limits = limits
        self.budget = Budget(
            timeout=limits.file_timeout_seconds,
            max_ops=limits.max_pickle_ops,
            max_uncompressed=limits.max_uncompressed_size,
            max_ratio=limits.max_expansion_ratio,
        )
        self.findings: list[Finding] = []
        self.format: str | None = None
        self.frameworks: set[str] = set()
        self.pickles = 0
        self.metadata: dict[str, Any] = {}
        self.keras_zip = False
        self.nested_count = 0

    # -- reporting ------------------------------------------------------------------------
    def add(self, rule_id: str, message: str, member: str | None, **kw: Any) -> None:
        self.findings.append(
            self.ctx.finding(rule_id, self.target.relpath, message, member=member, **kw)
        )

    def limit(self, exc: LimitExceeded, member: str | None) -> None:
        self.add("MLS904", f"Not fully scanned: {exc.message}", member, key=exc.limit)

    def corrupt(self, message: str, member: str | None, offset: int | None = None) -> None:
        self.add("MLS100", message, member, offset=offset, key="corrupt")

    def set_format(self, fmt: str) -> None:
        if self.format is None or _FORMAT_RANK.get(fmt, 0) > _FORMAT_RANK.get(self.format, 0):
            self.format = fmt

    # -- entry ----------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        try:
            with open(self.target.file, "rb") as handle:
                if self.target.kind in ACCEPTED:
                    name = os.path.basename(self.target.file)
                    self.scan_blob(handle, self.target.size, name, None, 0, self.target.kind)
                else:  # a zip with something else in front (polyglot, self-extractor)
                    self.scan_zip(handle, self.target.size, None, 0)
        except LimitExceeded as exc:
            self.limit(exc, None)
        except Truncated as exc:
            self.corrupt(f"File is truncated or corrupt: {exc}", None)
        if self.pickles:
            self.add(
                "MLS102",
                "Pickle-based model format: loading it can run code; prefer safetensors",
                None,
                key="pickle-format",
                details={"pickles": self.pickles},
            )
        return self.findings

    def fact(self, findings: Sequence[Finding]) -> ModelFileFact | None:
        if self.keras_zip or self.format is None:
            return None
        if self.format in ("zip", "tar") and not self.pickles:
            return None
        worst = max((f.severity for f in findings), key=lambda s: s.rank, default=None)
        framework: str | None = None
        for candidate in ("pytorch", "scikit-learn", "xgboost", "lightgbm", "catboost"):
            if candidate in self.frameworks:
                framework = candidate
                break
        if framework is None and self.frameworks:
            framework = sorted(self.frameworks)[0]
        if framework is None and self.format in ("numpy", "npz"):
            framework = "numpy"
        meta = dict(self.metadata)
        meta["pickles"] = self.pickles
        return ModelFileFact(
            path=self.target.relpath,
            format=self.format,
            size=self.target.size,
            framework=framework,
            metadata=meta,
            max_severity=worst,
        )

    # -- dispatch by content --------------------------------------------------------------
    def scan_blob(
        self,
        handle: IO[bytes],
        size: int | None,
        name: str,
        member: str | None,
        depth: int,
        kind: FileKind | None = None,
    ) -> None:
        """Scan one byte stream positioned at its start (``size`` if known), of ``kind`` if
        known (the walk sniffed the file itself: its verdict, with the whole file to read
        from, is not asked again)."""
        self.budget.check_time()
        if depth > self.limits.max_archive_depth:
            self.add(
                "MLS904",
                f"Not scanned: nested deeper than {self.limits.max_archive_depth} levels"
                " (limits.max-archive-depth)",
                member,
                key="max-archive-depth",
            )
            return
        start = handle.tell() if _seekable(handle) else None
        head = handle.read(HEAD_SIZE)
        if start is not None:
            handle.seek(start)
            stream: IO[bytes] = handle
        else:
            stream = io.BufferedReader(_Prefixed(head, handle))
        # The size the loader reads (a tar member's, a stored zip member's), if known: the
        # probe rejects a first argument longer than that.
        if kind is None:
            kind = sniff(head, name, None if size is None else size - (start or 0))
        if depth > 0 and wants_member(kind, name):
            self.scan_format(stream, name, member, kind)
        elif kind is FileKind.PICKLE:
            remaining = None if size is None else size - (start or 0)
            self.scan_pickles(
                ByteReader(stream, remaining, start or 0),
                member,
                multi=True,
                content_only=not _pickle_name(name),
            )
            if member is None and self.pickles:  # the file itself, or its decompressed content
                self.set_format("pickle")
        elif kind is FileKind.ZIP:
            self.scan_zip(stream, size, member, depth)
        elif kind is FileKind.TAR:
            self.scan_tar(stream, member, depth)
        elif kind in _COMPRESSED:
            compression = _COMPRESSED[kind]
            self.metadata.setdefault("compression", compression)
            inner = open_decompressed(compression, stream, self.budget, size)
            self.scan_blob(inner, None, _strip_compression(name), member, depth + 1)
        elif kind is FileKind.JOBLIB_ZFILE:
            self.metadata.setdefault("compression", "zlib (joblib zfile)")
            if not _skip_zfile_header(stream):
                self.corrupt("joblib zfile header has no valid length", member)
                return
            inner = open_decompressed("zlib", stream, self.budget, size)
            self.scan_blob(inner, None, _strip_compression(name), member, depth + 1)
        elif kind is FileKind.NUMPY:
            self.scan_npy(stream, size, member, depth)
        elif kind is FileKind.UNOPENED_ARCHIVE:
            fmt = "7z" if head.startswith(b"7z") else "RAR"
            self.add(
                "MLS131",
                f"{fmt} archive not checked: mlsec does not open {fmt} archives, and what"
                " they hold (pickles, models) may be extracted and loaded",
                member,
                key="unopened-archive",
                details={"archive": fmt},
            )

    # -- pickle streams -------------------------------------------------------------------
    def scan_pickles(
        self,
        reader: ByteReader,
        member: str | None,
        *,
        multi: bool,
        count: int | None = None,
        content_only: bool = False,
    ) -> list[PickleResult]:
        """Scan the pickles of one stream; ``multi``: keep going after STOP.

        ``content_only``: the stream was taken for a pickle only because it starts with a
        PROTO opcode (no pickle-like name). Raw tensor bytes can start that way too, so if it
        breaks before importing anything it is not a pickle, and no finding is made.
        """
        acc = MemberImports(member)
        results: list[PickleResult] = []
        legacy = False
        try:
            while True:
                first = reader.peek(2)
                res = run_pickle(reader, self.budget, self._hooks(acc))
                results.append(res)
                if content_only and len(results) == 1 and res.error is not None and not res.imports:
                    return results
                self._collect(res, acc)
                if res.limit is not None:
                    raise res.limit  # reported below, after what was seen is judged
                if res.error is not None:
                    looks_pickle = (
                        first[:1] == b"\x80" and first[1:2] in b"\x00\x01\x02\x03\x04\x05"
                    )
                    if not results[:-1] or res.imports or looks_pickle:
                        self.corrupt(
                            f"Pickle stream is corrupt at byte {res.error_offset}: {res.error}"
                            + _seen(res),
                            member,
                            res.error_offset,
                        )
                    else:
                        self._trailing(res.start, member)
                        for hidden in hidden_pickles(reader, self.budget, self._hooks(acc)):
                            results.append(hidden)
                            self._collect(hidden, acc)
                    break
                if len(results) == 2 and not legacy and count is None:
                    self.add(
                        "MLS105",
                        f"Another pickle follows the first one's STOP (at byte {res.start});"
                        " loaders that read on run it too",
                        member,
                        offset=res.start,
                        key="after-stop",
                    )
                if len(results) == 1 and res.result == TORCH_MAGIC:
                    legacy = True
                    self.set_format("pytorch-legacy")
                    self.frameworks.add("pytorch")
                if count is not None and len(results) >= count:
                    break
                if legacy and len(results) >= 5:
                    break  # raw storage bytes follow; torch.load reads them as data
                if reader.at_eof():
                    break
                if not multi:
                    self._trailing(reader.tell(), member)
                    break
        except LimitExceeded as exc:
            self.limit(exc, member)
        except Truncated as exc:
            self.corrupt(f"Stream is truncated: {exc}", member)
        self._judge(acc)
        self._scan_nested(results, reader, member)
        return results

    def _trailing(self, offset: int, member: str | None) -> None:
        self.add(
            "MLS105",
            f"Data follows the end of the pickle stream at byte {offset}",
            member,
            offset=offset,
            key="after-stop",
        )

    def _collect(self, res: PickleResult, acc: MemberImports) -> None:
        self.pickles += 1
        if res.tensors:
            self.metadata["tensors"] = self.metadata.get("tensors", 0) + res.tensors
            self.metadata["tensor_elements"] = (
                self.metadata.get("tensor_elements", 0) + res.tensor_elements
            )
        acc.add(res)
        if res.frame_split is not None:
            unchecked = res.frame_split == "unchecked"
            self.add(
                "MLS111",
                f"Pickle frames split an opcode (at byte {res.start} on): file-object loaders"
                " such as torch.load read another program than pickle.loads"
                + (
                    "; that reading could not be checked (stream not seekable)"
                    if unchecked
                    else "; both readings were checked"
                ),
                acc.member,
                offset=res.start,
                key="frame-split",
                severity=Severity.HIGH if unchecked else None,
            )

    def _judge(self, acc: MemberImports) -> None:
        judgement = judge(acc, self.policy)
        self.frameworks.update(judgement.frameworks)
        if judgement.joblib:
            self.set_format("joblib")
        for j in judgement.findings:
            self.add(
                j.rule_id, j.message, acc.member, offset=j.offset, key=j.key, details=j.details
            )

    def _scan_nested(
        self, results: list[PickleResult], reader: ByteReader, member: str | None
    ) -> None:
        for res in results:
            for payload in res.nested:
                self.nested_count += 1
                label = join_member(member, f"<{payload.loader} payload {self.nested_count}>")
                data = payload.data
                depth = member.count("!") + 1 if member else 1
                if isinstance(data, bytes):
                    self.scan_blob(io.BytesIO(data), len(data), "payload.pkl", label, depth)
                    continue
                if not reader.seekable:
                    self.add(
                        "MLS904",
                        f"Not scanned: a {data.length}-byte payload handed to"
                        f" {payload.loader} inside a compressed stream",
                        label,
                        key="nested-payload",
                    )
                    continue
                # A large payload is scanned in place, through a window on the same file;
                # the outer reader's position is restored afterwards.
                raw = reader.raw
                here = raw.tell()
                try:
                    window = cast(IO[bytes], Window(raw, reader.origin + data.start, data.length))
                    self.scan_blob(window, data.length, "payload.pkl", label, depth)
                finally:
                    raw.seek(here)

    # -- joblib inline arrays -------------------------------------------------------------
    def _hooks(self, acc: MemberImports) -> PickleHooks:
        def after_build(obj: Any, reader: ByteReader, machine: Machine) -> None:
            if not (isinstance(obj, Call) and isinstance(obj.func, Global)):
                return
            if obj.func.name != "NumpyArrayWrapper" or obj.func.module not in _JOBLIB_MODULES:
                return
            self._joblib_array(obj, reader, machine, acc)

        return PickleHooks(after_build=after_build)

    def _joblib_array(
        self, wrapper: Call, reader: ByteReader, machine: Machine, acc: MemberImports
    ) -> None:
        """Skip (or scan) the array data joblib writes right after a NumpyArrayWrapper."""
        self.set_format("joblib")
        state = wrapper.state if isinstance(wrapper.state, dict) else {}
        shape = state.get("shape")
        itemsize, has_object = _dtype_size(state.get("dtype"))
        if has_object:
            # Object arrays are a nested pickle written inline (joblib unpickles it too).
            res = run_pickle(reader, self.budget, self._hooks(acc))
            self._collect(res, acc)
            if res.limit is not None:
                raise res.limit
            if res.error is not None:
                raise PickleError(f"inline object array pickle: {res.error}")
        else:
            if not isinstance(shape, tuple) or not all(
                isinstance(n, int) and n >= 0 for n in shape
            ):
                raise PickleError("joblib array wrapper without a valid shape")
            if itemsize is None:
                raise PickleError("joblib array wrapper with an unknown dtype")
            count = 1
            for n in shape:
                count *= n
            aligned = state.get("numpy_array_alignment_bytes") is not None
            head = reader.peek(1)
            pad = head[0] if aligned and head else 0
            region = (1 + pad if aligned else 0) + count * itemsize
            self._shadow_parse(reader.peek(min(region, _SHADOW_WINDOW)), acc)
            if aligned:
                reader.skip(1 + pad)
            reader.skip(count * itemsize)
        machine.stack[-1] = Opaque("<ndarray>")

    def _shadow_parse(self, data: bytes, acc: MemberImports) -> None:
        """Read joblib's raw array bytes as opcodes, as plain ``pickle.load`` would.

        joblib skips them, but anyone loading the file with pickle.load (or
        pandas.read_pickle) executes them: report imports that are not plain data.
        """
        if not data:
            return
        budget = Budget(timeout=1.0, max_ops=10_000, max_uncompressed=0, max_ratio=1)
        try:
            res = run_pickle(ByteReader(io.BytesIO(data), len(data)), budget)
        except LimitExceeded:
            return
        for imp in res.imports:
            if not isinstance(imp, Global) or not (
                _IDENTIFIER.match(imp.module) and _IDENTIFIER.match(imp.name)
            ):
                continue
            verdict = self.policy.classify(imp.module, imp.name)
            if verdict.tier in (Tier.CRITICAL, Tier.UNKNOWN):
                call = render(imp.calls[0]) if imp.calls else imp.qualname
                self.add(
                    "MLS101" if verdict.tier is Tier.CRITICAL else "MLS104",
                    f"joblib array data doubles as pickle code that plain pickle.load runs:"
                    f" {call} ({verdict.reason})",
                    acc.member,
                    key=f"joblib-array:{imp.qualname}",
                )

    # -- zip ------------------------------------------------------------------------------
    def scan_zip(self, stream: IO[bytes], size: int | None, member: str | None, depth: int) -> None:
        if size is None or not _seekable(stream):
            with self._spooled(stream, member) as spooled:
                if spooled is not None:
                    total = spooled.seek(0, 2)
                    spooled.seek(0)
                    # Not scan_zip again: Python 3.10's SpooledTemporaryFile seeks but has
                    # no seekable(), and asking would spool forever.
                    self._scan_zip_seekable(spooled, total, member, depth)
            return
        self._scan_zip_seekable(stream, size, member, depth)

    def _scan_zip_seekable(
        self, stream: IO[bytes], size: int, member: str | None, depth: int
    ) -> None:
        base = stream.tell()
        handle: IO[bytes] = io.BufferedReader(Window(stream, base, size - base)) if base else stream
        size = size - base
        if depth == 0:
            self.set_format("zip")
        try:
            archive = read_zip(handle, size, self.limits.max_archive_members)
        except FormatError as exc:
            self.corrupt(f"Zip archive cannot be read: {exc}", member)
            return
        self._zip_shape(archive, size, member)
        for anomaly in archive.anomalies:
            self.add("MLS106", f"Zip archive anomaly: {anomaly}", member, key="zip-directory")
        keras = is_keras_archive({m.name for m in archive.members})
        if keras and member is not None:  # a nested .keras (top-level ones: format analyzer)
            whole = cast(IO[bytes], Window(handle, 0, size))
            self.scan_format(whole, member.rsplit("!", 1)[-1], member, FileKind.ZIP)
        storages = _torch_storage_folders(archive.members)
        for entry in archive.members:
            if entry.is_dir:
                continue
            if storages and _is_torch_storage(entry.name, storages):
                continue  # raw tensor bytes: torch.load maps them, nothing unpickles them
            self.budget.check_time()
            entry_member = join_member(member, entry.name)
            try:
                self._zip_entry(handle, size, entry, entry_member, depth, keras)
            except UnsupportedCompression as exc:
                self._unreadable(entry, entry_member, f"cannot be read: {exc}")
            except FormatError as exc:
                self.corrupt(f"Archive member cannot be read: {exc}", entry_member)
            except (OSError, EOFError, ValueError, Truncated) as exc:
                if entry.method in (0, 8):
                    self.corrupt(f"Archive member cannot be decompressed: {exc}", entry_member)
                else:  # a rarer method: a loader may read what mlsec's decompressor cannot
                    self._unreadable(entry, entry_member, f"cannot be decompressed: {exc}")
            except LimitExceeded as exc:
                if exc.limit == "file-timeout-seconds":
                    raise
                self.limit(exc, entry_member)
            if entry.anomalies:
                self.add(
                    "MLS106",
                    "Zip headers disagree: " + "; ".join(entry.anomalies),
                    entry_member,
                    key="zip-header-mismatch",
                    details={"anomalies": list(entry.anomalies)},
                )

    def _unreadable(self, entry: Any, entry_member: str | None, why: str) -> None:
        """A member mlsec could not decompress: high if a loader unpickles it (MLS130)."""
        if _pickle_name(entry.name):
            self.add(
                "MLS130",
                f"Archive member a loader unpickles was not checked: it {why}",
                entry_member,
                key="unsupported-compression",
                details={"method": METHODS.get(entry.method, entry.method)},
            )
        else:
            self.corrupt(f"Archive member {why}", entry_member)

    def _zip_shape(self, archive: ZipArchive, size: int, member: str | None) -> None:
        names = [m.name for m in archive.members]
        if archive.declared_count > self.limits.max_archive_members:
            self.add(
                "MLS904",
                f"Not fully scanned: the archive has {archive.declared_count} members, over"
                f" limits.max-archive-members ({self.limits.max_archive_members})",
                member,
                key="max-archive-members",
            )
        declared = sum(m.size for m in archive.members)
        if declared > max(size, 1) * self.limits.max_expansion_ratio and declared > 16 * 1024**2:
            self.add(
                "MLS904",
                f"Archive declares {declared} bytes of content in {size} bytes (more than"
                f" {self.limits.max_expansion_ratio}x, limits.max-expansion-ratio): a zip bomb?"
                " Members are read only up to the limits",
                member,
                key="zip-bomb",
            )
        if member is not None:
            return
        base = {n.rsplit("/", 1)[-1] for n in names}
        top = {n for n in names if "/" not in n}
        if "data.pkl" in base and ("version" in base or "byteorder" in base):
            torchscript = "constants.pkl" in base or any("/code/" in n for n in names)
            self.set_format("torchscript" if torchscript else "pytorch-zip")
            self.frameworks.add("pytorch")
        elif names and all(n.endswith(".npy") for n in names):
            self.set_format("npz")
        elif {"config.json", "metadata.json"} <= top:
            self.keras_zip = True  # Keras v3: the formats analyzer owns it

    def _zip_entry(
        self,
        handle: IO[bytes],
        size: int,
        entry: Any,
        entry_member: str | None,
        depth: int,
        keras: bool = False,
    ) -> None:
        stream = open_member(handle, size, entry, self.budget)
        head = stream.read(HEAD_SIZE)
        if "/code/" in f"/{entry.name}" and entry.name.endswith(".py"):
            # TorchScript source, whatever its bytes look like: the loader compiles it.
            rest = stream.read(_MAX_CODE_READ)
            self._torchscript_code(head + rest, entry_member, complete=not stream.read(1))
            return
        kind = sniff(head, entry.name, entry.compressed_size if entry.method == 0 else None)
        if wants_member(kind, entry.name):
            # Keras reads only weights from a .keras archive's model.weights.h5, never a
            # model config: no need to copy it out and open it with h5py.
            if not (keras and entry.name == "model.weights.h5"):
                member_stream = open_member(handle, size, entry, self.budget)
                self.scan_format(member_stream, entry.name, entry_member, kind)
            return
        if kind is FileKind.TEXT:
            return
        if kind not in ACCEPTED:
            return
        stream = open_member(handle, size, entry, self.budget)
        if kind is FileKind.PICKLE:
            if entry.method == 0 and entry.compressed_size <= _MAX_CRC_CHECK:
                ok = crc_matches(open_member(handle, size, entry, None), entry.crc, _MAX_CRC_CHECK)
                if ok is False:
                    entry.anomalies.append(
                        "CRC-32 does not match (loaders that skip CRC checks still read it)"
                    )
            # Stored: the loader reads compressed_size bytes, whatever "size" claims.
            known = entry.compressed_size if entry.method == 0 else None
            self.scan_pickles(
                ByteReader(stream, known),
                entry_member,
                multi=True,
                content_only=not _pickle_name(entry.name),
            )
            return
        self.scan_blob(
            stream,
            entry.compressed_size if entry.method == 0 else None,
            entry.name,
            entry_member,
            depth + 1,
        )

    def _torchscript_code(self, data: bytes, member: str | None, complete: bool) -> None:
        from mlsec.models.torchscript import judge, unallowed

        allow = self.ctx.options.section("models").get("allow", [])
        patterns = [str(p) for p in allow] if isinstance(allow, list) else []
        judged = judge(data.decode("utf-8", "replace"))
        for rule_id, found, message, key in (
            (
                "MLS158",
                judged.file_process_ops,
                "TorchScript code calls operators that read or write files, load libraries,"
                " download or run processes: ",
                "torchscript-file-process-op",
            ),
            (
                "MLS159",
                judged.foreign_ops,
                "TorchScript code calls operators from namespaces torch does not register"
                " (native code loaded from elsewhere): ",
                "torchscript-foreign-op",
            ),
            (
                "MLS107",
                judged.suspicious,
                "TorchScript code file uses Python constructs TorchScript never generates: ",
                "torchscript-code",
            ),
        ):
            hits = unallowed(found, patterns)
            if hits:
                self.add(
                    rule_id,
                    message + ", ".join(hits[:5]),
                    member,
                    key=key,
                    details={"matches": hits[:20]},
                )
        if not complete:
            self.add(
                "MLS904",
                f"Not fully scanned: TorchScript code file larger than {len(data)} bytes;"
                " only its beginning was checked",
                member,
                key="torchscript-code-size",
            )

    # -- other model formats --------------------------------------------------------------
    def scan_format(self, stream: IO[bytes], name: str, member: str | None, kind: FileKind) -> None:
        """Run the format analyzer's checks on a GGUF/safetensors/ONNX/Keras/SavedModel member.

        Those parsers read files on disk (memory maps, h5py), so the member is copied to a
        temporary file first, deleted as soon as the checks are done. The copy reads the same
        bounded stream as every other member: decompressed bytes count against
        limits.max-uncompressed-size and the expansion ratio, and a limit hit raises
        LimitExceeded to the caller, which reports it (MLS904) as for any member.
        """
        import tempfile
        from pathlib import Path

        try:
            with tempfile.TemporaryDirectory(prefix="mlsec-member-") as folder:
                copy = Path(folder) / "member"
                with open(copy, "wb") as out:
                    while chunk := stream.read(1 << 20):
                        self.budget.check_time()
                        out.write(chunk)
                findings = check_member(
                    self.ctx, copy, self.target.relpath, member, name.rsplit("/", 1)[-1], kind
                )
        except (LimitExceeded, Truncated, MlsecError):
            raise  # limits and damage: reported by the caller, like for any member
        except Exception as exc:  # no room for the copy, or a bug: keep the archive's findings
            self.add(
                "MLS901",
                f"Member was not checked as {kind.value}: {type(exc).__name__}: {exc}",
                member,
                key="format-check",
            )
            return
        self.findings.extend(findings)

    # -- tar ------------------------------------------------------------------------------
    def scan_tar(self, stream: IO[bytes], member: str | None, depth: int) -> None:
        import tarfile  # lazily: most scans never meet a tar, and it is slow to import

        if member is None:
            self.set_format("tar")
        try:
            if _seekable(stream):
                tar = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - closed below
            else:
                tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115
        except (tarfile.TarError, OSError, EOFError, Truncated) as exc:
            self.corrupt(f"Tar archive cannot be read: {exc}", member)
            return
        try:
            seen = 0
            for info in _tar_members(tar):
                seen += 1
                if seen > self.limits.max_archive_members:
                    self.add(
                        "MLS904",
                        "Not fully scanned: more than"
                        f" {self.limits.max_archive_members} members"
                        " (limits.max-archive-members)",
                        member,
                        key="max-archive-members",
                    )
                    break
                self.budget.check_time()
                if not info.isfile():
                    continue
                entry_member = join_member(member, info.name)
                extracted = tar.extractfile(info)
                if extracted is None:
                    continue
                if info.name in _TORCH_LEGACY_TAR and member is None:
                    self.set_format("pytorch-legacy")
                    self.frameworks.add("pytorch")
                try:
                    if info.name == "storages" and self.format == "pytorch-legacy":
                        self._legacy_storages(extracted, info.size, entry_member)
                    elif info.name == "tensors" and self.format == "pytorch-legacy":
                        self._legacy_tensors(extracted, info.size, entry_member)
                    else:
                        self.scan_blob(extracted, info.size, info.name, entry_member, depth + 1)
                except LimitExceeded as exc:
                    if exc.limit == "file-timeout-seconds":
                        raise
                    self.limit(exc, entry_member)
        except (tarfile.TarError, OSError, EOFError, ValueError, Truncated) as exc:
            self.corrupt(f"Tar archive is damaged: {exc}", member)
        finally:
            tar.close()

    def _legacy_count(self, reader: ByteReader, member: str | None) -> int | None:
        """The entry count a legacy tar member starts with (a pickled int), if it is one."""
        first = self.scan_pickles(reader, member, multi=False, count=1)
        count = first[0].result if first and first[0].error is None else None
        return count if isinstance(count, int) else None

    def _legacy_storages(self, stream: IO[bytes], size: int, member: str | None) -> None:
        """Old torch tar 'storages': count pickle, then (pickle, numel, raw bytes) per storage."""
        reader = ByteReader(stream, size)
        count = self._legacy_count(reader, member)
        if count is None:
            return
        try:
            for _ in range(min(count, self.limits.max_archive_members)):
                res = self.scan_pickles(reader, member, multi=False, count=1)
                info = res[0].result if res and res[0].error is None else None
                if not (isinstance(info, tuple) and len(info) == 3):
                    return
                storage_type = info[2]
                name = storage_type.name if isinstance(storage_type, Global) else ""
                element = _ELEMENT_SIZE.get(name.removesuffix("Storage"))
                if element is None:
                    self.corrupt(f"Unknown legacy storage type {name!r}", member)
                    return
                numel = int.from_bytes(reader.read(8), "little")
                reader.skip(numel * element)
            self.scan_pickles(reader, member, multi=False, count=1)  # storage views
        except Truncated as exc:
            self.corrupt(f"Legacy storages are truncated: {exc}", member)

    def _legacy_tensors(self, stream: IO[bytes], size: int, member: str | None) -> None:
        reader = ByteReader(stream, size)
        count = self._legacy_count(reader, member)
        if count is None:
            return
        try:
            for _ in range(min(count, self.limits.max_archive_members)):
                res = self.scan_pickles(reader, member, multi=False, count=1)
                if not res or res[0].error is not None:
                    return
                ndim = int.from_bytes(reader.read(4), "little", signed=True)
                if not 0 <= ndim <= 64:
                    self.corrupt(f"Legacy tensor record has {ndim} dimensions", member)
                    return
                reader.skip(4 + 16 * ndim + 8)
        except Truncated as exc:
            self.corrupt(f"Legacy tensors are truncated: {exc}", member)

    # -- numpy ----------------------------------------------------------------------------
    def scan_npy(self, stream: IO[bytes], size: int | None, member: str | None, depth: int) -> None:
        if member is None:
            self.set_format("numpy")
        reader = ByteReader(stream, size)
        try:
            magic = reader.read(8)
            major = magic[6]
            length = int.from_bytes(reader.read(2 if major == 1 else 4), "little")
            if length > 1024**2:
                raise FormatError(f"header of {length} bytes")
            header = reader.read(length).decode("latin-1")
        except (Truncated, FormatError, IndexError) as exc:
            self.corrupt(f"NumPy file header is invalid: {exc}", member)
            return
        descr = re.search(
            r"""['"]descr['"]\s*:\s*(.*?)\s*,\s*['"](?:fortran_order|shape)""", header, re.DOTALL
        )
        if descr is None:
            self.corrupt("NumPy file header has no dtype description", member)
            return
        if re.search(r"""['"][|<>=]?O\d*['"]""", descr.group(1)):
            # Object arrays are stored as a pickle after the header (numpy.save pickles them).
            self.metadata["object_dtype"] = True
            self.scan_pickles(reader, member, multi=False)

    # -- helpers --------------------------------------------------------------------------
    def _spooled(self, stream: IO[bytes], member: str | None) -> _Spool:
        return _Spool(self, stream, member)


class _Spool:
    """Copies a forward-only stream to a temporary file (memory first) for random access."""

    def __init__(self, scan: _FileScan, stream: IO[bytes], member: str | None) -> None:
        self.scan = scan
        self.stream = stream
        self.member = member
        self.file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes] | None:
        import tempfile

        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)
        self.file = spool
        try:
            while chunk := self.stream.read(1 << 20):
                spool.write(chunk)
        except LimitExceeded as exc:
            self.scan.limit(exc, self.member)
            return None
        except (OSError, EOFError, ValueError, Truncated) as exc:
            self.scan.corrupt(f"Compressed data cannot be read: {exc}", self.member)
            return None
        spool.seek(0)
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


class _Prefixed(io.RawIOBase):
    """A forward-only stream with already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _pickle_name(name: str) -> bool:
    """Whether a file name says "pickle" (then a broken stream is a corrupt pickle)."""
    lower = _strip_compression(name.rsplit("/", 1)[-1].lower())
    return lower.endswith((*PICKLE_EXTENSIONS, ".debug_pkl", ".npy", ".pyt"))


def _not_pickles(targets: Sequence[Target], ctx: AnalysisContext) -> Iterator[Finding]:
    """MLS120 for files named like pickles whose content is none (the probe said no)."""
    for target in targets:
        # The name's ending is the name's (no pickle name holds a "/"): no split needed.
        if not target.relpath.lower().endswith(PICKLE_NAMES):
            continue
        if target.kind not in (FileKind.TEXT, FileKind.BINARY) or _ends_like_zip(target):
            continue
        yield ctx.finding(
            "MLS120",
            target.relpath,
            f"Named like a pickle but the content is {target.kind.value}, not a pickle: its"
            " first opcodes do not decode, so it was not analysed as one",
            key="not-a-pickle",
        )


def _ends_like_zip(target: Target) -> bool:
    """Whether a file of another kind ends with a zip directory record (no comment)."""
    if target.kind not in (FileKind.BINARY, FileKind.TEXT) or target.size < 22:
        return False
    if target.tail:  # read by the walk in the same open as the head
        return target.tail[-22:-18] == b"PK\x05\x06"
    try:
        with open(target.path, "rb") as handle:
            handle.seek(target.size - 22)
            return handle.read(4) == b"PK\x05\x06"
    except OSError:
        return False


_STORAGE_NAME = re.compile(r"\d+")


def _torch_storage_folders(members: Iterable[Any]) -> frozenset[str]:
    """The folders of a PyTorch zip whose numbered members are tensor storages:
    ``<root>/data/`` beside ``<root>/data.pkl``, and TorchScript's ``<root>/constants/``
    beside ``<root>/constants.pkl``. torch.load reads those members as raw bytes (their
    first byte can be any opcode: 2.5% of small real checkpoints had one parse as a pickle
    import), so they are never judged as pickles."""
    names = {m.name for m in members}
    folders = set()
    for name in names:
        for pickle_name in ("data.pkl", "constants.pkl"):
            if name == pickle_name or name.endswith("/" + pickle_name):
                folders.add(name[: -len(".pkl")] + "/")
    return frozenset(folders)


def _is_torch_storage(name: str, folders: frozenset[str]) -> bool:
    folder, _, leaf = name.rpartition("/")
    return folder + "/" in folders and _STORAGE_NAME.fullmatch(leaf) is not None


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (OSError, ValueError, AttributeError):  # tarfile's stream mode has no seekable()
        return False


def _tar_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        info = tar.next()
        if info is None:
            return
        yield info


# joblib's read_zfile: "ZF", the length in hex left-justified to 19 bytes, one more space
# from joblib <= 0.8.4 on Python 2 (a zlib stream never starts with a space), then zlib.
_ZFILE_LENGTH = re.compile(rb"^ZF0x[0-9a-fA-F]+L? *$")


def _skip_zfile_header(stream: IO[bytes]) -> bool:
    """Read past a joblib zfile header, as joblib does; False if it is not one."""
    header = stream.read(21)
    if not _ZFILE_LENGTH.match(header):
        return False
    if _seekable(stream):
        here = stream.tell()
        if stream.read(1) != b" ":
            stream.seek(here)
        return True
    peek = getattr(stream, "peek", None)  # a BufferedReader: look without consuming
    if peek is not None and peek(1)[:1] == b" ":
        stream.read(1)
    return True


def _strip_compression(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".tgz"):
        return name[:-4] + ".tar"
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _seen(res: PickleResult) -> str:
    if not res.imports:
        return ""
    names = [i.qualname if isinstance(i, Global) else i.detail for i in res.imports[:5]]
    return f" (imports seen before the error: {', '.join(names)})"


_DTYPE_CODE = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)")
_KIND_SIZE = {
    "?": 1,
    "b": 1,
    "B": 1,
    "h": 2,
    "H": 2,
    "i": 4,
    "I": 4,
    "l": 8,
    "L": 8,
    "q": 8,
    "Q": 8,
    "e": 2,
    "f": 4,
    "d": 8,
    "g": 16,
    "F": 8,
    "D": 16,
    "G": 32,
}


def _dtype_size(dtype: Any) -> tuple[int | None, bool]:
    """(itemsize, has_object) of a pickled ``numpy.dtype(...)`` call, as far as known."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None, False
    code = dtype.args[0]
    if not isinstance(code, str):
        return None, False
    state = dtype.state
    match = _DTYPE_CODE.match(code)
    kind = match.group(1) if match else ""
    # Structured dtypes carry their fields in the state: object fields make it an object array.
    flags = state[7] if isinstance(state, tuple) and len(state) >= 8 else None
    if isinstance(flags, int) and flags & 0x01:  # NPY_ITEM_REFCOUNT: holds Python objects
        return None, True
    if kind == "O":
        return None, True
    if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) and state[5] > 0:
        return state[5], False
    if match and match.group(2):
        return int(match.group(2)), False
    return _KIND_SIZE.get(kind), False
