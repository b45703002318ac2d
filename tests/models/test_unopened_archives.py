"""7z and RAR archives are recognised by magic and reported unchecked (MLS131), never
silently passed. Samples are built at test time."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from mlsec.models.registry import FileKind
from mlsec.models.sniff import sniff
from tests.models.conftest import hits

SYSTEM = b"cos\nsystem\n(S'id'\ntR."
SAMPLES = {
    "7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24 + SYSTEM,
    "rar4": b"Rar!\x1a\x07\x00" + SYSTEM,
    "rar5": b"Rar!\x1a\x07\x01\x00" + SYSTEM,
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
@pytest.mark.parametrize("name", ["models.7z", "model.pkl", "blob"])
def test_top_level_archive_is_not_checked(
    scan_one: Callable[..., Any], sample: str, name: str
) -> None:
    found = hits(scan_one(name, SAMPLES[sample]))
    assert ("MLS131", "medium", name, None) in found


def test_archive_inside_zip_is_reported_with_its_member(scan_one: Callable[..., Any]) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("bundle/weights.rar", SAMPLES["rar5"])
    found = hits(scan_one("bundle.zip", out.getvalue()))
    assert ("MLS131", "medium", "bundle.zip", "bundle/weights.rar") in found


def test_archive_inside_tar_is_reported_with_its_member(scan_one: Callable[..., Any]) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo("model.7z")
        info.size = len(SAMPLES["7z"])
        archive.addfile(info, io.BytesIO(SAMPLES["7z"]))
    found = hits(scan_one("model.tar", out.getvalue()))
    assert ("MLS131", "medium", "model.tar", "model.7z") in found


def test_look_alike_text_is_not_an_archive(scan_one: Callable[..., Any]) -> None:
    assert sniff(b"7z archives are small\n", "notes.txt", None) is not FileKind.UNOPENED_ARCHIVE
    assert sniff(b"Rar! said the lion\n", "notes.txt", None) is not FileKind.UNOPENED_ARCHIVE
    assert not any(h[0] == "MLS131" for h in hits(scan_one("notes.txt", b"Rar! said\n")))
