"""Concatenated gzip members and bz2/xz streams are read on as Python's readers read them.

Samples are built here at test time (the malicious pickle calls ``os.system`` but is never
loaded); nothing binary is committed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from mlsec.formats.streams import Budget, LimitExceeded, open_decompressed
from tests.models.conftest import hits

SYSTEM = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."
HALF = len(SYSTEM) // 2
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
}


def _high(report: Any) -> set[tuple[str, str, str, str | None]]:
    return {h for h in hits(report) if h[1] in ("critical", "high")}


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_empty_member_then_payload_is_read(scan_one: Callable[..., Any], ext: str) -> None:
    pack = COMPRESS[ext]
    name = f"model.pkl.{ext}"
    report = scan_one(name, pack(b"") + pack(SYSTEM))
    assert ("MLS101", "critical", name, None) in hits(report)


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_pickle_split_across_members_is_read(scan_one: Callable[..., Any], ext: str) -> None:
    pack = COMPRESS[ext]
    name = f"model.pkl.{ext}"
    report = scan_one(name, pack(SYSTEM[:HALF]) + pack(SYSTEM[HALF:]))
    assert ("MLS101", "critical", name, None) in hits(report)


def test_joblib_named_multi_member_gzip(scan_one: Callable[..., Any]) -> None:
    report = scan_one("model.joblib", gzip.compress(b"") + gzip.compress(SYSTEM))
    assert ("MLS101", "critical", "model.joblib", None) in hits(report)


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_benign_multi_member_stays_below_high(scan_one: Callable[..., Any], ext: str) -> None:
    pack = COMPRESS[ext]
    data = pickle.dumps({"weights": [1.0, 2.0], "name": "m"}, protocol=4)
    report = scan_one(f"model.pkl.{ext}", pack(data[:7]) + pack(b"") + pack(data[7:]))
    assert _high(report) == set()
    assert all(f.rule_id != "MLS100" for f in report.findings), report.findings


def _budget(max_uncompressed: int = 1 << 30) -> Budget:
    return Budget(timeout=60, max_ops=10**6, max_uncompressed=max_uncompressed, max_ratio=100)


@pytest.mark.parametrize("kind,ext", [("gzip", "gz"), ("bzip2", "bz2"), ("xz", "xz")])
def test_reader_concatenates_like_python(kind: str, ext: str) -> None:
    pack = COMPRESS[ext]
    blob = pack(b"abc") + pack(b"") + pack(b"def" * 1000)
    stream = open_decompressed(kind, io.BytesIO(blob), _budget(), len(blob))
    assert stream.read() == b"abc" + b"def" * 1000
    # A zip member (members=False) ends at its first end, as zipfile reads it.
    single = open_decompressed(kind, io.BytesIO(blob), _budget(), len(blob), members=False)
    assert single.read() == b"abc"


def test_gzip_zero_padding_is_skipped_and_garbage_ends_the_content() -> None:
    padded = gzip.compress(b"abc") + b"\x00" * 100 + gzip.compress(b"def")
    assert open_decompressed("gzip", io.BytesIO(padded), _budget()).read() == b"abcdef"
    assert gzip.decompress(padded) == b"abcdef"
    garbage = gzip.compress(b"abc") + b"junk"
    # Python returns the member before failing on the junk: pickle.load() gets the pickle.
    with gzip.open(io.BytesIO(garbage)) as python_reader:
        assert python_reader.read(3) == b"abc"
    assert open_decompressed("gzip", io.BytesIO(garbage), _budget()).read() == b"abc"


def test_pickle_before_gzip_garbage_is_scanned(scan_one: Callable[..., Any]) -> None:
    report = scan_one("model.pkl.gz", gzip.compress(SYSTEM) + b"junk")
    assert ("MLS101", "critical", "model.pkl.gz", None) in hits(report)


@pytest.mark.parametrize("kind,ext", [("bzip2", "bz2"), ("xz", "xz")])
def test_trailing_garbage_after_stream_is_ignored_like_python(kind: str, ext: str) -> None:
    blob = COMPRESS[ext](b"abc") + b"not a stream at all" * 4
    assert open_decompressed(kind, io.BytesIO(blob), _budget()).read() == b"abc"


def test_members_share_one_budget() -> None:
    member = gzip.compress(b"\x00" * (1 << 20))
    blob = member * 8
    stream = open_decompressed("gzip", io.BytesIO(blob), _budget(max_uncompressed=3 << 20))
    with pytest.raises(LimitExceeded) as caught:
        while stream.read(1 << 16):
            pass
    assert caught.value.limit == "max-uncompressed-size"


def test_lz4_and_zstd_frames_are_concatenated() -> None:
    import lz4.frame

    frames = lz4.frame.compress(b"abc") + lz4.frame.compress(b"def")
    assert open_decompressed("lz4", io.BytesIO(frames), _budget()).read() == b"abcdef"
    zstandard = pytest.importorskip("zstandard")
    packer = zstandard.ZstdCompressor()
    frames = packer.compress(b"abc") + packer.compress(b"def")
    assert open_decompressed("zstd", io.BytesIO(frames), _budget()).read() == b"abcdef"
