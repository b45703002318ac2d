"""Symlinks, Hugging Face cache snapshots, special files and unscannable PATHs, through the
CLI: exact exit code, rule, severity and path, and the scan's other findings still there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlsec.config import build_options
from mlsec.rules import load_rules
from mlsec.scan import scan
from mlsec.walk import walk
from tests.failclosed.helpers import evil_pickle, findings_of


def test_hf_snapshot_scanned_directly_reports_the_payload(hf_cache: Path, cli) -> None:
    snapshot = hf_cache / "snapshots" / "0123abcd"
    proc = cli("scan", snapshot, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert ("MLS101", "critical", "pytorch_model.bin") in findings_of(proc.stdout)
    assert report["summary"]["files_scanned"] == 2
    assert not any(f["rule_id"] in ("MLS902", "MLS905") for f in report["findings"])


def test_hf_cache_folder_scans_each_blob_once_under_its_snapshot_name(hf_cache: Path, cli) -> None:
    (hf_cache / "blobs" / "cccc").write_bytes(evil_pickle("echo orphan"))  # no snapshot link
    proc = cli("scan", hf_cache, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    critical = {f["path"] for f in report["findings"] if f["rule_id"] == "MLS101"}
    assert critical == {"snapshots/0123abcd/pytorch_model.bin", "blobs/cccc"}
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert skipped["blobs/aaaa"] == (
        "Hugging Face cache blob (scanned as snapshots/0123abcd/pytorch_model.bin)"
    )
    assert report["summary"]["files_scanned"] == 3


def test_snapshot_link_out_of_its_cache_folder_is_not_read(tmp_path: Path, cli) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(evil_pickle("echo outside"))
    snap = tmp_path / "models--a--b" / "snapshots" / "r1"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(secret)
    proc = cli("scan", snap, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    assert findings_of(proc.stdout) == {("MLS905", "high", "model.safetensors")}


def test_model_named_link_out_of_tree_is_high_and_other_findings_stay(tmp_path: Path, cli) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(evil_pickle("echo outside"))
    (outside / "notes").write_text("hello\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "model.gguf").symlink_to(outside / "w.bin")
    (repo / "NOTES.md").symlink_to(outside / "notes")
    (repo / "evil.pkl").write_bytes(evil_pickle())
    proc = cli("scan", repo, "--format", "json", "--fail-on", "critical")
    assert proc.returncode == 1, proc.stderr
    found = findings_of(proc.stdout)
    assert ("MLS905", "high", "model.gguf") in found
    assert ("MLS902", "medium", "NOTES.md") in found
    assert ("MLS101", "critical", "evil.pkl") in found
    # Nothing from outside the tree reaches the report.
    assert "echo outside" not in proc.stdout and "hello" not in proc.stdout
    # High alone fails the default gate.
    (repo / "evil.pkl").unlink()
    again = cli("scan", repo, "--format", "json")
    assert again.returncode == 1
    assert ("MLS905", "high", "model.gguf") in findings_of(again.stdout)


def test_follow_symlinks_reads_the_target_under_the_links_name(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(evil_pickle("echo outside"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "model.pt").symlink_to(outside / "w.bin")
    report = scan(build_options(repo, follow_symlinks=True))
    assert [
        (f.rule_id, f.severity.value, f.path) for f in report.findings if f.rule_id != "MLS102"
    ] == [("MLS101", "critical", "model.pt")]


def test_links_inside_the_tree_scan_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "real.pkl").write_bytes(evil_pickle())
    (tmp_path / "a.pkl").symlink_to("real.pkl")
    (tmp_path / "b.pkl").symlink_to("a.pkl")
    result = walk(build_options(tmp_path), load_rules())
    assert [t.relpath for t in result.targets] == ["real.pkl"]
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons == {
        "a.pkl": "symlink to real.pkl (scanned at its own path)",
        "b.pkl": "symlink to real.pkl (scanned at its own path)",
    }


def test_link_loop_fifo_and_device_link_are_findings(tmp_path: Path, cli) -> None:
    (tmp_path / "loop.pt").symlink_to("loop.pt")
    os.mkfifo(tmp_path / "pipe.pkl")
    (tmp_path / "pipe-link.pt").symlink_to("pipe.pkl")
    (tmp_path / "zero.bin").symlink_to("/dev/zero")  # out of the tree: not read either
    (tmp_path / "evil.pkl").write_bytes(evil_pickle())
    proc = cli("scan", tmp_path, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    found = findings_of(proc.stdout)
    assert {f for f in found if f[0] != "MLS102"} == {
        ("MLS902", "medium", "loop.pt"),
        ("MLS906", "medium", "pipe.pkl"),
        ("MLS906", "medium", "pipe-link.pt"),
        ("MLS905", "high", "zero.bin"),
        ("MLS101", "critical", "evil.pkl"),
    }


@pytest.mark.parametrize("kind", ["fifo", "device", "loop"])
def test_unscannable_path_is_exit_2(tmp_path: Path, cli, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/null")
    else:
        path = tmp_path / "loop"
        path.symlink_to(path)
    proc = cli("scan", path, "--format", "json")
    assert proc.returncode == 2, proc.stdout
    assert "cannot scan" in proc.stderr and "Traceback" not in proc.stderr
    expected = {"fifo": "a FIFO", "device": "a character device", "loop": "symlink loop"}[kind]
    assert expected in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of mode")
def test_unreadable_path_is_exit_2(tmp_path: Path, cli) -> None:
    locked = tmp_path / "locked.pkl"
    locked.write_bytes(b"x")
    locked.chmod(0)
    folder = tmp_path / "closed"
    folder.mkdir()
    folder.chmod(0)
    try:
        for path in (locked, folder):
            proc = cli("scan", path)
            assert proc.returncode == 2 and "cannot scan" in proc.stderr
    finally:
        folder.chmod(0o700)


def test_unreadable_path_raises_mlsec_error(tmp_path: Path, monkeypatch) -> None:
    from mlsec import walk as walk_module
    from mlsec.errors import MlsecError

    target = tmp_path / "locked.pkl"
    target.write_bytes(b"x")

    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(walk_module, "open_regular", refuse)
    with pytest.raises(MlsecError, match=r"cannot scan .*locked\.pkl: Permission denied"):
        walk(build_options(target), load_rules())


def test_file_swapped_for_a_fifo_after_listing_is_not_read(tmp_path: Path) -> None:
    from mlsec.walk import Walker

    (tmp_path / "w.pkl").write_bytes(evil_pickle())
    walker = Walker(build_options(tmp_path, use_git=False), load_rules())
    assert list(walker._fs_files(walker.root, "")) == ["w.pkl"]
    (tmp_path / "w.pkl").unlink()
    os.mkfifo(tmp_path / "w.pkl")  # swapped between the listing and the read
    walker._add(str(tmp_path / "w.pkl"), "w.pkl", 100, (0, 0))  # must return, not block
    assert walker.result.targets == []
    assert [(f.rule_id, f.path) for f in walker.result.findings] == [("MLS901", "w.pkl")]


def test_walk_keeps_the_zip_tail(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("x.txt", "x" * 5000)
    (tmp_path / "data.bin").write_bytes(os.urandom(3000) + (tmp_path / "a.zip").read_bytes())
    targets = {t.relpath: t for t in walk(build_options(tmp_path), load_rules()).targets}
    assert targets["data.bin"].tail[:4] == b"PK\x05\x06"
    assert targets["data.bin"].tail == (tmp_path / "data.bin").read_bytes()[-22:]


def test_unlistable_folder_is_a_finding(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "w.pkl").write_bytes(evil_pickle())
    (tmp_path / "evil.pkl").write_bytes(evil_pickle())
    real = os.scandir

    def scandir(path):  # root lists anything; simulate EACCES on one folder
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = scan(build_options(tmp_path, use_git=False))
    found = {(f.rule_id, f.severity.value, f.path) for f in report.findings}
    assert ("MLS901", "low", "locked") in found
    assert ("MLS101", "critical", "evil.pkl") in found
    assert [(e.path, e.message) for e in report.errors] == [
        ("locked", "cannot list directory: Permission denied")
    ]


def test_hf_snapshot_file_as_path_is_scanned(hf_cache: Path, cli) -> None:
    link = hf_cache / "snapshots" / "0123abcd" / "pytorch_model.bin"
    proc = cli("scan", link, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    assert ("MLS101", "critical", "pytorch_model.bin") in findings_of(proc.stdout)
