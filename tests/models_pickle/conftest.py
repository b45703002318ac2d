"""Helpers for the pickle-family tests: build hostile samples in code, scan, summarise."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ZIP_TIME = (2024, 1, 1, 0, 0, 0)


class Reduce:
    """Pickles as ``func(*args)`` (the classic payload shape)."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)


def evil(command: str = "echo never-run", protocol: int = 4) -> bytes:
    """A pickle calling os.system(command) (posix.system on Linux)."""
    return pickle.dumps(Reduce(os.system, command), protocol=protocol)


def benign(protocol: int = 4) -> bytes:
    return pickle.dumps({"weights": [0.5, 1.5], "name": "layer"}, protocol=protocol)


def stack_global(module: str, name: str, arg: str = "x") -> bytes:
    """Protocol 4 STACK_GLOBAL call ``module.name(arg)`` written opcode by opcode."""

    def uni(s: str) -> bytes:
        b = s.encode()
        return b"\x8c" + bytes([len(b)]) + b

    return b"\x80\x04" + uni(module) + uni(name) + b"\x93" + uni(arg) + b"\x85" + b"R" + b"."


def torch_like_zip(members: dict[str, bytes], prefix: str = "archive") -> bytes:
    """A zip laid out like torch.save's (data.pkl, version, byteorder, data/N)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        base = {
            f"{prefix}/data.pkl": benign(2),
            f"{prefix}/byteorder": b"little",
            f"{prefix}/data/0": b"\x00" * 16,
            f"{prefix}/version": b"3\n",
        }
        base.update(members)
        for name, data in base.items():
            z.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)
    return out.getvalue()


def plain_zip(members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compress) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, ZIP_TIME), data, compress_type=compress)
    return out.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as t:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def npy_header(descr: str, shape: tuple[int, ...] = (2,)) -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def scan_path(path: Path, **flags: Any) -> Any:
    from mlsec.config import build_options
    from mlsec.scan import scan

    # Paths relative to the scanned folder (not to the repository these fixtures live in).
    root = path if path.is_dir() else path.parent
    return scan(build_options(path, use_git=False, repo_root=root, **flags))


def hits(report: Any) -> set[tuple[str, str, str, str | None]]:
    """mlsec's own findings (modelscan's second opinion, which may be absent where modelscan
    does not install, is tested in tests/models_formats/test_modelscan.py)."""
    return {
        (f.rule_id, f.severity.value, f.path, f.member)
        for f in report.findings
        if f.source == "mlsec"
    }


@pytest.fixture
def scan_file(tmp_path: Path) -> Callable[..., Any]:
    """Write ``data`` as ``name`` in a fresh folder and scan that folder."""

    def _scan(name: str, data: bytes, **flags: Any) -> Any:
        folder = tmp_path / "repo"
        folder.mkdir(exist_ok=True)
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        report = scan_path(folder, **flags)
        assert not [e for e in report.errors if "internal error" in e.message], report.errors
        return report

    return _scan
