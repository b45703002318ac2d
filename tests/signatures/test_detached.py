"""Detached Sigstore bundles beside an artifact: <file>.sigstore.json and <file>.sigstore."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.signatures.helpers import (
    KEYLESS_IDENTITY,
    KEYLESS_ISSUER,
    REAL,
    b64,
    findings,
    key_policy,
    signed_statement_bundle,
    write_config,
)

DATA = b"model weights" * 100


def _message_bundle(key: ec.EllipticCurvePrivateKey, data: bytes, record_digest: bool) -> str:
    from mlsec.signatures.bundle import key_fingerprint

    digest = hashlib.sha256(data).digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    message: dict = {"signature": b64(signature)}
    if record_digest:
        message["messageDigest"] = {"algorithm": "SHA2_256", "digest": b64(digest)}
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "publicKey": {"hint": key_fingerprint(key.public_key())},
                "tlogEntries": [],
            },
            "messageSignature": message,
        }
    )


def _statement(data: bytes, name: str = "model.onnx") -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {},
    }


def _repo(tmp_path: Path, keypair, bundle: str, suffix: str = ".sigstore.json") -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "model.onnx").write_bytes(DATA)
    (root / f"model.onnx{suffix}").write_text(bundle)
    write_config(root, key_policy(keypair.public))
    return root


@pytest.mark.parametrize("suffix", [".sigstore.json", ".sigstore"])
@pytest.mark.parametrize("record_digest", [True, False])
def test_message_signature(tmp_path, keypair, scan_repo, suffix, record_digest):
    root = _repo(tmp_path, keypair, _message_bundle(keypair.key, DATA, record_digest), suffix)
    report = scan_repo(root)
    assert findings(report) == []
    (fact,) = report.facts["signatures"].signatures
    assert fact.verified and fact.kind == "sigstore-bundle" and fact.path == "model.onnx"
    assert fact.bundle == f"model.onnx{suffix}" and fact.files == ("model.onnx",)
    (root / "model.onnx").write_bytes(DATA + b"!")
    # with the digest recorded, a changed file is told apart from a bad signature
    expected = "MLS405" if record_digest else "MLS403"
    assert [f[0] for f in findings(scan_repo(root))] == [expected]


def test_dsse_statement_subject_must_match(tmp_path, keypair, scan_repo):
    root = _repo(tmp_path, keypair, signed_statement_bundle(_statement(DATA), keypair.key))
    assert findings(scan_repo(root)) == []
    (root / "model.onnx").write_bytes(b"other")
    report = scan_repo(root)
    assert findings(report) == [("MLS405", "high", "model.onnx")]
    assert "subject" in report.findings[0].message


def test_missing_artifact(tmp_path, keypair, scan_repo):
    root = _repo(tmp_path, keypair, signed_statement_bundle(_statement(DATA), keypair.key))
    (root / "model.onnx").unlink()
    assert findings(scan_repo(root)) == [("MLS406", "high", "model.onnx")]


def test_malformed_detached_bundle(tmp_path, keypair, scan_repo):
    root = _repo(tmp_path, keypair, '{"mediaType": "application/vnd.dev.sigstore.bundle')
    assert findings(scan_repo(root)) == [("MLS400", "high", "model.onnx.sigstore.json")]


def test_detached_bundle_from_unknown_key(tmp_path, keypair, new_key, scan_repo):
    other = new_key(tmp_path / "o", "o")
    root = _repo(tmp_path, keypair, _message_bundle(other.key, DATA, True))
    assert findings(scan_repo(root)) == [("MLS404", "high", "model.onnx.sigstore.json")]


def test_required_file_with_detached_signature(tmp_path, keypair, scan_repo):
    root = _repo(tmp_path, keypair, _message_bundle(keypair.key, DATA, True))
    (root / "unsigned.onnx").write_bytes(b"x")
    write_config(root, key_policy(keypair.public, 'required = ["*.onnx"]\n'))
    assert findings(scan_repo(root)) == [("MLS401", "high", "unsigned.onnx")]


def test_keyless_dsse_detached_bundle(tmp_path, scan_repo):
    """A real keyless DSSE bundle used as a detached bundle: the signature verifies offline
    (signer and root recorded), but the artifact is not its subject, so it is 'modified'."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "artifact.bin").write_bytes(b"not the subject")
    shutil.copy(REAL / "v1.1.0-sigstore" / "model.sig", root / "artifact.bin.sigstore.json")
    write_config(
        root,
        f'[signatures]\n[[signatures.signers]]\nidentity = "{KEYLESS_IDENTITY}"\n'
        f'issuer = "{KEYLESS_ISSUER}"\n',
    )
    report = scan_repo(root)
    assert findings(report) == [("MLS405", "high", "artifact.bin")]
    assert KEYLESS_IDENTITY in report.findings[0].message
    assert report.facts["signatures"].trusted_root.startswith("sigstore-python")


def test_detached_artifact_symlink_outside_is_not_read(tmp_path, keypair, scan_repo):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(DATA)
    root = tmp_path / "repo"
    root.mkdir()
    (root / "model.onnx").symlink_to(outside)
    (root / "model.onnx.sigstore.json").write_text(_message_bundle(keypair.key, DATA, True))
    write_config(root, key_policy(keypair.public))
    report = scan_repo(root)
    assert ("MLS405", "high", "model.onnx") in findings(report)
    assert not any(f.verified for f in report.facts["signatures"].signatures)
