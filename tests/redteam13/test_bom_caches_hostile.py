"""The other caches under the cache folder, read back as untrusted: the BOM validation memo
and its rendered documents (mlsec/render/cyclonedx.py's ValidationMemo), the hash cache
(mlsec/hashing.py, the lead's: xfails), and what a cached per-file result depends on."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlsec import resultcache
from tests.redteam13.conftest import load


def _weights(repo: Path) -> Path:
    from safetensors.numpy import save_file

    repo.mkdir(parents=True, exist_ok=True)
    import numpy as np

    path = repo / "model.safetensors"
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(path))
    return path


def _bom(cli: Any, repo: Path, cache: Path, out: Path) -> Any:
    proc = cli("scan", repo, "--no-git", "--cache-dir", cache, "-f", "cyclonedx", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr
    return load(out)


def _comparable(bom: dict[str, Any]) -> dict[str, Any]:
    bom = dict(bom)
    bom.pop("serialNumber", None)
    bom["metadata"] = {k: v for k, v in bom["metadata"].items() if k != "timestamp"}
    return bom


# -- the validation memo ---------------------------------------------------------------------------
MEMO_DAMAGE = [
    ("digests-int", '{"version": 1, "digests": 5}'),
    ("digests-null", '{"version": 1, "digests": null}'),
    ("digests-dict", '{"version": 1, "digests": {"a": 1}}'),
    ("digests-numbers", '{"version": 1, "digests": [1, 2.5, true]}'),
    ("list", "[1, 2]"),
    ("string", '"x"'),
    ("deep", "[" * 100_000),
    ("truncated", '{"version": 1, "digests": ["ab'),
    ("binary", "\x00\xff\xfe"),
]


@pytest.mark.parametrize(("name", "text"), MEMO_DAMAGE, ids=[d[0] for d in MEMO_DAMAGE])
def test_a_damaged_validation_memo_is_an_empty_memo(
    tmp_path: Path, cli: Any, name: str, text: str
) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _weights(repo)
    first = _bom(cli, repo, cache, tmp_path / "a.json")
    (cache / "bom-validated.json").write_text(text, encoding="latin-1")
    again = _bom(cli, repo, cache, tmp_path / "b.json")
    assert _comparable(again) == _comparable(first)
    digests = load(cache / "bom-validated.json")["digests"]  # rewritten whole
    assert len(digests) == 1 and len(digests[0]) == 64


TEMPLATE_DAMAGE = [
    ("text", "garbage"),
    ("list", "[1, 2]"),
    ("metadata-int", '{"metadata": 5}'),
    ("deep", "[" * 100_000),
    ("empty", ""),
    ("binary", "\xff\xfe\x00"),
    ("other-bom", '{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}'),
]


@pytest.mark.parametrize(("name", "text"), TEMPLATE_DAMAGE, ids=[d[0] for d in TEMPLATE_DAMAGE])
def test_a_damaged_rendered_document_is_built_anew(
    tmp_path: Path, cli: Any, name: str, text: str
) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _weights(repo)
    first = _bom(cli, repo, cache, tmp_path / "a.json")
    (kept,) = (cache / "bom-render").glob("*.json")
    kept.write_text(text, encoding="latin-1")
    again = _bom(cli, repo, cache, tmp_path / "b.json")
    assert _comparable(again) == _comparable(first)


@pytest.mark.parametrize("make", ["fifo", "dir", "zero"])
def test_memo_files_that_are_not_files_are_not_read(tmp_path: Path, make: str) -> None:
    """A fresh process with a deadline: a blocking open of a FIFO would hang."""
    from tests.conftest import run_cli

    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _weights(repo)
    argv = ("scan", repo, "--no-git", "--cache-dir", cache, "-f", "cyclonedx")
    first = run_cli(*argv)
    assert first.returncode == 0, first.stderr
    (kept,) = (cache / "bom-render").glob("*.json")
    for victim in (kept, cache / "bom-validated.json"):
        victim.unlink()
        if make == "fifo":
            os.mkfifo(victim)
        elif make == "dir":
            victim.mkdir()
        else:
            victim.symlink_to("/dev/zero")
    proc = run_cli(*argv, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert _comparable(json.loads(proc.stdout)) == _comparable(json.loads(first.stdout))


def test_a_memo_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    """A digest planted in a memo someone else may write does not skip validation."""
    from mlsec.render.cyclonedx import ValidationMemo

    memo_file = tmp_path / "bom-validated.json"
    digest = "ab" * 32
    ValidationMemo(memo_file).add(digest)
    assert digest in ValidationMemo(memo_file)
    assert memo_file.stat().st_mode & 0o077 == 0  # written private, whatever the umask
    memo_file.chmod(0o666)
    assert digest not in ValidationMemo(memo_file)
    assert "" not in ValidationMemo(memo_file)  # the key of a damaged document


def test_memo_writes_never_follow_a_planted_link(tmp_path: Path) -> None:
    """A name planted in the memo folder (the old fixed temporary name) is not written
    through."""
    from mlsec.render.cyclonedx import ValidationMemo

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    memo_file = tmp_path / "cache" / "bom-validated.json"
    memo_file.parent.mkdir()
    (memo_file.parent / f"bom-validated.{os.getpid()}.tmp").symlink_to(victim)
    ValidationMemo(memo_file).add("cd" * 32)
    assert victim.read_text() == "keep me"
    assert ValidationMemo(memo_file).digests == ["cd" * 32]


# -- the hash cache (mlsec/hashing.py: the lead's) ------------------------------------------------
def _poison_hashes(cache: Path, digest: str) -> None:
    path = cache / "hashes.json"
    data = load(path)
    for entry in data["entries"].values():
        entry[1] = digest
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("digest", ["<script>zz", "AB" * 32 + "\n", "0" * 10_000])
def test_a_hash_cache_entry_that_is_no_digest_is_a_miss(
    tmp_path: Path, cli: Any, digest: str
) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _weights(repo)
    first = _bom(cli, repo, cache, tmp_path / "a.json")
    _poison_hashes(cache, digest)
    again = _bom(cli, repo, cache, tmp_path / "b.json")
    assert _comparable(again) == _comparable(first)


def test_the_hash_cache_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _weights(repo)
    cache.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (cache / "hashes.tmp").symlink_to(victim)
    proc = run_cli("scan", repo, "--no-git", "--cache-dir", cache, "-f", "cyclonedx")
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me"
    assert not (cache / "hashes.json").is_symlink()


def test_a_damaged_hash_cache_file_is_a_miss(tmp_path: Path, cli: Any) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _weights(repo)
    first = _bom(cli, repo, cache, tmp_path / "a.json")
    for text in ("[" * 100_000, "garbage", '{"version": 2, "entries": [1]}'):
        (cache / "hashes.json").write_text(text)
        again = _bom(cli, repo, cache, tmp_path / "b.json")
        assert _comparable(again) == _comparable(first)


def test_signatures_never_take_a_digest_from_the_hash_cache(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weights changed after signing, and the hash cache poisoned with the signed digest
    under the changed file's identity: the signature check hashes the bytes (MLS405)."""
    from mlsec.hashing import sha256_file_keyed
    from mlsec.signatures.sign import sign_model
    from tests.signatures.helpers import key_policy, make_key, write_config

    repo, cache = tmp_path / "repo", tmp_path / "cache"
    model = repo / "models" / "m"
    weights = _weights(model)
    keys = make_key(tmp_path / "keys")
    sign_model(model, key=keys.private)
    write_config(repo, key_policy(keys.public))
    signed_digest, _ = sha256_file_keyed(weights)
    report, bom = tmp_path / "r.json", tmp_path / "bom.json"
    argv = ("scan", repo, "--no-git", "--cache-dir", cache, "--fail-on", "none",
            "-o", f"json={report}", "-o", f"cyclonedx={bom}")  # fmt: skip
    proc = cli(*argv)
    assert proc.returncode == 0, proc.stderr
    assert load(report)["findings"] == []  # signed and verified
    weights.write_bytes(weights.read_bytes()[:-1] + b"!")
    _, key = sha256_file_keyed(weights)
    cache.mkdir(exist_ok=True)
    (cache / "hashes.json").write_text(
        json.dumps({"version": 2, "entries": {str(weights): [key, signed_digest]}})
    )
    assert cli(*argv).returncode == 0
    found = {(f["rule_id"], f["path"]) for f in load(report)["findings"]}
    assert ("MLS405", "models/m/model.safetensors") in found


