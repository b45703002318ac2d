"""Hashing in threads while the caller works (mlsec.hashing.PendingHashes), and the AIBOM
analyzer's use of that window to prepare the renderer."""

from __future__ import annotations

import hashlib
import sys
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


def test_pending_hashes_are_right_and_restore_the_switch_interval(tmp_path: Path) -> None:
    files = _weights(tmp_path)
    before = sys.getswitchinterval()
    pending = hashing.PendingHashes(files, workers=2)
    assert sys.getswitchinterval() <= hashing.SWITCH_INTERVAL  # while the threads hash
    got = pending.result()
    assert sys.getswitchinterval() == before
    assert got == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_leaving_on_an_error_cancels_and_restores(tmp_path: Path) -> None:
    files = _weights(tmp_path)
    before = sys.getswitchinterval()
    with pytest.raises(KeyboardInterrupt), hashing.PendingHashes(files, workers=2):
        raise KeyboardInterrupt
    assert sys.getswitchinterval() == before
    assert not hashing._CANCELLED.is_set()


def test_cached_digests_start_no_threads(tmp_path: Path) -> None:
    files = _weights(tmp_path, 2)
    cache = hashing.HashCache(tmp_path / "hashes.json")
    first = hashing.hash_files(files, cache=cache)
    hashing._MEMO.clear()
    pending = hashing.PendingHashes(files, cache=hashing.HashCache(tmp_path / "hashes.json"))
    assert not pending.running  # nothing to read: no pool, switch interval untouched
    assert pending.result() == first


def test_the_bom_scan_prepares_the_renderer_while_the_weights_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.render import cyclonedx

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


def test_largest_files_are_hashed_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"a.bin": 10, "b.bin": 3000, "c.bin": 200, "d.bin": 3000 * 7}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    order: list[str] = []
    real = hashing.sha256_file_keyed

    def recorded(path: Path) -> tuple[str, str]:
        order.append(path.name)
        return real(path)

    monkeypatch.setattr(hashing, "sha256_file_keyed", recorded)
    got = hashing.hash_files([tmp_path / n for n in sizes], workers=1)
    assert order == ["d.bin", "b.bin", "c.bin", "a.bin"]
    assert set(got) == {tmp_path / n for n in sizes}


def test_the_collector_pause_restores_what_it_found() -> None:
    import gc

    from mlsec.render.cyclonedx import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
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
