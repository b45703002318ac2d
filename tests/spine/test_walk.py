"""The walker on hostile and odd trees: nothing crashes, everything is reported."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from mlsec.config import ScanOptions, build_options
from mlsec.models.sniff import FileKind
from mlsec.rules import load_rules
from mlsec.scan import scan
from mlsec.walk import walk

LFS = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)


def _walk(path: Path, **kw: object):
    return walk(build_options(path, **kw), load_rules())


def _skipped(result, path: str) -> str:
    return next(s.reason for s in result.skipped if s.path == path)


def test_symlink_out_of_tree_is_reported_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pkl").write_bytes(pickle.dumps([1]))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link.pkl").symlink_to(outside / "secret.pkl")
    (repo / "notes.txt").symlink_to(outside / "secret.pkl")
    (repo / "dirlink").symlink_to(outside, target_is_directory=True)
    result = _walk(repo)
    assert result.targets == []
    assert "out of the scanned tree" in _skipped(result, "link.pkl")
    hits = {(f.rule_id, f.path, f.severity.value) for f in result.findings}
    # A name a loader opens is high (MLS905); other names stay medium (MLS902).
    assert hits == {
        ("MLS905", "link.pkl", "high"),
        ("MLS902", "notes.txt", "medium"),
        ("MLS902", "dirlink", "medium"),
    }


def test_symlink_loop_and_dangling(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    result = _walk(tmp_path)
    for name in ("a", "b", "dangling"):
        assert _skipped(result, name) == "broken or looping symlink"
    assert {f.path for f in result.findings if f.rule_id == "MLS902"} == {"a", "b", "dangling"}


def test_symlink_inside_tree_not_scanned_twice(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real.txt")
    result = _walk(tmp_path)
    assert [t.relpath for t in result.targets] == ["real.txt"]
    assert "scanned at its own path" in _skipped(result, "alias.txt")
    assert result.findings == []


def test_empty_file_is_a_target_with_no_findings(tmp_path: Path) -> None:
    (tmp_path / "empty.pt").write_bytes(b"")
    result = _walk(tmp_path)
    assert [(t.relpath, t.kind) for t in result.targets] == [("empty.pt", FileKind.EMPTY)]
    assert scan(build_options(tmp_path)).findings == ()


def test_non_utf8_name_is_scanned_and_printable(tmp_path: Path, cli) -> None:
    name = os.fsdecode(b"model-\xff.pkl")
    (tmp_path / name).write_bytes(pickle.dumps({"w": 1}, protocol=4))
    result = _walk(tmp_path)
    assert [t.relpath for t in result.targets] == ["model-\\xff.pkl"]
    for fmt in ("json", "sarif", "markdown", "table"):
        proc = cli("scan", tmp_path, "--format", fmt)
        assert proc.returncode == 0, (fmt, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_unreadable_file_is_an_error_and_a_finding(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "locked.pkl"
    target.write_bytes(pickle.dumps([1]))
    from mlsec import walk as walk_module

    real_read = walk_module.read_and_sniff

    def fake_read(file):  # root can read anything; simulate EACCES
        if Path(file) == target:
            raise PermissionError(13, "Permission denied")
        return real_read(file)

    monkeypatch.setattr(walk_module, "read_and_sniff", fake_read)
    result = _walk(tmp_path)
    assert result.targets == []
    assert [(e.path, e.message) for e in result.errors] == [
        ("locked.pkl", "cannot read: Permission denied")
    ]
    assert [(f.rule_id, f.path) for f in result.findings] == [("MLS901", "locked.pkl")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of mode")
def test_unreadable_file_via_cli(tmp_path: Path, cli) -> None:
    target = tmp_path / "locked.pkl"
    target.write_bytes(b"x")
    target.chmod(0)
    proc = cli("scan", tmp_path, "--format", "json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["errors"][0]["path"] == "locked.pkl"


def test_content_sniffing_beats_extension(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    (tmp_path / "weights.pkl").write_text("just text\n")
    kinds = {t.relpath: t.kind for t in _walk(tmp_path).targets}
    assert kinds == {"notes.txt": FileKind.PICKLE, "weights.pkl": FileKind.TEXT}


def test_lfs_pointer_is_reported_with_oid_and_size(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_text(LFS)
    result = _walk(tmp_path)
    [finding] = result.findings
    assert (finding.rule_id, finding.path, finding.severity.value) == (
        "MLS903",
        "model.safetensors",
        "low",
    )
    assert finding.details == {
        "oid": "sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393",
        "size": 12345,
    }
    assert result.targets[0].kind is FileKind.LFS_POINTER


def test_default_excluded_folders(tmp_path: Path) -> None:
    for folder in ("node_modules/x", ".git/objects", "venv2/lib", "src"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "venv2" / "pyvenv.cfg").write_text("home = /usr\n")
    for rel in ("node_modules/x/a.pkl", ".git/objects/o", "venv2/lib/m.pkl", "src/m.pkl"):
        (tmp_path / rel).write_bytes(b"\x80\x04N.")
    result = _walk(tmp_path, use_git=False)
    assert [t.relpath for t in result.targets] == ["src/m.pkl"]
    assert {s.path for s in result.skipped} >= {"node_modules/", ".git/", "venv2/"}


def test_include_exclude_globs(tmp_path: Path) -> None:
    for rel in ("models/a.pkl", "models/sub/b.pkl", "data/c.pkl", "d.pkl"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\x80\x04N.")
    inc = _walk(tmp_path, include=("models/**",))
    assert [t.relpath for t in inc.targets] == ["models/a.pkl", "models/sub/b.pkl"]
    exc = _walk(tmp_path, exclude=("models/sub", "*.txt", "data/"))
    assert [t.relpath for t in exc.targets] == ["d.pkl", "models/a.pkl"]


def test_size_limit_is_a_finding(tmp_path: Path) -> None:
    from mlsec.config import Limits

    (tmp_path / "big.bin").write_bytes(b"\0" * 2048)
    options = ScanOptions(path=tmp_path, limits=Limits(max_file_size=1024))
    result = walk(options, load_rules())
    assert result.targets == []
    assert [(f.rule_id, f.path) for f in result.findings] == [("MLS904", "big.bin")]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_work_tree_lists_ignored_files_unless_respect_gitignore(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("ignored/\n*.tmp\n")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "x.pkl").write_bytes(b"\x80\x04N.")
    (tmp_path / "scratch.tmp").write_bytes(b"\x80\x04N.")
    (tmp_path / "tracked.pkl").write_bytes(b"\x80\x04N.")
    (tmp_path / "gone.pkl").write_bytes(b"\x80\x04N.")
    _git(tmp_path, "add", "tracked.pkl", "gone.pkl")
    (tmp_path / "gone.pkl").unlink()
    (tmp_path / "untracked.pkl").write_bytes(b"\x80\x04N.")
    result = _walk(tmp_path, respect_gitignore=True)
    assert result.git
    assert [t.relpath for t in result.targets] == [".gitignore", "tracked.pkl", "untracked.pkl"]
    assert "missing" in _skipped(result, "gone.pkl")
    assert _skipped(result, "ignored/") == "ignored by .gitignore (--respect-gitignore)"
    assert _skipped(result, "scratch.tmp") == "ignored by .gitignore (--respect-gitignore)"
    default = _walk(tmp_path)
    assert [t.relpath for t in default.targets] == [
        ".gitignore",
        "ignored/x.pkl",
        "scratch.tmp",
        "tracked.pkl",
        "untracked.pkl",
    ]
    plain = _walk(tmp_path, use_git=False)
    assert "ignored/x.pkl" in [t.relpath for t in plain.targets]


def test_git_subdirectory_paths_are_relative_to_scanned_folder(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.pkl").write_bytes(b"\x80\x04N.")
    (tmp_path / "top.pkl").write_bytes(b"\x80\x04N.")
    result = _walk(tmp_path / "sub")
    assert [t.relpath for t in result.targets] == ["m.pkl"]


def test_ten_thousand_files(tmp_path: Path) -> None:
    for i in range(100):
        folder = tmp_path / f"d{i:03d}"
        folder.mkdir()
        for j in range(100):
            (folder / f"f{j:03d}.txt").write_text("x")
    report = scan(build_options(tmp_path))
    assert report.files_scanned == 10_000
    assert report.findings == () and report.errors == ()


def test_very_deep_tree_does_not_hit_recursion_limit(tmp_path: Path) -> None:
    import sys

    depth = sys.getrecursionlimit() + 50
    # Build with relative chdir steps: the absolute path is longer than PATH_MAX.
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        for _ in range(depth):
            os.mkdir("d")
            os.chdir("d")
        Path("deep.txt").write_text("x")
    finally:
        os.chdir(cwd)
    try:
        result = _walk(tmp_path, use_git=False)
        assert [t.relpath for t in result.targets] == ["d/" * depth + "deep.txt"]
    finally:
        # shutil.rmtree recurses (Python < 3.12) and would fail on this tree later: unwind it.
        os.chdir(tmp_path)
        try:
            for _ in range(depth):
                os.chdir("d")
            os.unlink("deep.txt")
            for _ in range(depth):
                os.chdir("..")
                os.rmdir("d")
        finally:
            os.chdir(cwd)
