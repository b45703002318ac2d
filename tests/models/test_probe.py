"""Content probing: a pickle is what decodes as one, whatever its name and first byte; a file
whose first opcodes do not decode is no pickle, whatever its extension."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import pickletools
import zlib

import lz4.frame
import pytest

from mlsec.config import Limits
from mlsec.models.probe import _OPCODES, FIRST_OPCODES, looks_like_pickle
from mlsec.models.registry import FileKind
from mlsec.models.sniff import HEAD_SIZE, sniff
from tests.models.conftest import hits

# Protocol 0: os.system('echo probe'), written opcode by opcode (never loaded).
EVIL_P0 = b"cos\nsystem\n(S'echo probe'\ntR."
# Protocol 1: the same with binary opcodes and a memo.
EVIL_P1 = b"cos\nsystem\nq\x00(U\x0aecho probeq\x01tq\x02Rq\x03."
# INST: the protocol 0 call CPython's pickler no longer writes but every unpickler runs.
EVIL_INST = b"(S'echo probe'\nios\nsystem\n."
EVIL_INST_BARE = b"(ios\nsystem\n."
BENIGN_P0 = pickle.dumps({"weights": [0.5, 1.5], "name": "layer"}, protocol=0)
BENIGN_P1 = pickle.dumps({"weights": [0.5, 1.5], "name": "layer"}, protocol=1)

LOADER_NAMES = ["model.pth.tar", "model.th", "model.model", "model.pdparams", "weights", "x.txt"]


def test_opcode_table_matches_pickletools() -> None:
    codes = {op.code.encode("latin-1")[0] for op in pickletools.opcodes}
    assert codes == _OPCODES
    assert FIRST_OPCODES <= _OPCODES


@pytest.mark.parametrize("name", LOADER_NAMES)
@pytest.mark.parametrize(
    "payload",
    [
        EVIL_P0,
        EVIL_P1,
        b"\x80\x01" + EVIL_P1,
        b"\x80\x00" + EVIL_P0,
        EVIL_INST,
        EVIL_INST_BARE,
    ],
)
def test_old_protocols_under_any_name_are_pickles(scan_one, name: str, payload: bytes) -> None:
    assert sniff(payload, name, len(payload)) is FileKind.PICKLE
    report = scan_one(name, payload)
    assert ("MLS101", "critical", name, None) in hits(report)


@pytest.mark.parametrize("data", [BENIGN_P0, BENIGN_P1])
def test_benign_old_protocols_are_recognised_and_stay_below_high(scan_one, data: bytes) -> None:
    assert sniff(data, "state", len(data)) is FileKind.PICKLE
    report = scan_one("state", data)
    assert {f.severity.value for f in report.findings} <= {"info", "low"}


def test_large_first_argument_does_not_hide_the_payload(scan_one) -> None:
    # PROTO 3, a 4 KiB bytes object (longer than the probe's head), POP, then the call.
    data = b"\x80\x03B" + (4096).to_bytes(4, "little") + b"\x00" * 4096 + b"0" + EVIL_P0
    assert len(data) > HEAD_SIZE
    report = scan_one("blob.data", data)
    assert ("MLS101", "critical", "blob.data", None) in hits(report)


# Real kinds of files that are not pickles but start with a byte that is an opcode.
NOT_PICKLES = {
    # IDL save file: "SR" signature, record header
    "spectrum.sav": b"SR\x00\x04\x00\x00\x00\x0a\x00\x00\x00\x00" + bytes(range(256)) * 4,
    # Fortran unformatted .dat whose first byte is "(" (a 40-byte record marker)
    "grid.dat": b"(\x00\x00\x00" + bytes(40) + b"(\x00\x00\x00" + bytes(range(200)),
    "notes.pkl": b"(defun probe (x) (* x x))\n",
    "module.pt": b"class Model:\n    def forward(self, x):\n        return x\n",
    "list.p": b"]\n",
    "table.data": b"col_a,col_b\n1,2\n3,4\n",
    "top_level.txt": b"certifi\n",
    "LICENSE.bin": b"Copyright (c) 2019 Google LLC\nCopyright (c) 2017 Facebook Inc.\n" * 30,
    "META.ckpt": b"Metadata-Version: 2.4\nName: probe\nVersion: 1.0\n" * 40,
    "nb.pkl": b"N.B. this file is documentation, not data.\n",
    "brace.pkl": b"}",
    "float16.pkl": b"\x80\x02\xff\xfe" + bytes(60),
}


@pytest.mark.parametrize("name", sorted(NOT_PICKLES))
def test_files_whose_first_opcodes_do_not_decode_are_not_pickles(scan_one, name: str) -> None:
    data = NOT_PICKLES[name]
    head = data[:HEAD_SIZE]
    assert not looks_like_pickle(head, len(head) < HEAD_SIZE, len(data))
    assert sniff(head, name, len(data)) is not FileKind.PICKLE
    report = scan_one(name, data)
    assert not [f for f in report.findings if f.rule_id.startswith("MLS10")], report.findings
    # A name that says pickle gets a note (looked at, not a pickle); others get nothing.
    strong = name.endswith((".pkl", ".pt", ".ckpt"))
    notes = {(f.rule_id, f.severity.value, f.path, f.member) for f in report.findings}
    assert notes == ({("MLS120", "info", name, None)} if strong else set())


COMPRESSORS = {
    "gzip": lambda d: gzip.compress(d, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
    "lz4": lz4.frame.compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("payload", [EVIL_P0, EVIL_P1])
def test_compressed_old_protocol_pickles_with_no_inner_extension(
    scan_one, kind: str, payload: bytes
) -> None:
    name = {"gzip": "blob.gz", "bzip2": "blob.bz2", "xz": "blob.xz"}.get(kind, "blob")
    report = scan_one(name, COMPRESSORS[kind](payload))
    assert ("MLS101", "critical", name, None) in hits(report)


def test_zstd_compressed_pickle(scan_one) -> None:
    zstandard = pytest.importorskip("zstandard")
    data = zstandard.ZstdCompressor().compress(EVIL_P0)
    report = scan_one("blob.zst", data)
    assert ("MLS101", "critical", "blob.zst", None) in hits(report)


def test_zstd_bomb_is_bounded(scan_one) -> None:
    zstandard = pytest.importorskip("zstandard")
    size = 64 * 1024**2  # one BINBYTES8 of zeros: 64 MiB from a few KiB
    inner = b"\x80\x04\x8e" + size.to_bytes(8, "little") + bytes(size) + b"."
    data = zstandard.ZstdCompressor(level=3).compress(inner)
    assert len(data) < 64 * 1024
    report = scan_one("bomb.zst", data, limits=Limits(max_uncompressed_size=8 * 1024**2))
    [limit] = [f for f in report.findings if f.rule_id == "MLS904"]
    assert (limit.severity.value, limit.path, limit.member) == ("medium", "bomb.zst", None)
    assert "max-uncompressed-size" in limit.message


@pytest.mark.parametrize("extra_space", [False, True])
def test_joblib_zfile_with_and_without_python2_space(scan_one, extra_space: bool) -> None:
    body = pickle.dumps(pickle.loads(BENIGN_P1), protocol=2)[:-1]  # a dict, then the call
    payload = body + b"0" + EVIL_P0
    header = b"ZF" + hex(len(payload)).encode().ljust(19) + (b" " if extra_space else b"")
    report = scan_one("old.pkl", header + zlib.compress(payload))
    assert ("MLS101", "critical", "old.pkl", None) in hits(report)
    assert not [f for f in report.findings if f.rule_id == "MLS100"]


def test_zfile_inner_npy_without_pickle_name(scan_one) -> None:
    # joblib < 0.10 wrote arrays beside the pickle as "<name>_01.npy.z" zfiles.
    buf = io.BytesIO()
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(118) + "\n"
    buf.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    buf.write(EVIL_P1)
    inner = buf.getvalue()
    data = b"ZF" + hex(len(inner)).encode().ljust(19) + zlib.compress(inner)
    report = scan_one("model.pkl_01.npy.z", data)
    assert ("MLS101", "critical", "model.pkl_01.npy.z", None) in hits(report)


# Protocol 0 padding: a first string longer than the walker's head, then the payload.
PADDED_P0 = b"V" + b"A" * 5000 + b"\n0" + EVIL_P0


def test_padding_longer_than_the_head_does_not_hide_a_protocol_0_payload(scan_one) -> None:
    head = PADDED_P0[:HEAD_SIZE]
    assert sniff(head, "padded", len(PADDED_P0), lambda n: PADDED_P0[:n]) is FileKind.PICKLE
    report = scan_one("padded", PADDED_P0)
    assert ("MLS101", "critical", "padded", None) in hits(report)


def test_padding_inside_an_archive_member(scan_one) -> None:
    from tests.models_pickle.conftest import plain_zip

    report = scan_one("bundle.zip", plain_zip({"inner/state": PADDED_P0}))
    assert ("MLS101", "critical", "bundle.zip", "inner/state") in hits(report)


def test_prose_with_a_long_first_line_is_not_a_pickle() -> None:
    text = b"Version " + b"x" * 3000 + b"\nmore prose\n"
    assert sniff(text[:HEAD_SIZE], "NOTES", len(text), lambda n: text[:n]) is FileKind.TEXT


def test_joblib_arrays_under_sklearns_vendored_name(scan_one) -> None:
    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump({"coef": np.arange(64, dtype=np.float64)}, buf, protocol=2)
    data = buf.getvalue()
    old = b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n"
    assert old in data
    vendored = data.replace(old, b"csklearn.externals.joblib.numpy_pickle\nNumpyArrayWrapper\n")
    report = scan_one("old_sklearn.pkl", vendored)
    # The array bytes behind the wrapper are skipped as joblib reads them, not decoded as
    # opcodes (which made the file "corrupt").
    assert not [f for f in report.findings if f.rule_id in ("MLS100", "MLS105")], report.findings
    assert report.facts["models"].files[0].format == "joblib"


def _binary_pickles() -> list[bytes]:
    import collections

    state = collections.OrderedDict((f"layer{i}.weight", [0.25] * 40) for i in range(6))
    out = [
        pickle.dumps(value, protocol=protocol)
        for protocol in (2, 3, 4, 5)
        for value in (state, {"epoch": 3, "state": state}, list(range(500)), "x" * 2000)
    ]
    # the first import only after 256 bytes of clean data opcodes
    out.append(b"\x80\x02]q\x00(" + b"K\x01" * 200 + b"e" + b"cos\nsystem\nq\x01.")
    # a structural error after 256 bytes of clean opcodes
    out.append(b"\x80\x02]q\x00(" + b"K\x01" * 200 + b"R" * 4)
    return out


@pytest.mark.parametrize("data", _binary_pickles(), ids=lambda d: f"{len(d)}b-{d[1]}")
def test_binary_prefix_verdict_is_the_head_verdict(data: bytes) -> None:
    """The probe's 256-byte shortcut for PROTO-headed files gives the whole head's verdict."""
    from mlsec.models import probe

    head = data[:HEAD_SIZE]
    assert probe._decode(head, len(data)) is True
    assert probe._decode_head(head, len(data)) is True


def test_binary_prefix_is_cautious_about_a_late_unimportable_first_import() -> None:
    """Past the prefix, a first import naming nothing importable would make the head's
    verdict "not a pickle"; the shortcut keeps it a pickle, so it is analysed."""
    from mlsec.models import probe

    data = b"\x80\x02]q\x00(" + b"K\x01" * 200 + b"e" + b"class Foo:\nbar baz\nq\x01."
    assert probe._decode_head(data, len(data)) is False
    assert probe._decode(data, len(data)) is True
