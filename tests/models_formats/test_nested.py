"""Model formats inside archives: the container walk hands members to the format checks."""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fixtures.generate_formats import (
    MALICIOUS_TEMPLATE,
    keras3_config,
    keras_zip,
    write_gguf,
)
from mlsec.findings import Severity
from tests.models_formats.helpers import lambda_layer
from tests.models_pickle.conftest import plain_zip, tar_bytes

FORMATS = Path(__file__).resolve().parents[2] / "fixtures" / "formats"
BOTH = (
    "mlsec.models.containers:PickleModelsAnalyzer",
    "mlsec.models.checks:ModelFormatsAnalyzer",
)
Scan = Callable[..., Any]


def rules_of(report: Any) -> list[tuple[str, str, str, str | None]]:
    return sorted((f.rule_id, f.severity.value, f.path, f.member) for f in report.findings)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    return plain_zip(members, zipfile.ZIP_DEFLATED)


def gguf_bytes(tmp_path: Path, template: str) -> bytes:
    path = tmp_path / "build.gguf"
    write_gguf(path, template)
    data = path.read_bytes()
    path.unlink()
    return data


def test_gguf_chat_template_in_zip_and_tgz(tmp_path: Path, scan_formats: Scan) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    evil = gguf_bytes(tmp_path, MALICIOUS_TEMPLATE)
    (repo / "bundle.zip").write_bytes(zip_bytes({"models/chat.gguf": evil}))
    (repo / "bundle.tar.gz").write_bytes(tar_bytes({"llm/chat.gguf": evil}, mode="w:gz"))
    report = scan_formats(repo, analyzers=BOTH)
    assert rules_of(report) == [
        ("MLS143", "critical", "bundle.tar.gz", "llm/chat.gguf!tokenizer.chat_template"),
        ("MLS143", "critical", "bundle.zip", "models/chat.gguf!tokenizer.chat_template"),
    ]
    assert "__globals__" in report.findings[0].message
    assert report.errors == ()


def test_keras_lambda_in_zip(tmp_path: Path, scan_formats: Scan) -> None:
    lam = lambda_layer(b"\xe3\x00\x00\x00\xda\x02os\xda\x06system")
    inner = keras_zip(keras3_config([lam]))
    (tmp_path / "bundle.zip").write_bytes(zip_bytes({"export/evil.keras": inner}))
    report = scan_formats(tmp_path, analyzers=BOTH)
    assert rules_of(report) == [
        ("MLS151", "critical", "bundle.zip", "export/evil.keras!config.json"),
    ]
    assert "os, system" in report.findings[0].message


def test_onnx_external_data_escape_in_tar(tmp_path: Path, scan_formats: Scan) -> None:
    from fixtures.generate_formats import onnx_external_data_bytes

    model = onnx_external_data_bytes("../../etc/passwd")
    (tmp_path / "bundle.tar").write_bytes(tar_bytes({"onnx/m.onnx": model}))
    report = scan_formats(tmp_path, analyzers=BOTH)
    assert rules_of(report) == [("MLS147", "high", "bundle.tar", "onnx/m.onnx")]
    assert report.findings[0].details["location"] == "../../etc/passwd"


def test_safetensors_bad_header_in_zip(tmp_path: Path, scan_formats: Scan) -> None:
    bad = struct.pack("<Q", 10) + b'{"a": [1,}'
    (tmp_path / "bundle.zip").write_bytes(zip_bytes({"w.safetensors": bad}))
    report = scan_formats(tmp_path, analyzers=BOTH)
    assert rules_of(report) == [("MLS140", "medium", "bundle.zip", "w.safetensors")]
    assert "not valid JSON" in report.findings[0].message


def test_benign_formats_nested_stay_clean(
    tmp_path: Path, scan_formats: Scan, monkeypatch: Any
) -> None:
    import mlsec.models.containers as walker

    checked: list[tuple[str, str | None]] = []
    check_member = walker.check_member

    def spy(ctx: Any, path: Path, relpath: str, member: str | None, *rest: Any) -> Any:
        checked.append((relpath, member))
        return check_member(ctx, path, relpath, member, *rest)

    monkeypatch.setattr(walker, "check_member", spy)
    files = {
        p.relative_to(FORMATS).as_posix(): p.read_bytes()
        for p in sorted(FORMATS.rglob("*"))
        if p.is_file()
    }
    assert {"model.gguf", "model.h5", "model.keras", "saved_model/saved_model.pb"} <= set(files)
    (tmp_path / "formats.zip").write_bytes(zip_bytes(files))
    (tmp_path / "formats.tar.gz").write_bytes(tar_bytes(files, mode="w:gz"))
    report = scan_formats(tmp_path, analyzers=BOTH)
    assert not [f for f in report.findings if f.severity.rank > Severity.LOW.rank]
    assert report.errors == ()
    # Every member was really handed to the format checks (the .keras as a whole archive).
    assert sorted(checked) == sorted(
        (a, m) for a in ("formats.tar.gz", "formats.zip") for m in files
    )


