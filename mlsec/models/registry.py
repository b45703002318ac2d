"""The format registry: one row per model format or container mlsec recognises.

Everything that asks "what is this file?" reads it from here: content sniffing
(:func:`mlsec.models.sniff.sniff` tries the rows' ``magic`` in order), the container walk
(rows with ``walk``), the leaf format checks (``check``: the method of
:class:`mlsec.models.checks.FormatChecks` that checks it), the BOM's "is this a model file"
(``weights``) and modelscan's routing (``modelscan``).

Adding a format: a parser module under :mod:`mlsec.formats`, a check method, one row here,
its rules under ``rules/`` and a generated fixture.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from typing import NamedTuple

from mlsec.models.templatenames import TEMPLATE_EXTENSIONS, TEMPLATE_JSON_NAMES, is_template_file


class FileKind(str, enum.Enum):
    """What a file's content is (the walker's verdict, before any format check)."""

    EMPTY = "empty"
    LFS_POINTER = "lfs-pointer"
    PICKLE = "pickle"
    ZIP = "zip"
    TAR = "tar"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    LZ4 = "lz4"
    ZSTD = "zstd"
    ZLIB = "zlib"
    JOBLIB_ZFILE = "joblib-zfile"
    NUMPY = "numpy"
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    HDF5 = "hdf5"
    ONNX = "onnx"
    TF_SAVEDMODEL = "tf-savedmodel"
    UNOPENED_ARCHIVE = "unopened-archive"  # 7z, RAR: recognised, not opened (MLS131)
    TEXT = "text"
    BINARY = "binary"

    @property
    def is_model_candidate(self) -> bool:
        return self not in (FileKind.EMPTY, FileKind.TEXT, FileKind.LFS_POINTER)


class Weights(enum.Enum):
    """Whether a file of a format is model weights for the BOM."""

    ALWAYS = "always"  # recognised from content, whatever its name
    BY_NAME = "by-name"  # only with one of the weight extensions (a .zip may be anything)
    NEVER = "never"


# modelscan opens zips itself: route them without naming a modelscan format.
MODELSCAN_OPENS = "*"


class ModelFormat(NamedTuple):
    """One row of the registry.

    ``name``: the format's name (facts, messages); ``kinds``: the sniffed kinds that are this
    format; ``magic``: recognises the kind from a file's first bytes (None: recognised by name
    or by a probe); ``names``: name endings that make a file this format when content cannot
    tell (protobufs, broken headers), restricted to ``name_kinds`` if given; ``extensions``:
    names that say "a model of this format" (the BOM); ``loader_extensions``: other names its
    loaders accept that say nothing on their own (``.dat``, ``.sav``); ``pickles``: it carries
    pickles; ``walk``: the container walk opens it; ``check``: the
    :class:`~mlsec.models.checks.FormatChecks` method that checks it as a leaf;
    ``weights``: BOM role; ``modelscan``: modelscan's format for routing; ``facts``: the
    ``format`` values of the :class:`~mlsec.facts.ModelFileFact` a file of this format yields
    for the BOM (none for compressed streams: the fact names what they hold);
    ``header_only``: its check reads a header, whatever the file's size (the pool counts the
    work a file makes, not its bytes).
    """

    name: str
    kinds: frozenset[FileKind]
    magic: Callable[[bytes], bool] | None = None
    names: tuple[str, ...] = ()
    name_kinds: frozenset[FileKind] | None = None
    extensions: frozenset[str] = frozenset()
    loader_extensions: frozenset[str] = frozenset()
    pickles: bool = False
    walk: bool = False
    check: str | None = None
    weights: Weights = Weights.NEVER
    modelscan: str | None = None
    facts: tuple[str, ...] = ()
    header_only: bool = False

    def named(self, kind: FileKind, lower_name: str) -> bool:
        """Whether a file of ``kind`` is this format by its (lower-case) name."""
        if not self.names or not lower_name.endswith(self.names):
            return False
        return self.name_kinds is None or kind in self.name_kinds


# -- magic numbers (content recognition) --------------------------------------------------------
class _Magic:
    """A content test, with the first bytes it can match (None: any), so sniffing tries only
    the tests a file's first byte allows."""

    __slots__ = ("first", "test")

    def __init__(self, test: Callable[[bytes], bool], first: bytes | None = None) -> None:
        self.test = test
        self.first = first

    def __call__(self, head: bytes) -> bool:
        return self.test(head)


