"""Hashing while the caller works (mlsec.hashing.PendingHashes), and the AIBOM analyzer's use
of that window to prepare the renderer. The workers themselves: tests/speed/test_hash_workers.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlsec import hashing
from tests.aibom.helpers import scan_report


def _weights(folder: Path, count: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = folder / f"w{i}.bin"
        # Two and a half chunks, different per file: chunk edges and the last partial read.
        path.write_bytes(bytes([i]) * (hashing.CHUNK * 2 + hashing.CHUNK // 2 + i))
        files.append(path)
    return files


def test_cached_digests_start_no_workers(tmp_path: Path) -> None:
    files = _weights(tmp_path, 2)
    cache = hashing.HashCache(tmp_path / "hashes.json")
    first = hashing.hash_files(files, cache=cache)
    hashing._MEMO.clear()
    pending = hashing.PendingHashes(files, cache=hashing.HashCache(tmp_path / "hashes.json"))
    assert not pending.running  # nothing to read: no worker
    assert pending.result() == first


def test_the_bom_scan_prepares_the_renderer_while_the_weights_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.render import cyclonedx

    monkeypatch.setattr(hashing, "FORK_BYTES", 1)  # these small weights hash in workers too
    repo = tmp_path / "repo"
    _weights(repo / "model", 2)
    (repo / "model" / "README.md").write_text("---\nlicense: mit\n---\n# m\n")
    for path in (repo / "model").glob("*.bin"):
        path.rename(path.with_suffix(".safetensors"))
    events: list[str] = []
    real_result = hashing.PendingHashes.result

    def result(self: hashing.PendingHashes) -> object:
        events.append("digests taken")
        return real_result(self)

    monkeypatch.setattr(hashing.PendingHashes, "result", result)
    monkeypatch.setattr(cyclonedx, "warm_up", lambda: events.append("renderer prepared"))
    scan_report(repo, select=())
    assert events == ["renderer prepared", "digests taken"]
    events.clear()
    # Unchanged weights: the hash cache answers, no hashing to overlap, nothing prepared
    # (the render memo may serve the BOM without the renderer).
    scan_report(repo, select=())
    assert events == ["digests taken"]
    events.clear()
    # The BOM's findings asked for, not the BOM: the weights hash, nothing to prepare.
    scan_report(repo, select=("MLS3",), build_bom=False)
    assert events == ["digests taken"]


def test_the_collector_pause_restores_what_it_found() -> None:
    import gc

    from mlsec.render.cyclonedx import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        made = [[i] for i in range(100)]  # long-lived, like the library's modules
    assert gc.isenabled()
    young = {id(o) for o in gc.get_objects(generation=0)}
    assert not young & {id(m) for m in made}  # frozen: no collection walks them again
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_added_files_are_hashed_once_and_all_come_back(tmp_path: Path) -> None:
    files = _weights(tmp_path, 3)
    pending = hashing.PendingHashes(files[:2], workers=2)
    pending.add(files)  # two already added, one new
    got = pending.result()
    assert got == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_the_weights_hash_from_before_the_builder_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.aibom import build

    repo = tmp_path / "repo"
    _weights(repo / "model", 2)
    for path in (repo / "model").glob("*.bin"):
        path.rename(path.with_suffix(".safetensors"))
    (repo / "model" / "config.json").write_text('{"architectures": ["X"]}')
    events: list[object] = []
    real_add, real_init = hashing.PendingHashes.add, build.AibomBuilder.__init__

    def record_add(self: hashing.PendingHashes, paths: object) -> None:
        paths = list(paths)  # type: ignore[call-overload]
        events.append(sorted(p.name for p in paths))
        real_add(self, paths)

    def init(self: build.AibomBuilder, *args: object, **kwargs: object) -> None:
        events.append("builder")
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing.PendingHashes, "add", record_add)
    monkeypatch.setattr(build.AibomBuilder, "__init__", init)
    report = scan_report(repo, select=())
    weights = ["w0.safetensors", "w1.safetensors"]
    assert events[:2] == [weights, "builder"]  # the weights first, then the builder
    assert events[2] == ["config.json", *weights]  # the model's files join (weights known)
    files = {f.path: f.sha256 for m in report.facts["aibom"].models for f in m.files}
    assert (
        files["model/w0.safetensors"]
        == hashlib.sha256((repo / "model" / "w0.safetensors").read_bytes()).hexdigest()
    )