def test_nested_format_bomb_is_still_a_limit(tmp_path: Path, scan_formats: Scan) -> None:
    # A GGUF header followed by 64 MiB of zeros: inflating it trips the expansion ratio.
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    bomb = zip_bytes({"big.gguf": header + bytes(64 * 1024**2)})
    assert len(bomb) < 1024**2
    (tmp_path / "bomb.zip").write_bytes(bomb)
    report = scan_formats(tmp_path, analyzers=BOTH)
    limits = {(f.rule_id, f.severity.value, f.path, f.member, f.key) for f in report.findings}
    assert ("MLS904", "medium", "bomb.zip", "big.gguf", "max-expansion-ratio") in limits
    assert not [f for f in report.findings if f.rule_id == "MLS142"]


def test_compressed_gguf_is_checked(tmp_path: Path, scan_formats: Scan) -> None:
    import gzip

    data = gzip.compress(gguf_bytes(tmp_path, MALICIOUS_TEMPLATE), mtime=0)
    (tmp_path / "chat.gguf.gz").write_bytes(data)
    report = scan_formats(tmp_path, analyzers=BOTH)
    assert rules_of(report) == [
        ("MLS143", "critical", "chat.gguf.gz", "tokenizer.chat_template"),
    ]
    assert json.dumps(report.findings[0].details)


def test_torch_storages_are_not_taken_for_formats(tmp_path: Path, scan_formats: Scan) -> None:
    # int64 storage [5, 123, ...]: eight bytes of a small length, then "{" (0x7b)
    storage = struct.pack("<3q", 5, 123, 7)
    archive = zip_bytes({"model/data.pkl": b"\x80\x02}q\x00.", "model/data/0": storage})
    (tmp_path / "model.pt").write_bytes(archive)
    (tmp_path / "other.zip").write_bytes(zip_bytes({"w.bin": storage}))
    report = scan_formats(tmp_path, analyzers=BOTH)
    # The same bytes outside a checkpoint's data/ folder are taken for a safetensors header.
    header_findings = [r for r in rules_of(report) if r[0] == "MLS140"]
    assert header_findings == [("MLS140", "medium", "other.zip", "w.bin")]


def test_a_failing_member_check_keeps_the_archive_findings(
    tmp_path: Path, scan_formats: Scan, monkeypatch: Any
) -> None:
    import mlsec.models.containers as walker

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(walker, "check_member", broken)
    evil = (
        b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R."
    )
    bad = struct.pack("<Q", 10) + b'{"a": [1,}'
    (tmp_path / "b.zip").write_bytes(zip_bytes({"w.safetensors": bad, "p.pkl": evil}))
    report = scan_formats(tmp_path, analyzers=BOTH)
    found = {(f.rule_id, f.member) for f in report.findings}
    assert ("MLS901", "w.safetensors") in found
    assert ("MLS101", "p.pkl") in found
    assert report.errors == ()


def test_nested_formats_import_h5py_only_for_hdf5(tmp_path: Path) -> None:
    """(modelscan, a later analyzer, imports h5py for any zip itself: not run here.)"""
    import subprocess
    import sys

    repo = tmp_path / "repo"
    repo.mkdir()
    members = {n: (FORMATS / n).read_bytes() for n in ("model.gguf", "model.safetensors")}
    (repo / "bundle.zip").write_bytes(zip_bytes(members))
    code = (
        "import sys; from pathlib import Path\n"
        "from mlsec.config import build_options; from mlsec.scan import scan\n"
        f"report = scan(build_options(Path({str(repo)!r}), use_git=False), analyzers={BOTH!r})\n"
        "print(len(report.findings), 'h5py' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.stdout.split() == ["0", "False"], out.stderr


def test_tokenizer_chat_template_in_tgz(tmp_path: Path, scan_formats: Scan) -> None:
    evil = json.dumps({"chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    benign = json.dumps({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
    members = {
        "hf/tokenizer_config.json": evil.encode(),
        "ok/tokenizer_config.json": benign.encode(),
    }
    (tmp_path / "snapshot.tgz").write_bytes(tar_bytes(members, mode="w:gz"))
    report = scan_formats(tmp_path, analyzers=BOTH)
    assert rules_of(report) == [
        ("MLS143", "critical", "snapshot.tgz", "hf/tokenizer_config.json!chat_template"),
    ]
