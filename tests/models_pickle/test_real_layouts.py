"""Layouts real libraries write, which the red team found flagged: tensor storages whose
bytes happen to look like opcodes, and ZIP64 archives (torch.export's .pt2)."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from .conftest import ZIP_TIME, evil, hits, torch_like_zip


@pytest.mark.parametrize(
    "storage",
    [
        b"\x84" + bytes(range(64)),  # EXT4 and then anything: a float storage's first byte
        b"\x82\x07)R." + b"\x00" * 32,  # even an EXT "program" is raw bytes at data/N
        b"\x80\x02c__builtin__\neval\n" + b"\x00" * 32,
    ],
)
def test_torch_storages_are_raw_bytes(scan_file, storage: bytes) -> None:
    data = torch_like_zip({"archive/data/0": storage, "archive/data/1": storage})
    report = scan_file("model.pt", data)
    assert not {sev for _, sev, _, _ in hits(report)} & {"critical", "high", "medium"}


def test_a_payload_outside_the_storages_is_still_found(scan_file) -> None:
    data = torch_like_zip({"archive/data/0": b"\x84" * 8, "archive/extra.pkl": evil()})
    assert ("MLS101", "critical", "model.pt", "archive/extra.pkl") in hits(
        scan_file("model.pt", data)
    )


def _zip64(members: dict[str, bytes]) -> bytes:
    """A zip whose end records are ZIP64 (record + locator before the classic EOCD), as
    torch.export.save writes them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)
    raw = out.getvalue()
    eocd = raw.rindex(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack_from("<HII", raw, eocd + 10)
    record = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd, 1)
    return raw[:eocd] + record + locator + raw[eocd:]


def test_zip64_end_records_are_read_as_zipfile_reads_them(scan_file) -> None:
    # Names of 30 characters make each directory entry 76 bytes, the size of the ZIP64 end
    # records: a reader that forgets them finds a directory entry 76 bytes "early" and takes
    # it for prepended data (what happened on torch.export's files).
    members = {f"exported/data/m{i:02d}.json".ljust(30, "_"): b"{}" for i in range(12)}
    assert all(len(name) == 30 for name in members)
    data = _zip64({**members, "exported/payload.pkl".ljust(30, "_"): evil()})
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # the layout is a valid zip
        assert len(z.namelist()) == 13
    found = hits(scan_file("model.pt2", data))
    assert ("MLS101", "critical", "model.pt2", "exported/payload.pkl".ljust(30, "_")) in found
    assert not [h for h in found if h[0] == "MLS100"], found


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("sklearn.linear_model._sgd_fast", "Hinge"),  # SGDClassifier (scikit-learn 1.9)
        ("pandas.core.indexes.timedeltas", "_new_TimedeltaIndex"),  # pandas 3.1
        ("pandas._libs.interval", "__pyx_unpickle_IntervalMixin"),
        ("pandas._libs.tslibs.offsets", "FY5253"),
        ("torch.return_types", "max"),  # torch.save(torch.max(t, 0))
        ("numpy.core._internal", "_reconstruct"),  # numpy's py2-np0-objarr.npy
    ],
)
def test_library_rebuild_callables_from_real_files_may_be_called(module: str, name: str) -> None:
    from mlsec.analyzers.pickle_policy import LEVEL_CALL, PicklePolicy, Tier

    verdict = PicklePolicy.load().classify(module, name)
    assert verdict.tier is Tier.ML and verdict.level >= LEVEL_CALL, verdict
