"""Every container that carries pickles, recognised by content, with exact members."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import zipfile
import zlib

import joblib
import lz4.frame
import numpy as np
import pytest

from mlsec.config import Limits

from .conftest import (
    Reduce,
    benign,
    evil,
    hits,
    npy_header,
    plain_zip,
    tar_bytes,
    torch_like_zip,
)


def test_torch_zip_data_pkl(scan_file) -> None:
    data = torch_like_zip({"archive/data.pkl": evil("echo t", 2)})
    report = scan_file("weights.bin", data)
    assert ("MLS101", "critical", "weights.bin", "archive/data.pkl") in hits(report)
    fact = report.facts["models"].files[0]
    assert (fact.format, fact.framework) == ("pytorch-zip", "pytorch")


def test_torch_zip_every_member_any_folder(scan_file) -> None:
    # Evil pickle not named data.pkl, under an odd top folder, no .pkl suffix.
    data = torch_like_zip({"zz-top/extra/state": evil("echo hidden", 2)}, prefix="zz-top")
    report = scan_file("model.ckpt", data)
    assert ("MLS101", "critical", "model.ckpt", "zz-top/extra/state") in hits(report)


def _patch_zip(
    data: bytes,
    member: str,
    *,
    local_name: bytes | None = None,
    flags: int | None = None,
    bad_crc: bool = False,
) -> bytes:
    buf = bytearray(data)
    name = member.encode()
    pos = 0
    while True:
        local = buf.find(b"PK\x03\x04", pos)
        nlen = struct.unpack_from("<H", buf, local + 26)[0]
        if bytes(buf[local + 30 : local + 30 + nlen]) == name:
            break
        pos = local + 4
    central = buf.find(b"PK\x01\x02" + bytes(buf[local + 4 : local + 6]))
    while bytes(buf[central + 46 : central + 46 + len(name)]) != name:
        central = buf.find(b"PK\x01\x02", central + 4)
    if local_name is not None:
        assert len(local_name) == len(name)
        buf[local + 30 : local + 30 + nlen] = local_name
    if flags is not None:
        struct.pack_into("<H", buf, local + 6, flags)
        struct.pack_into("<H", buf, central + 8, flags)
    if bad_crc:
        struct.pack_into("<I", buf, local + 14, 0xDEADBEEF)
        struct.pack_into("<I", buf, central + 16, 0xDEADBEEF)
    return bytes(buf)


def test_torch_zip_parser_differentials(scan_file) -> None:
    data = torch_like_zip({"archive/data.pkl": evil("echo diff", 2)})
    data = _patch_zip(
        data, "archive/data.pkl", local_name=b"archive/data.pkX", flags=0x0001, bad_crc=True
    )
    with (
        pytest.raises((zipfile.BadZipFile, RuntimeError, NotImplementedError)),
        zipfile.ZipFile(io.BytesIO(data)) as z,
    ):
        z.read("archive/data.pkl")  # Python's zipfile refuses; torch's reader would not
    report = scan_file("diff.pt", data)
    found = hits(report)
    assert ("MLS101", "critical", "diff.pt", "archive/data.pkl") in found
    assert ("MLS106", "medium", "diff.pt", "archive/data.pkl") in found
    anomalies = next(f for f in report.findings if f.rule_id == "MLS106").details["anomalies"]
    assert any("local header names it" in a for a in anomalies)
    assert any("encrypted" in a for a in anomalies)
    assert any("CRC-32" in a for a in anomalies)


def test_zip_with_prepended_data(scan_file) -> None:
    data = b"#!/bin/sh\nexit 0\n" + plain_zip({"m/model.pkl": evil("echo pre")})
    report = scan_file("sfx.zip", data)
    assert ("MLS101", "critical", "sfx.zip", "m/model.pkl") in hits(report)


def test_torch_legacy_sequence_of_pickles(scan_file) -> None:
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    parts = [
        magic,
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"little_endian": True}, 2),
        evil("echo legacy", 2),
        pickle.dumps(["0"], protocol=2),
    ]
    data = b"".join(parts) + struct.pack("<q", 2) + b"\x80\x02garbage!"  # raw storage bytes
    report = scan_file("old.pt", data)
    found = hits(report)
    assert ("MLS101", "critical", "old.pt", None) in found
    assert not [f for f in report.findings if f.rule_id in ("MLS100", "MLS105")]
    assert report.facts["models"].files[0].format == "pytorch-legacy"


def test_torch_legacy_tar(scan_file) -> None:
    storages = (
        pickle.dumps(1, protocol=2)
        + b"\x80\x02(X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\nt."
        + struct.pack("<q", 2)
        + b"\x00" * 8
        + pickle.dumps([], protocol=2)
    )
    tensors = pickle.dumps(0, protocol=2)
    data = tar_bytes(
        {
            "sys_info": pickle.dumps({}, protocol=2),
            "pickle": evil("echo tar", 2),
            "storages": storages,
            "tensors": tensors,
        }
    )
    report = scan_file("legacy_tar.pt", data)
    found = hits(report)
    assert ("MLS101", "critical", "legacy_tar.pt", "pickle") in found
    assert not [f for f in report.findings if f.rule_id == "MLS100"], report.findings
    assert report.facts["models"].files[0].format == "pytorch-legacy"


def test_torchscript_pickles_and_code(scan_file) -> None:
    code = b"def forward(self, x):\n    import os\n    return os.system('echo ts')\n"
    data = torch_like_zip(
        {
            "ts/constants.pkl": evil("echo const", 2),
            "ts/code/__torch__/model.py": code,
            "ts/data.pkl": b"\x80\x02c__torch__\nModel\n)\x81.",
        },
        prefix="ts",
    )
    report = scan_file("scripted.pt", data)
    found = hits(report)
    assert ("MLS101", "critical", "scripted.pt", "ts/constants.pkl") in found
    assert ("MLS107", "high", "scripted.pt", "ts/code/__torch__/model.py") in found
    assert not [f for f in report.findings if f.member == "ts/data.pkl" and f.severity.rank > 0]
    assert report.facts["models"].files[0].format == "torchscript"


def _joblib_bytes(obj: object, compress: object = 0) -> bytes:
    buf = io.BytesIO()
    if compress:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "x.joblib"
            joblib.dump(obj, path, compress=compress)
            return path.read_bytes()
    joblib.dump(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3), ("lz4", 3)]
)
def test_joblib_plain_and_compressed(scan_file, compress: object) -> None:
    obj = {
        "arrays": [np.arange(100.0), np.ones((3, 3), dtype=np.int16)],
        "hook": Reduce(os.system, "echo joblib"),
        "tail": np.zeros(5),
    }
    report = scan_file("model.joblib", _joblib_bytes(obj, compress))
    found = hits(report)
    assert ("MLS101", "critical", "model.joblib", None) in found
    assert not [f for f in report.findings if f.rule_id in ("MLS100", "MLS105")], report.findings
    assert report.facts["models"].files[0].format == "joblib"


def test_joblib_object_array_inline_pickle(scan_file) -> None:
    arr = np.array([Reduce(os.system, "echo objarr"), 1], dtype=object)
    report = scan_file("objects.joblib", _joblib_bytes({"a": arr, "b": np.arange(4)}))
    assert ("MLS101", "critical", "objects.joblib", None) in hits(report)
    assert not [f for f in report.findings if f.rule_id == "MLS100"], report.findings


@pytest.mark.parametrize(
    ("name", "wrap"),
    [
        ("x.pkl.gz", lambda d: gzip.compress(d, mtime=0)),
        ("x.pkl.bz2", bz2.compress),
        ("x.pkl.xz", lzma.compress),
        ("x.pkl.lzma", lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)),
        ("x.pkl.z", zlib.compress),
        ("x.pkl.lz4", lz4.frame.compress),
        # joblib < 0.10 "zfile": "ZF" + 19-byte hex length + one zlib stream
        ("old.joblib", lambda d: b"ZF" + hex(len(d)).encode().ljust(19) + zlib.compress(d)),
    ],
)
def test_compressed_raw_pickles(scan_file, name: str, wrap) -> None:
    report = scan_file(name, wrap(evil("echo comp")))
    assert ("MLS101", "critical", name, None) in hits(report)


def test_npy_object_dtype(scan_file) -> None:
    arr = np.array([Reduce(os.system, "echo npy"), 2], dtype=object)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    report = scan_file("arr.npy", buf.getvalue())
    assert ("MLS101", "critical", "arr.npy", None) in hits(report)
    # A numeric array carries no pickle and yields no finding at all.
    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    report = scan_file("plain.npy", buf.getvalue())
    assert not [f for f in report.findings if f.path == "plain.npy"]


def test_npy_hand_built_object_header(scan_file) -> None:
    report = scan_file("hand.npy", npy_header("|O") + evil("echo hand", 3))
    assert ("MLS101", "critical", "hand.npy", None) in hits(report)


def test_npz_member(scan_file) -> None:
    arr = np.array([Reduce(os.system, "echo npz")], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, good=np.arange(3), bad=arr)
    report = scan_file("arrays.npz", buf.getvalue())
    assert ("MLS101", "critical", "arrays.npz", "bad.npy") in hits(report)
    assert report.facts["models"].files[0].format == "npz"


def test_nested_archives_member_paths(scan_file) -> None:
    inner_zip = plain_zip({"deep/model.pkl": evil("echo deep")}, zipfile.ZIP_DEFLATED)
    tgz = tar_bytes({"bundle/inner.zip": inner_zip}, mode="w:gz")
    outer = plain_zip({"release/bundle.tar.gz": tgz}, zipfile.ZIP_DEFLATED)
    report = scan_file("release.zip", outer)
    member = "release/bundle.tar.gz!bundle/inner.zip!deep/model.pkl"
    assert ("MLS101", "critical", "release.zip", member) in hits(report)


def test_nested_archives_where_spooled_files_lack_seekable(scan_file, monkeypatch) -> None:
    """Python 3.10's SpooledTemporaryFile seeks but has no seekable(): a zip read from a
    compressed tar is spooled, and must then be read, not spooled again without end."""
    import tempfile

    if hasattr(tempfile.SpooledTemporaryFile, "seekable"):
        monkeypatch.delattr(tempfile.SpooledTemporaryFile, "seekable")
    test_nested_archives_member_paths(scan_file)


def test_plain_tar_and_tgz(scan_file) -> None:
    report = scan_file("a.tar", tar_bytes({"x/evil.bin": evil("echo tar")}))
    assert ("MLS101", "critical", "a.tar", "x/evil.bin") in hits(report)
    report = scan_file("a.tgz", tar_bytes({"x/evil.bin": evil("echo tgz")}, mode="w:gz"))
    assert ("MLS101", "critical", "a.tgz", "x/evil.bin") in hits(report)


def test_zip_bomb_is_a_finding(scan_file) -> None:
    size = 64 * 1024**2  # one BINBYTES8 payload of zeros: skipping it means inflating it
    pickled = b"\x80\x04\x8e" + size.to_bytes(8, "little") + bytes(size) + b"."
    bomb = plain_zip({"payload.pkl": pickled}, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1024**2
    report = scan_file("bomb.zip", bomb)
    limit = {(f.severity.value, f.member, f.key) for f in report.findings if f.rule_id == "MLS904"}
    assert limit == {
        ("medium", None, "zip-bomb"),  # declared sizes, from the central directory
        ("medium", "payload.pkl", "max-expansion-ratio"),  # stopped while inflating
    }


def test_depth_and_member_limits(scan_file) -> None:
    data = evil("echo d")
    for i in range(4):
        data = plain_zip({f"level{i}.zip" if i else "m.pkl": data})
    limits = Limits(max_archive_depth=2)
    report = scan_file("deep.zip", data, limits=limits)
    assert any(f.rule_id == "MLS904" and f.key == "max-archive-depth" for f in report.findings)
    many = plain_zip({f"f{i}.txt": b"x" for i in range(20)} | {"z.pkl": evil()})
    report = scan_file("many.zip", many, limits=Limits(max_archive_members=5))
    assert ("MLS904", "medium", "many.zip", None) in hits(report)


def test_keras_v3_zip_gets_no_fact(scan_file) -> None:
    data = plain_zip({"config.json": b"{}", "metadata.json": b"{}", "model.weights.h5": b"x"})
    report = scan_file("model.keras", data)
    assert report.facts["models"].files == ()
    assert not report.findings


def test_benign_pickle_only_info(scan_file) -> None:
    report = scan_file("ok.pkl", benign())
    assert hits(report) == {("MLS102", "info", "ok.pkl", None)}


def test_joblib_array_bytes_that_are_pickle_code(scan_file, monkeypatch) -> None:
    # Array data joblib skips but plain pickle.load would execute as opcodes. (With the
    # alignment padding of current joblib, the pad byte stops pickle.load; older files and
    # crafted ones have none.)
    from joblib.numpy_pickle import NumpyArrayWrapper

    monkeypatch.setattr(NumpyArrayWrapper.__init__, "__defaults__", (False, None))
    code = b"cos\nsystem\n(S'echo hidden-in-array'\ntR0"
    payload = np.frombuffer(code.ljust(48, b"N"), dtype=np.uint8)
    buf = io.BytesIO()
    joblib.dump({"table": payload}, buf)
    raw = buf.getvalue()
    assert code in raw
    report = scan_file("trick.joblib", raw)
    assert ("MLS101", "critical", "trick.joblib", None) in hits(report)
    assert any("pickle.load runs" in f.message for f in report.findings)


def test_tensor_bytes_that_look_like_proto_are_not_corrupt_pickles(scan_file) -> None:
    # A storage whose first bytes happen to be 0x80 0x02 (e.g. float16 data).
    data = torch_like_zip({"archive/data/0": b"\x80\x02\xff\xfe" + bytes(60)})
    report = scan_file("half.pt", data)
    assert hits(report) == {("MLS102", "info", "half.pt", None)}
    # The same bytes under a pickle name are no pickle either: their first opcodes do not
    # decode (0xff is no opcode), so no loader gets past them and there is nothing to report.
    report = scan_file("broken.pkl", b"\x80\x02\xff\xfe" + bytes(60))
    assert {h for h in hits(report) if h[2] == "broken.pkl"} == {
        ("MLS120", "info", "broken.pkl", None)  # named like one, looked at, not a pickle
    }
    # A stream that decodes as a pickle and then breaks is a corrupt one.
    report = scan_file(
        "cut.pkl",
        b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02\xff" + bytes(60),
    )
    assert ("MLS100", "medium", "cut.pkl", None) in hits(report)


def test_zip_directory_read_in_chunks() -> None:
    from mlsec.formats.zipread import read_zip

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(12_000):  # a central directory of ~2.5 MiB, over several chunks
            z.writestr(
                zipfile.ZipInfo("d/" + "x" * (i % 300) + f"{i}.bin", (2024, 1, 1, 0, 0, 0)), b"a"
            )
    data = buf.getvalue()
    archive = read_zip(io.BytesIO(data), len(data), 100_000)
    assert len(archive.members) == 12_000 and not archive.anomalies
    assert archive.members[-1].name.endswith("x11999.bin")
    assert len(read_zip(io.BytesIO(data), len(data), 10).members) == 10
