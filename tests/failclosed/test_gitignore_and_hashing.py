"""Gitignored files are scanned (unless --respect-gitignore), and the hash cache never
serves a stale digest."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mlsec.config import build_options
from mlsec.scan import scan
from tests.failclosed.helpers import evil_pickle, findings_of


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _repo_with_ignored_checkpoint(root: Path) -> Path:
    _git(root, "init", "-q")
    (root / ".gitignore").write_text("checkpoints/\n*.ckpt\nnode_modules/\n")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "best.bin").write_bytes(evil_pickle())
    (root / "last.ckpt").write_bytes(evil_pickle("echo two"))
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "x.pkl").write_bytes(evil_pickle())
    (root / "tracked.pkl").write_bytes(evil_pickle("echo tracked"))
    _git(root, "add", ".gitignore", "tracked.pkl")
    return root


def test_gitignored_weights_are_scanned_by_default(tmp_path: Path, cli) -> None:
    repo = _repo_with_ignored_checkpoint(tmp_path)
    proc = cli("scan", repo, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    critical = {p for r, s, p in findings_of(proc.stdout) if r == "MLS101"}
    assert critical == {"checkpoints/best.bin", "last.ckpt", "tracked.pkl"}
    skipped = {s["path"]: s["reason"] for s in json.loads(proc.stdout)["skipped"]}
    assert skipped == {"node_modules/": "excluded folder (default)"}


def test_respect_gitignore_lists_every_ignored_entry_as_skipped(tmp_path: Path) -> None:
    repo = _repo_with_ignored_checkpoint(tmp_path)
    report = scan(build_options(repo, respect_gitignore=True))
    assert {f.path for f in report.findings if f.rule_id == "MLS101"} == {"tracked.pkl"}
    reasons = {s.path: s.reason for s in report.skipped}
    why = "ignored by .gitignore (--respect-gitignore)"
    assert reasons == {"checkpoints/": why, "last.ckpt": why, "node_modules/": why}
    assert report.summary()["skipped"] == 3


def test_hash_cache_sees_a_byte_changed_with_mtime_restored(tmp_path: Path) -> None:
    from mlsec.hashing import HashCache, hash_files

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"a" * 4096)
    store = tmp_path / "cache.json"
    first = hash_files([weights], cache=HashCache(store))[weights]
    before = weights.stat()
    with open(weights, "r+b") as handle:
        handle.write(b"b")
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_size == before.st_size
    assert weights.stat().st_mtime_ns == before.st_mtime_ns
    second = hash_files([weights], cache=HashCache(store))[weights]
    import hashlib

    assert second != first
    assert second == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_bom_digest_follows_the_content(tmp_path: Path, cli) -> None:
    import hashlib

    from mlsec.config import default_cache_dir

    model = tmp_path / "model.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    model.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    first = scan(build_options(tmp_path, build_bom=True))  # fills the persistent hash cache
    assert first.facts["aibom"] is not None
    cached = json.loads((default_cache_dir() / "hashes.json").read_text())["entries"]
    assert str(model) in cached
    before = model.stat()
    data = bytearray(model.read_bytes())
    data[-1] = 1
    model.write_bytes(bytes(data))
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    second = cli("bom", tmp_path, "--format", "json")
    assert second.returncode == 0, second.stderr
    assert hashlib.sha256(bytes(data)).hexdigest() in second.stdout
    assert cached[str(model)][1] not in second.stdout  # the stale digest is not used


def test_hashing_refuses_a_fifo_swapped_in(tmp_path: Path) -> None:
    from mlsec.hashing import hash_files

    os.mkfifo(tmp_path / "w.bin")
    (tmp_path / "zero.bin").symlink_to("/dev/zero")
    assert hash_files([tmp_path / "w.bin", tmp_path / "zero.bin"]) == {}


def test_damaged_hash_cache_is_ignored(tmp_path: Path) -> None:
    from mlsec.hashing import HashCache, hash_files

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w")
    store = tmp_path / "cache.json"
    for damaged in ("[1]", "[" * 100_000, '{"version": 2, "entries": {"x": [1, 2]}}', "\xff"):
        store.write_text(damaged)
        assert hash_files([weights], cache=HashCache(store))[weights] == (
            "50e721e49c013f00c62cf59f2163542a9d8df02464efeb615d31051b0fddc326"
        )


def test_nested_clone_and_submodule_files_are_scanned(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    clone = repo / "models" / "bert"
    clone.mkdir(parents=True)
    _git(clone, "init", "-q")  # e.g. `git clone https://huggingface.co/...` into the tree
    (clone / "pytorch_model.bin").write_bytes(evil_pickle())
    (repo / "top.pkl").write_bytes(evil_pickle("echo top"))
    proc = cli("scan", repo, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    critical = {p for r, s, p in findings_of(proc.stdout) if r == "MLS101"}
    assert critical == {"models/bert/pytorch_model.bin", "top.pkl"}
    skipped = {s["path"] for s in json.loads(proc.stdout)["skipped"]}
    assert "models/bert/.git/" in skipped