# -- what a cached result depends on beyond its file ---------------------------------------------
def test_an_onnx_external_data_folder_swapped_for_a_link_out_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.generate_formats import onnx_external_data_bytes
    from mlsec.config import ScanOptions
    from mlsec.scan import scan

    monkeypatch.setattr(resultcache, "RACY_NS", 0)
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "w.bin").write_bytes(b"\0" * 64)
    (repo / "m.onnx").write_bytes(onnx_external_data_bytes("data/w.bin"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(b"\0" * 64)
    options = ScanOptions(path=repo, jobs=1, cache_dir=cache)
    assert "MLS147" not in {f.rule_id for f in scan(options).findings}
    (repo / "data" / "w.bin").unlink()
    (repo / "data").rmdir()
    (repo / "data").symlink_to(outside)
    fresh = scan(options._replace(use_cache=False))
    assert ("MLS147", "m.onnx") in {(f.rule_id, f.path) for f in fresh.findings}
    cached = scan(options)
    assert ("MLS147", "m.onnx") in {(f.rule_id, f.path) for f in cached.findings}


def test_a_cache_folder_inside_the_scanned_tree_cannot_dictate_the_bom(
    tmp_path: Path, cli: Any
) -> None:
    from mlsec.render.cyclonedx import ValidationMemo

    repo = tmp_path / "repo"
    _weights(repo)
    honest = _bom(cli, repo, tmp_path / "private-cache", tmp_path / "honest.json")
    # What a pull request commits: the rendered document of its own BOM, forged (the model
    # gone, the repository's claims instead), and the memo saying it validated.
    planted = repo / ".mlsec-cache"
    elsewhere = tmp_path / "made-elsewhere"
    _bom(cli, repo, elsewhere, tmp_path / "scratch.json")
    shutil.copytree(elsewhere / "bom-render", planted / "bom-render")
    (kept,) = (planted / "bom-render").glob("*.json")
    forged = json.loads(kept.read_text())
    forged["components"] = []
    forged["dependencies"] = []
    text = json.dumps(forged)
    kept.write_text(text)
    cdx_version = honest["specVersion"]
    tool = next(iter(honest["metadata"]["tools"]["components"]))["version"]
    memo = ValidationMemo(planted / "bom-validated.json")
    memo.add(ValidationMemo.key(text, "json", cdx_version, tool))
    got = _bom(cli, repo, planted, tmp_path / "got.json")
    assert [c["bom-ref"] for c in got["components"]] == [c["bom-ref"] for c in honest["components"]]
    assert not (planted / "bom-render" / "x").exists() and kept.read_text() == text  # unused


def test_a_hash_cache_writable_by_others_is_not_read(tmp_path: Path) -> None:
    from mlsec.hashing import HashCache, hash_files

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w")
    store = tmp_path / "hashes.json"
    HashCache(store).put(weights, "0" * 64)
    cache = HashCache(store)
    cache.put(weights, "0" * 64)
    cache.save()
    assert HashCache(store).get(weights) == "0" * 64  # the user's own, 0600: read
    store.chmod(0o666)
    assert HashCache(store).get(weights) is None  # anyone may have written it: not read
    assert hash_files([weights], cache=HashCache(store))[weights] != "0" * 64
