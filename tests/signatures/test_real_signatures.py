"""Real model-signing signatures (Sigstore public-good, EC key, certificate chain), offline."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from tests.signatures.helpers import (
    KEYLESS_IDENTITY,
    KEYLESS_ISSUER,
    REAL,
    findings,
    write_config,
)

VERSIONS = ["v0.3.1", "v1.0.0", "v1.0.1", "v1.1.0"]
KEYLESS = [f"{v}-sigstore" for v in VERSIONS]
EC_KEY = [f"{v}-elliptic-key" for v in VERSIONS]
CERT = ["v0.2.0-certificate"] + [f"{v}-certificate" for v in VERSIONS]
KEY_FP = "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e"

KEYLESS_POLICY = f"""
[signatures]
ignore = ["ignore-me"]
[[signatures.signers]]
identity = "{KEYLESS_IDENTITY}"
issuer = "{KEYLESS_ISSUER}"
"""
KEY_POLICY = """
[signatures]
ignore = ["ignore-me"]
[[signatures.signers]]
public-key = "keys/certificate/signing-key-pub.pem"
"""
CHAIN_POLICY = """
[signatures]
ignore = ["ignore-me"]
[[signatures.signers]]
certificate-chain = ["keys/certificate/ca-cert.pem", "keys/certificate/int-ca-cert.pem"]
"""


def _only_fact(report: Any) -> Any:
    facts = report.facts["signatures"].signatures
    assert len(facts) == 1
    return facts[0]


def _expected_files(name: str) -> tuple[str, ...]:
    return tuple(
        sorted(f"{name}/{p.name}" for p in (REAL / name).iterdir() if p.name.startswith("signme"))
    )


@pytest.mark.parametrize("name", KEYLESS)
def test_keyless_signature_verifies_offline_with_identity(name, real_copy, scan_repo):
    root = real_copy(name)
    write_config(root, KEYLESS_POLICY)
    report = scan_repo(root)
    assert findings(report) == []
    fact = _only_fact(report)
    assert fact.verified and fact.kind == "model-signing"
    assert fact.signer == KEYLESS_IDENTITY and fact.issuer == KEYLESS_ISSUER
    assert fact.files == _expected_files(name)
    # the root used is the one bundled with sigstore-python, recorded with its digest
    import hashlib

    bundled = (
        resources.files("sigstore")
        / "_store"
        / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        / "trusted_root.json"
    ).read_bytes()
    digest = hashlib.sha256(bundled).hexdigest()
    assert fact.trusted_root and fact.trusted_root.endswith(f"sha256:{digest}")
    assert report.facts["signatures"].trusted_root == fact.trusted_root


@pytest.mark.parametrize("name", EC_KEY)
def test_elliptic_key_signature_verifies(name, real_copy, scan_repo):
    root = real_copy(name)
    write_config(root, KEY_POLICY)
    report = scan_repo(root)
    assert findings(report) == []
    fact = _only_fact(report)
    assert fact.verified
    assert fact.signer == f"public key sha256:{KEY_FP} (signing-key-pub.pem)"
    assert fact.files == _expected_files(name)
    assert fact.trusted_root is None  # no Sigstore trust involved


@pytest.mark.parametrize("name", CERT)
def test_certificate_chain_signature_verifies(name, real_copy, scan_repo):
    root = real_copy(name)
    write_config(root, CHAIN_POLICY)
    report = scan_repo(root)
    assert findings(report) == []
    fact = _only_fact(report)
    assert fact.verified and fact.signer == "CN=intermediate-ca"
    assert fact.files == _expected_files(name)


def test_wrong_identity_is_signer_not_allowed(real_copy, scan_repo):
    root = real_copy("v1.0.0-sigstore")
    write_config(
        root,
        KEYLESS_POLICY.replace(KEYLESS_IDENTITY, "someone-else@example.com"),
    )
    report = scan_repo(root)
    assert findings(report) == [("MLS404", "high", "v1.0.0-sigstore/model.sig")]
    assert KEYLESS_IDENTITY in report.findings[0].message
    assert not _only_fact(report).verified


def test_wrong_issuer_is_signer_not_allowed(real_copy, scan_repo):
    root = real_copy("v1.1.0-sigstore")
    write_config(root, KEYLESS_POLICY.replace(KEYLESS_ISSUER, "https://accounts.google.com"))
    assert findings(scan_repo(root)) == [("MLS404", "high", "v1.1.0-sigstore/model.sig")]


def test_wrong_key_is_signer_not_allowed(real_copy, scan_repo, keypair):
    root = real_copy("v1.1.0-elliptic-key")
    write_config(root, f'[signatures]\n[[signatures.signers]]\npublic-key = "{keypair.public}"\n')
    report = scan_repo(root)
    assert findings(report) == [("MLS404", "high", "v1.1.0-elliptic-key/model.sig")]
    assert KEY_FP in report.findings[0].message


def test_keyless_signature_against_key_only_policy_is_not_allowed(real_copy, scan_repo):
    root = real_copy("v1.0.1-sigstore")
    write_config(root, KEY_POLICY)
    report = scan_repo(root)
    assert findings(report) == [("MLS404", "high", "v1.0.1-sigstore/model.sig")]


def test_wrong_chain_is_signer_not_allowed(real_copy, scan_repo, tmp_path):
    root = real_copy("v1.1.0-certificate")
    # the signing certificate itself is no trust anchor for another CA's chain
    from cryptography.hazmat.primitives import serialization

    from tests.signatures.helpers import make_key

    other = make_key(tmp_path / "other")
    ca = _self_signed(other.key)
    (root / "other-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write_config(
        root, '[signatures]\n[[signatures.signers]]\ncertificate-chain = ["other-ca.pem"]\n'
    )
    assert findings(scan_repo(root)) == [("MLS404", "high", "v1.1.0-certificate/model.sig")]


def _self_signed(key: Any) -> Any:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other-ca")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_wrong_trusted_root_is_unverifiable(real_copy, scan_repo):
    """The staging root does not know the production Fulcio CA: not verifiable, not 'valid'."""
    staging = (
        resources.files("sigstore")
        / "_store"
        / "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev"
        / "trusted_root.json"
    )
    root = real_copy("v1.0.0-sigstore")
    staging_file = root / "staging_root.json"
    staging_file.write_bytes(staging.read_bytes())
    write_config(root, KEYLESS_POLICY)
    report = scan_repo(root, trusted_root=staging_file)
    assert findings(report) == [("MLS402", "medium", "v1.0.0-sigstore/model.sig")]
    assert "--trusted-root" in report.findings[0].message
    assert str(staging_file) in report.facts["signatures"].trusted_root
    # the same root named in [signatures] trusted-root
    write_config(
        root,
        KEYLESS_POLICY.replace(
            "[signatures]\n", '[signatures]\ntrusted-root = "staging_root.json"\n'
        ),
    )
    assert findings(scan_repo(root)) == [("MLS402", "medium", "v1.0.0-sigstore/model.sig")]


def test_unreadable_trusted_root_is_a_config_error(real_copy, scan_repo):
    from mlsec.errors import ConfigError

    root = real_copy("v1.0.0-sigstore")
    write_config(root, KEYLESS_POLICY)
    (root / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="trusted root"):
        scan_repo(root, trusted_root=root / "bad.json")
    with pytest.raises(ConfigError, match="cannot read trusted root"):
        scan_repo(root, trusted_root=root / "absent.json")


def test_v101_uncovered_file_needs_an_ignore(real_copy, scan_repo):
    """v1.0.1 did not record ignored paths: ignore-me is 'not covered' unless configured.
    (The walker skips empty files, so give it content.)"""
    root = real_copy("v1.0.1-elliptic-key")
    (root / "v1.0.1-elliptic-key" / "ignore-me").write_text("extra")
    write_config(root, KEY_POLICY.replace('ignore = ["ignore-me"]\n', ""))
    report = scan_repo(root)
    assert findings(report) == [("MLS407", "medium", "v1.0.1-elliptic-key/ignore-me")]
    assert not _only_fact(report).verified


def test_v110_records_its_ignore_paths(real_copy, scan_repo):
    root = real_copy("v1.1.0-sigstore")
    write_config(root, KEYLESS_POLICY.replace('ignore = ["ignore-me"]\n', ""))
    assert findings(scan_repo(root)) == []


def test_tampered_real_signature_is_invalid(real_copy, scan_repo):
    import base64
    import json

    root = real_copy("v1.0.0-sigstore")
    sig = root / "v1.0.0-sigstore" / "model.sig"
    bundle = json.loads(sig.read_text())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(
        payload.replace(b"signme-2", b"signme-3")
    ).decode()
    sig.write_text(json.dumps(bundle))
    write_config(root, KEYLESS_POLICY)
    assert findings(scan_repo(root)) == [("MLS403", "high", "v1.0.0-sigstore/model.sig")]


def test_modified_file_under_real_signature(real_copy, scan_repo):
    root = real_copy("v1.1.0-certificate")
    (root / "v1.1.0-certificate" / "signme-2").write_text("changed")
    write_config(root, CHAIN_POLICY)
    report = scan_repo(root)
    assert findings(report) == [("MLS405", "high", "v1.1.0-certificate/signme-2")]
    assert _only_fact(report).files == ("v1.1.0-certificate/signme-1",)


def test_all_real_signatures_in_one_repository(tmp_path, scan_repo):
    import shutil

    root = tmp_path / "all"
    shutil.copytree(REAL, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    write_config(
        root,
        f"""
[signatures]
ignore = ["v1.0.1-*/ignore-me"]
[[signatures.signers]]
identity = "{KEYLESS_IDENTITY}"
issuer = "{KEYLESS_ISSUER}"
[[signatures.signers]]
public-key = "keys/certificate/signing-key-pub.pem"
[[signatures.signers]]
certificate-chain = ["keys/certificate/ca-cert.pem", "keys/certificate/int-ca-cert.pem"]
""",
    )
    report = scan_repo(root, fail_on=None)
    assert findings(report) == []
    facts = report.facts["signatures"].signatures
    assert len(facts) == 13 and all(f.verified for f in facts)


def test_fixture_license_is_kept():
    assert "Apache License" in (REAL / "LICENSE").read_text()
    assert (REAL / "README.txt").is_file()