def _prefix(*magic: bytes) -> _Magic:
    return _Magic(lambda head: head.startswith(magic), bytes({m[0] for m in magic}))


def _tar(head: bytes) -> bool:
    return len(head) > 262 and head[257:262] == b"ustar"


def _safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n < 100 * 1024**2 and head[8:9] == b"{"


def _lzma_alone(head: bytes) -> bool:
    """Raw LZMA ("alone" format, e.g. joblib's lzma compressor): properties, dictionary size,
    uncompressed size. No magic, so require the encoder's usual values."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    if dict_size < 4096 or dict_size & (dict_size - 1):
        return False
    size = int.from_bytes(head[5:13], "little")
    return size == 2**64 - 1 or size < 2**48


def _zlib(head: bytes) -> bool:
    return (
        len(head) >= 2
        and head[0] == 0x78
        and head[1] in (0x01, 0x5E, 0x9C, 0xDA)
        and ((head[0] << 8 | head[1]) % 31 == 0)
    )


def _kinds(*kinds: FileKind) -> frozenset[FileKind]:
    return frozenset(kinds)


_PICKLE_NAMES = frozenset(
    {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".model", ".npz"}
)
# Names torch, joblib, paddle and others load pickles from that say nothing on their own.
_PICKLE_LOADER_NAMES = frozenset(
    {".dat", ".data", ".p", ".sav", ".th", ".pdparams", ".pdopt", ".pyt", ".debug_pkl", ".tar"}
)
# A zip named like a protobuf or .keras is still checked as a zip (a Keras archive or not).
_NOT_ZIP = frozenset(FileKind) - {FileKind.ZIP, FileKind.HDF5}
_COMPRESSED_NAMES = frozenset({".joblib", ".pkl", ".pickle"})

# Order matters: sniffing tries ``magic`` top to bottom (strong magic numbers first; zlib's
# two bytes and raw LZMA's plausible values are weak, so they come after the others).
FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat(
        "zip",
        _kinds(FileKind.ZIP),
        _prefix(b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"),
        extensions=frozenset({".pt", ".pth", ".bin", ".ckpt", ".keras", ".npz", ".pkl", ".model"}),
        loader_extensions=frozenset({".zip", ".mar", ".nemo"}),
        pickles=True,
        walk=True,
        check="keras_zip",  # a top-level .keras (the walk handles nested ones)
        weights=Weights.BY_NAME,
        modelscan=MODELSCAN_OPENS,
        facts=("zip", "pytorch-zip", "torchscript", "npz", "keras"),
    ),
    ModelFormat(
        "tar",
        _kinds(FileKind.TAR),
        _tar,
        extensions=frozenset({".pth", ".pt", ".ckpt"}),
        loader_extensions=frozenset({".tar"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
        facts=("tar", "pytorch-legacy"),
    ),
    ModelFormat(
        "gzip",
        _kinds(FileKind.GZIP),
        _prefix(b"\x1f\x8b"),
        extensions=_COMPRESSED_NAMES,
        loader_extensions=frozenset({".gz", ".tgz"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    ModelFormat(
        "bzip2",
        _kinds(FileKind.BZIP2),
        _prefix(b"BZh"),
        extensions=_COMPRESSED_NAMES,
        loader_extensions=frozenset({".bz2"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    ModelFormat(
        "xz",
        _kinds(FileKind.XZ),
        _prefix(b"\xfd7zXZ\x00"),
        extensions=_COMPRESSED_NAMES,
        loader_extensions=frozenset({".xz"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    ModelFormat(
        "lz4",
        _kinds(FileKind.LZ4),
        _prefix(b"\x04\x22\x4d\x18"),
        extensions=_COMPRESSED_NAMES,
        loader_extensions=frozenset({".lz4"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    ModelFormat(
        "zstd",
        _kinds(FileKind.ZSTD),
        _prefix(b"\x28\xb5\x2f\xfd"),
        extensions=_COMPRESSED_NAMES,
        loader_extensions=frozenset({".zst", ".zstd"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    ModelFormat(
        "joblib-zfile",
        _kinds(FileKind.JOBLIB_ZFILE),
        _prefix(b"ZF0x", b"ZF "),
        extensions=frozenset({".joblib", ".pkl"}),
        loader_extensions=frozenset({".z", ".npy.z"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    # Archives mlsec does not open: the walk takes them only to report them unchecked.
    ModelFormat(
        "7z",
        _kinds(FileKind.UNOPENED_ARCHIVE),
        _prefix(b"7z\xbc\xaf\x27\x1c"),
        loader_extensions=frozenset({".7z"}),
        pickles=True,  # may hold any: extracted pickles are loaded
        walk=True,
    ),
    ModelFormat(
        "rar",
        _kinds(FileKind.UNOPENED_ARCHIVE),
        _prefix(b"Rar!\x1a\x07"),  # RAR 1.5-4 (then 0x00) and RAR 5 (then 0x01 0x00)
        loader_extensions=frozenset({".rar"}),
        pickles=True,  # may hold any: extracted pickles are loaded
        walk=True,
    ),
    ModelFormat(
        "numpy",
        _kinds(FileKind.NUMPY),
        _prefix(b"\x93NUMPY"),
        loader_extensions=frozenset({".npy"}),  # an array may be anything: not weights by name
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
        modelscan="NUMPY",
        facts=("numpy",),
    ),
    ModelFormat(
        "gguf",
        _kinds(FileKind.GGUF),
        _prefix(b"GGUF"),
        names=(".gguf",),
        extensions=frozenset({".gguf"}),
        check="gguf",
        weights=Weights.ALWAYS,
        facts=("gguf",),
        header_only=True,
    ),
    ModelFormat(
        "keras-h5",
        _kinds(FileKind.HDF5),
        _prefix(b"\x89HDF\r\n\x1a\n"),
        extensions=frozenset({".h5", ".hdf5", ".keras"}),
        check="keras_h5",
        weights=Weights.BY_NAME,
        modelscan="KERAS_H5",
        facts=("keras-h5",),
    ),
    ModelFormat(
        "safetensors",
        _kinds(FileKind.SAFETENSORS),
        _safetensors,
        names=(".safetensors",),
        extensions=frozenset({".safetensors"}),
        check="safetensors",
        weights=Weights.ALWAYS,
        facts=("safetensors",),
        header_only=True,
    ),
    ModelFormat(
        "lzma",
        _kinds(FileKind.LZMA),
        _Magic(_lzma_alone, b"\x5d"),
        extensions=_COMPRESSED_NAMES,
        loader_extensions=frozenset({".lzma"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    ModelFormat(
        "zlib",
        _kinds(FileKind.ZLIB),
        _Magic(_zlib, b"\x78"),
        extensions=frozenset({".joblib", ".pkl", ".bin"}),
        loader_extensions=frozenset({".z", ".zlib"}),
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
    ),
    # Formats with no reliable magic: recognised by name, before the pickle probe.
    ModelFormat(
        "onnx",
        _kinds(FileKind.ONNX),  # and unknown binaries that parse as ONNX (leaf_format)
        names=(".onnx",),
        extensions=frozenset({".onnx"}),
        check="onnx",
        weights=Weights.ALWAYS,
        facts=("onnx",),
    ),
    ModelFormat(
        "tf-savedmodel",
        _kinds(FileKind.TF_SAVEDMODEL),
        names=("saved_model.pb", "saved_model.pbtxt"),
        extensions=frozenset({".pb", ".pbtxt"}),
        check="saved_model",
        weights=Weights.ALWAYS,
        modelscan="TENSORFLOW",
        facts=("tf-savedmodel",),
    ),
    # Recognised by a bounded decode of the first opcodes (mlsec.models.probe), not magic.
    ModelFormat(
        "pickle",
        _kinds(FileKind.PICKLE),
        extensions=_PICKLE_NAMES,
        loader_extensions=_PICKLE_LOADER_NAMES,
        pickles=True,
        walk=True,
        weights=Weights.BY_NAME,
        modelscan="PICKLE",
        facts=("pickle", "joblib", "pytorch-legacy"),
    ),
    # Formats known by name only, checked as leaves (content decides nothing more).
    ModelFormat(
        "chat-template",
        frozenset(),
        # mlsec.models.templatenames.is_template_file decides (additional_chat_templates/ too)
        names=("tokenizer_config.json", "chat_template.json", "chat_template.jinja"),
        name_kinds=_kinds(FileKind.TEXT, FileKind.BINARY),
        check="template_file",
    ),
    ModelFormat(
        "keras",
        frozenset(),
        names=(".keras",),
        name_kinds=_NOT_ZIP,
        extensions=frozenset({".keras"}),
        check="not_keras",  # a .keras that is neither a zip nor HDF5
        weights=Weights.BY_NAME,
        facts=("keras",),
    ),
    ModelFormat(
        "keras-metadata",
        frozenset(),
        names=("keras_metadata.pb",),
        name_kinds=_NOT_ZIP,
        check="keras_saved_metadata",
        facts=("keras-savedmodel",),
    ),
    ModelFormat(
        "tf-graphdef",
        frozenset(),
        names=(".pb",),
        name_kinds=_NOT_ZIP,
        extensions=frozenset({".pb"}),
        check="graph_def",
        weights=Weights.BY_NAME,
        facts=("tf-graphdef",),
    ),
    # What nothing else claims; weights only by name (.tflite, .msgpack, a raw .bin...).
    ModelFormat(
        "binary",
        _kinds(FileKind.BINARY),
        extensions=frozenset({".bin", ".tflite", ".msgpack", ".mlmodel", ".ggml", ".model"}),
        weights=Weights.BY_NAME,
    ),
    ModelFormat(
        "lfs-pointer",
        _kinds(FileKind.LFS_POINTER),
        weights=Weights.BY_NAME,  # the pointer stands for the weights it names
    ),
)

BY_NAME: Mapping[str, ModelFormat] = {row.name: row for row in FORMATS}
# Every format a model fact can name (the AIBOM's file formats).
FACT_FORMATS: frozenset[str] = frozenset(f for row in FORMATS for f in row.facts)
MAGIC: tuple[tuple[Callable[[bytes], bool], FileKind], ...] = tuple(
    (row.magic, next(iter(row.kinds))) for row in FORMATS if row.magic is not None
)


def _by_first_byte() -> tuple[tuple[tuple[Callable[[bytes], bool], FileKind], ...], ...]:
    table = []
    for byte in range(256):
        table.append(
            tuple(
                (magic, kind)
                for magic, kind in MAGIC
                if not isinstance(magic, _Magic) or magic.first is None or byte in magic.first
            )
        )
    return tuple(table)


# MAGIC in registry order, restricted to the tests each first byte allows.
MAGIC_BY_FIRST_BYTE = _by_first_byte()
# Content kinds the container walk opens (pickles and everything that wraps them).
WALKED: frozenset[FileKind] = frozenset(k for row in FORMATS if row.walk for k in row.kinds)
# The format of each content kind (the first row naming it).
_ROW_OF_KIND: dict[FileKind, ModelFormat] = {}
for _row in FORMATS:
    for _kind in _row.kinds:
        _ROW_OF_KIND.setdefault(_kind, _row)
ROW_OF_KIND: Mapping[FileKind, ModelFormat] = _ROW_OF_KIND

# Names that say "pickle" (a broken stream under them is a corrupt pickle, not noise): what
# pickle loaders accept, and NumPy's .npy (object arrays are pickles).
PICKLE_EXTENSIONS: frozenset[str] = (
    BY_NAME["pickle"].extensions | BY_NAME["pickle"].loader_extensions | {".npy"}
) - {".tar", ".npz"}

# Names that say "pickle model" on their own (MLS120 when the content is not one). Not
# ``.bin`` or ``.model`` (raw tensors, tokenizers), nor the loader-only names (``.dat``).
PICKLE_NAMES: tuple[str, ...] = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt")

# -- the BOM: which files are model weights ------------------------------------------------------
ALWAYS_WEIGHTS: frozenset[FileKind] = frozenset(
    k for row in FORMATS if row.weights is Weights.ALWAYS for k in row.kinds
)
MAYBE_WEIGHTS: frozenset[FileKind] = frozenset(
    k for row in FORMATS if row.weights is Weights.BY_NAME for k in row.kinds
)
WEIGHT_EXTENSIONS: frozenset[str] = frozenset(
    e for row in FORMATS if row.weights is not Weights.NEVER for e in row.extensions
)


def is_weight_file(kind: FileKind, name: str) -> bool:
    """Whether a file of sniffed ``kind`` named ``name`` is model weights (for the BOM)."""
    if kind in ALWAYS_WEIGHTS:
        return True
    lower = name.rsplit("/", 1)[-1].lower()
    ext = lower[lower.rfind(".") :] if "." in lower else ""
    return kind in MAYBE_WEIGHTS and ext in WEIGHT_EXTENSIONS


# -- modelscan: which kinds get its second opinion, and as what format --------------------------
MODELSCAN_ROUTES: Mapping[FileKind, str | None] = {
    next(iter(row.kinds)): (None if row.modelscan == MODELSCAN_OPENS else row.modelscan)
    for row in FORMATS
    if row.modelscan is not None
}


# -- leaf checks: which format check a file or an archive member gets ---------------------------
def leaf_format(kind: FileKind, name: str) -> ModelFormat | None:
    """The format whose check a top-level file of ``kind`` named ``name`` gets, if any.

    Content first (a GGUF is a GGUF whatever its name), then names where content cannot tell
    (protobufs, broken headers); the container kinds' own rows (zip: a top-level Keras
    archive) come last.
    """
    lower = name.lower()
    endings, by_kind = _leaf_tables()
    if not lower.endswith(endings):  # most files: no name can change the kind's answer
        return by_kind[kind]
    return _leaf_format(kind, lower)


@functools.cache
def _leaf_tables() -> tuple[tuple[str, ...], dict[FileKind, ModelFormat | None]]:
    """Every name ending that can make :func:`_leaf_format` answer by name, and its answer
    for each kind when the name ends in none of them. A shortcut only: the walk asks for
    every file in the tree, and the full test costs ~3 us a file (100,000 source files:
    `python benchmarks/bench_scale.py --cases source-files`)."""
    endings = {ending for row in FORMATS if row.check is not None for ending in row.names}
    endings.update(TEMPLATE_JSON_NAMES)
    endings.update(f".{extension}" for extension in TEMPLATE_EXTENSIONS)
    return tuple(sorted(endings)), {kind: _leaf_format(kind, "") for kind in FileKind}


def _leaf_format(kind: FileKind, lower: str) -> ModelFormat | None:
    if kind in (FileKind.TEXT, FileKind.BINARY) and is_template_file(lower):
        return BY_NAME["chat-template"]
    for row in FORMATS:
        if row.check is None or row.walk:
            continue
        if kind in row.kinds and kind is not FileKind.BINARY:
            return row
        if row.named(kind, lower):
            return row
    if kind is FileKind.ZIP:
        return BY_NAME["zip"]
    if kind is FileKind.BINARY:
        return BY_NAME["onnx"]  # an unknown binary: checked only if it starts like ONNX
    return None


def member_format(kind: FileKind, name: str) -> ModelFormat | None:
    """The format check for an archive member, if the container walk hands it to one.

    Zip members stay with the walk (a nested .keras is recognised by its member names);
    unknown binaries are not guessed at; names count only where content says nothing
    (binary or text) or where the kind is one only checks read.
    """
    row = leaf_format(kind, name)
    if row is None or row.walk or (kind is FileKind.BINARY and not row.named(kind, name.lower())):
        return None
    if kind in (FileKind.BINARY, FileKind.TEXT) or kind in row.kinds:
        return row
    return None
