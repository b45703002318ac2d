"""Crafted model-signing manifests: traversal, shards, other hashes, inconsistent digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.signatures.helpers import findings, key_policy, model_statement, write_config

WEIGHTS = bytes(range(256)) * 40  # 10240 bytes


def _repo(tmp_path: Path, keypair, statement: dict, files: dict[str, bytes]) -> Path:
    from tests.signatures.helpers import signed_statement_bundle

    root = tmp_path / "repo"
    model = root / "m"
    model.mkdir(parents=True)
    for name, data in files.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    (model / "model.sig").write_text(signed_statement_bundle(statement, keypair.key))
    write_config(root, key_policy(keypair.public))
    return root


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "name", ["../outside.txt", "/etc/passwd", "a/../../outside.txt", "C:/x", "a\\..\\b"]
)
def test_traversal_entry_is_rejected_and_not_read(tmp_path, keypair, scan_repo, name):
    secret = tmp_path / "outside.txt"
    secret.write_bytes(b"secret")
    statement = model_statement(
        [
            {"name": "w.bin", "algorithm": "sha256", "digest": _sha(WEIGHTS)},
            {"name": name, "algorithm": "sha256", "digest": _sha(b"secret")},
        ]
    )
    root = _repo(tmp_path, keypair, statement, {"w.bin": WEIGHTS})
    report = scan_repo(root)
    assert findings(report) == [("MLS408", "high", "m/model.sig")]
    assert report.findings[0].key == name
    assert not report.facts["signatures"].signatures[0].verified


def test_inconsistent_subject_digest_is_malformed(tmp_path, keypair, scan_repo):
    statement = model_statement([{"name": "w.bin", "algorithm": "sha256", "digest": _sha(b"x")}])
    statement["predicate"]["resources"][0]["digest"] = _sha(WEIGHTS)  # root digest now stale
    root = _repo(tmp_path, keypair, statement, {"w.bin": WEIGHTS})
    report = scan_repo(root)
    assert findings(report) == [("MLS400", "high", "m/model.sig")]
    assert "inconsistent" in report.findings[0].message


def test_unknown_predicate_is_malformed(tmp_path, keypair, scan_repo):
    statement = model_statement([{"name": "w.bin", "algorithm": "sha256", "digest": _sha(b"x")}])
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    root = _repo(tmp_path, keypair, statement, {"w.bin": WEIGHTS})
    assert findings(scan_repo(root)) == [("MLS400", "high", "m/model.sig")]


def test_blake2b_manifest(tmp_path, keypair, scan_repo):
    digest = hashlib.blake2b(WEIGHTS).hexdigest()
    statement = model_statement(
        [{"name": "w.bin", "algorithm": "blake2b", "digest": digest}],
        {"method": "files", "hash_type": "blake2", "allow_symlinks": False},
    )
    root = _repo(tmp_path, keypair, statement, {"w.bin": WEIGHTS})
    assert findings(scan_repo(root)) == []
    (root / "m" / "w.bin").write_bytes(WEIGHTS[:-1] + b"\0")
    assert findings(scan_repo(root)) == [("MLS405", "high", "m/w.bin")]


def _shards(data: bytes, size: int, name: str = "w.bin") -> list[dict[str, str]]:
    out = []
    for start in range(0, len(data), size):
        end = min(start + size, len(data))
        out.append(
            {
                "name": f"{name}:{start}:{end}",
                "algorithm": f"sha256-sharded-{size}",
                "digest": _sha(data[start:end]),
            }
        )
    return out


@pytest.mark.parametrize("shard_size", [4096, 4096.0])  # model-signing 1.1.1 writes floats
def test_shard_manifest(tmp_path, keypair, scan_repo, shard_size):
    statement = model_statement(
        _shards(WEIGHTS, 4096) + _shards(b"cfg", 4096, "c.json"),
        {
            "method": "shards",
            "hash_type": "sha256",
            "shard_size": shard_size,
            "allow_symlinks": False,
        },
    )
    root = _repo(tmp_path, keypair, statement, {"w.bin": WEIGHTS, "c.json": b"cfg"})
    report = scan_repo(root)
    assert findings(report) == []
    assert report.facts["signatures"].signatures[0].files == ("m/c.json", "m/w.bin")


def test_shard_manifest_detects_change_in_one_shard(tmp_path, keypair, scan_repo):
    statement = model_statement(
        _shards(WEIGHTS, 4096),
        {"method": "shards", "hash_type": "sha256", "shard_size": 4096, "allow_symlinks": False},
    )
    root = _repo(tmp_path, keypair, statement, {"w.bin": WEIGHTS})
    changed = bytearray(WEIGHTS)
    changed[5000] ^= 1
    (root / "m" / "w.bin").write_bytes(bytes(changed))
    assert findings(scan_repo(root)) == [("MLS405", "high", "m/w.bin")]
    (root / "m" / "w.bin").write_bytes(WEIGHTS + b"tail")
    report = scan_repo(root)
    assert findings(report) == [("MLS405", "high", "m/w.bin")]
    assert "size changed" in report.findings[0].message


def test_v02_manifest_compat(tmp_path, keypair, scan_repo):
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "w.bin", "digest": {"sha256": _sha(WEIGHTS)}}],
        "predicateType": "https://model_signing/Digests/v0.1",
        "predicate": {"unused": "x"},
    }
    root = _repo(tmp_path, keypair, statement, {"w.bin": WEIGHTS, "extra.bin": b"e"})
    assert findings(scan_repo(root)) == [("MLS407", "medium", "m/extra.bin")]


def test_symlink_entry_pointing_outside(tmp_path, keypair, scan_repo):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(WEIGHTS)
    statement = model_statement([{"name": "w.bin", "algorithm": "sha256", "digest": _sha(WEIGHTS)}])
    root = _repo(tmp_path, keypair, statement, {})
    (root / "m" / "w.bin").symlink_to(outside)
    rules = [f[0] for f in findings(scan_repo(root))]
    assert "MLS405" in rules  # not followed out of the folder, never accepted as intact


def test_parse_rejects_bad_shard_names():
    from mlsec.signatures.manifest import ManifestError, parse_statement

    statement = model_statement(
        [{"name": "w.bin:0", "algorithm": "sha256-sharded-10", "digest": _sha(b"x")}],
        {"method": "shards", "hash_type": "sha256", "shard_size": 10, "allow_symlinks": False},
    )
    import json

    with pytest.raises(ManifestError):
        parse_statement(json.dumps(statement).encode())


def test_safe_relpath():
    from mlsec.signatures.manifest import safe_relpath

    assert safe_relpath("a/b") == "a/b"
    assert safe_relpath("./a//b") == "a/b"
    assert safe_relpath(".") == "."
    for bad in ("", "/a", "../a", "a/..", "a/../../b", "a\\b", "a\0b", "C:x"):
        assert safe_relpath(bad) is None, bad
