"""Zip members compressed with bzip2, lzma or zstd are decompressed and checked; a member a
loader unpickles that still cannot be read is high (MLS130). Samples are built at test time
(the malicious pickle calls ``os.system`` but is never loaded)."""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from tests.models.conftest import hits

SYSTEM = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."


def _npy(descr: str, payload: bytes) -> bytes:
    header = ("{'descr': " + descr + ", 'fortran_order': False, 'shape': (1,), }").encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def _zip(name: str, data: bytes, method: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def _with_method(blob: bytes, method: int) -> bytes:
    """Set the method id of the (only) member in its local and central headers."""
    patched = bytearray(blob)
    central = patched.find(b"PK\x01\x02")
    patched[8:10] = struct.pack("<H", method)
    patched[central + 10 : central + 12] = struct.pack("<H", method)
    return bytes(patched)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_object_npy_in_npz_is_decompressed(scan_one: Callable[..., Any], method: int) -> None:
    report = scan_one("arrays.npz", _zip("arr_0.npy", _npy("'|O'", SYSTEM), method))
    assert ("MLS101", "critical", "arrays.npz", "arr_0.npy") in hits(report)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_benign_npz_stays_below_high(scan_one: Callable[..., Any], method: int) -> None:
    report = scan_one("arrays.npz", _zip("arr_0.npy", _npy("'<f8'", b"\x00" * 8), method))
    assert {h for h in hits(report) if h[1] in ("critical", "high", "medium")} == set()


def test_zstd_member_is_decompressed(scan_one: Callable[..., Any]) -> None:
    zstandard = pytest.importorskip("zstandard")
    frame = zstandard.ZstdCompressor().compress(SYSTEM)
    blob = _with_method(_zip("archive/data.pkl", frame, zipfile.ZIP_STORED), 93)
    report = scan_one("model.pt", blob)
    assert ("MLS101", "critical", "model.pt", "archive/data.pkl") in hits(report)


def test_zstd_member_without_decompressor_is_high(
    scan_one: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("zstandard")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails
    monkeypatch.setitem(sys.modules, "compression", None)
    blob = _with_method(_zip("archive/data.pkl", b"\x28\xb5\x2f\xfd" + SYSTEM, 0), 93)
    assert ("MLS130", "high", "model.pt", "archive/data.pkl") in hits(scan_one("model.pt", blob))


def test_undecodable_zstd_pickle_member_is_high(scan_one: Callable[..., Any]) -> None:
    blob = _with_method(_zip("archive/data.pkl", SYSTEM, zipfile.ZIP_STORED), 93)
    assert ("MLS130", "high", "model.pt", "archive/data.pkl") in hits(scan_one("model.pt", blob))


def test_unknown_method_pickle_member_is_high(scan_one: Callable[..., Any]) -> None:
    blob = _with_method(_zip("arr_0.npy", _npy("'|O'", SYSTEM), zipfile.ZIP_STORED), 99)
    assert ("MLS130", "high", "arrays.npz", "arr_0.npy") in hits(scan_one("arrays.npz", blob))


def test_unknown_method_other_member_stays_medium(scan_one: Callable[..., Any]) -> None:
    blob = _with_method(_zip("archive/data/0", b"\x00" * 64, zipfile.ZIP_STORED), 99)
    found = hits(scan_one("model.pt", blob))
    assert ("MLS100", "medium", "model.pt", "archive/data/0") in found
    assert not any(h[0] == "MLS130" for h in found)
