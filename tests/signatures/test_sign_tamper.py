"""Sign with `mlsec sign`, then tamper: each failure state is its own rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.signatures.helpers import KeyPair, findings, key_policy, make_key, write_config


def _model(root: Path) -> Path:
    model = root / "models" / "bert"
    (model / "sub").mkdir(parents=True)
    (model / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (model / "config.json").write_text('{"hidden": 8}')
    (model / "sub" / "tokenizer.json").write_text('{"vocab": []}')
    return model


def _signed_repo(tmp_path: Path, keypair: KeyPair, extra_config: str = "") -> tuple[Path, Path]:
    from mlsec.signatures.sign import sign_model

    root = tmp_path / "repo"
    model = _model(root)
    sign_model(model, key=keypair.private)
    write_config(root, key_policy(keypair.public, extra_config))
    return root, model


def _fact(report: Any) -> Any:
    (fact,) = report.facts["signatures"].signatures
    return fact


def test_signed_model_verifies(tmp_path, keypair, scan_repo):
    root, _ = _signed_repo(tmp_path, keypair)
    report = scan_repo(root)
    assert findings(report) == []
    fact = _fact(report)
    assert fact.verified and fact.path == "models/bert" and fact.bundle == "models/bert/model.sig"
    assert fact.files == (
        "models/bert/config.json",
        "models/bert/sub/tokenizer.json",
        "models/bert/weights.safetensors",
    )
    assert fact.signer.startswith("public key sha256:")


def test_modified_file(tmp_path, keypair, scan_repo):
    root, model = _signed_repo(tmp_path, keypair)
    (model / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}     X")
    report = scan_repo(root)
    assert findings(report) == [("MLS405", "high", "models/bert/weights.safetensors")]
    assert "signed by public key" in report.findings[0].message
    assert not _fact(report).verified
    assert report.exit_code == 1


def test_deleted_file(tmp_path, keypair, scan_repo):
    root, model = _signed_repo(tmp_path, keypair)
    (model / "sub" / "tokenizer.json").unlink()
    assert findings(scan_repo(root)) == [("MLS406", "high", "models/bert/sub/tokenizer.json")]


def test_added_file(tmp_path, keypair, scan_repo):
    root, model = _signed_repo(tmp_path, keypair)
    (model / "extra.pkl").write_bytes(b"\x80\x04N.")
    report = scan_repo(root)
    assert findings(report) == [("MLS407", "medium", "models/bert/extra.pkl")]
    assert report.findings[0].key == "models/bert/model.sig"


def test_added_file_ignored_by_config(tmp_path, keypair, scan_repo):
    root, model = _signed_repo(tmp_path, keypair)
    (model / "README.md").write_text("# bert")
    (model / "notes").mkdir()
    (model / "notes" / "a.txt").write_text("x")
    (root / ".mlsec.toml").write_text(
        (root / ".mlsec.toml")
        .read_text()
        .replace("[signatures]\n", '[signatures]\nignore = ["README.md", "models/bert/notes"]\n')
    )
    assert findings(scan_repo(root)) == []


def test_ignore_given_when_signing(tmp_path, keypair, scan_repo):
    from mlsec.signatures.sign import sign_model

    root = tmp_path / "repo"
    model = _model(root)
    (model / "README.md").write_text("# bert")
    signed = sign_model(model, key=keypair.private, ignore=["README.md"])
    assert "README.md" not in signed.files
    write_config(root, key_policy(keypair.public))
    assert findings(scan_repo(root)) == []  # the signature records README.md as ignored
    (model / "README.md").write_text("# changed")
    assert findings(scan_repo(root)) == []


def test_signature_from_other_key(tmp_path, keypair, scan_repo):
    from mlsec.signatures.sign import sign_model

    root, model = _signed_repo(tmp_path, keypair)
    other = make_key(tmp_path / "other", "other")
    sign_model(model, key=other.private)  # re-signed by someone else
    report = scan_repo(root)
    assert findings(report) == [("MLS404", "high", "models/bert/model.sig")]


def test_forged_signature_bytes_are_invalid(tmp_path, keypair, scan_repo):
    root, model = _signed_repo(tmp_path, keypair)
    sig = model / "model.sig"
    bundle = json.loads(sig.read_text())
    other = make_key(tmp_path / "other", "other")
    import base64

    from mlsec.signatures.sign import bundle_with_key

    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    forged = bundle_with_key(payload, other.key)
    # keep the hint naming the trusted key, with another key's signature
    forged["verificationMaterial"] = bundle["verificationMaterial"]
    sig.write_text(json.dumps(forged))
    assert findings(scan_repo(root)) == [("MLS403", "high", "models/bert/model.sig")]


@pytest.mark.parametrize(
    "content",
    ["", "not json", "{}", '{"mediaType": "text/plain"}', "[1, 2]", "\x00\xff garbage"],
)
def test_malformed_bundle(tmp_path, keypair, scan_repo, content):
    root, model = _signed_repo(tmp_path, keypair)
    (model / "model.sig").write_text(content, encoding="utf-8", errors="surrogateescape")
    report = scan_repo(root)
    assert findings(report) == [("MLS400", "high", "models/bert/model.sig")]
    assert report.errors == ()


def test_bad_base64_is_malformed(tmp_path, keypair, scan_repo):
    root, model = _signed_repo(tmp_path, keypair)
    sig = model / "model.sig"
    bundle = json.loads(sig.read_text())
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = "%%%not-base64%%%"
    sig.write_text(json.dumps(bundle))
    assert findings(scan_repo(root)) == [("MLS400", "high", "models/bert/model.sig")]


def test_sign_single_file(tmp_path, keypair, scan_repo):
    from mlsec.signatures.sign import sign_model

    root = tmp_path / "repo"
    (root / "m").mkdir(parents=True)
    model_file = root / "m" / "model.gguf"
    model_file.write_bytes(b"GGUF" + b"\0" * 60)
    (root / "m" / "other.bin").write_bytes(b"unrelated")
    sign_model(model_file, key=keypair.private)
    write_config(root, key_policy(keypair.public, 'required = ["m/model.gguf"]\n'))
    report = scan_repo(root)
    # the signature covers only the file it was made for; other.bin is not part of that model
    assert findings(report) == []
    assert _fact(report).files == ("m/model.gguf",)
    model_file.write_bytes(b"GGUF" + b"\1" * 60)
    assert findings(scan_repo(root)) == [("MLS405", "high", "m/model.gguf")]


def test_sign_p384_key(tmp_path, scan_repo):
    from cryptography.hazmat.primitives.asymmetric import ec

    keypair = make_key(tmp_path / "k", curve=ec.SECP384R1())
    root, _ = _signed_repo(tmp_path, keypair)
    assert findings(scan_repo(root)) == []


def test_sign_rejects_non_ec_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from mlsec.errors import MlsecError
    from mlsec.signatures.sign import sign_model

    key = tmp_path / "ed.pem"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    model = _model(tmp_path / "r")
    with pytest.raises(MlsecError, match="elliptic-curve"):
        sign_model(model, key=key)


def test_required_paths(tmp_path, keypair, scan_repo):
    root, _ = _signed_repo(tmp_path, keypair, 'required = ["models/**"]\n')
    (root / "models" / "unsigned").mkdir()
    (root / "models" / "unsigned" / "w.bin").write_bytes(b"weights")
    (root / "src.py").write_text("print(1)")
    report = scan_repo(root)
    assert findings(report) == [("MLS401", "high", "models/unsigned/w.bin")]


def test_required_path_under_broken_signature_reports_the_signature_only(
    tmp_path, keypair, scan_repo
):
    root, model = _signed_repo(tmp_path, keypair, 'required = ["models/**"]\n')
    (model / "model.sig").write_text("{broken")
    assert findings(scan_repo(root)) == [("MLS400", "high", "models/bert/model.sig")]


def test_no_policy_reports_info_and_does_not_verify(tmp_path, keypair, scan_repo):
    from mlsec.signatures.sign import sign_model

    root = tmp_path / "repo"
    model = _model(root)
    sign_model(model, key=keypair.private)
    report = scan_repo(root)
    assert findings(report) == [("MLS409", "info", "models/bert/model.sig")]
    assert not _fact(report).verified


def test_model_signing_verifies_mlsec_signature(tmp_path, keypair):
    """Interoperability: the model-signing library (1.1.x) accepts what `mlsec sign` writes."""
    model_signing = pytest.importorskip("model_signing")
    pytest.importorskip("OpenSSL")  # model-signing imports pyOpenSSL without declaring it
    from mlsec.signatures.sign import sign_model

    model = _model(tmp_path / "r")
    sign_model(model, key=keypair.private)
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    config = (
        model_signing.verifying.Config()
        .use_elliptic_key_verifier(public_key=keypair.public)
        .set_hashing_config(hashing)
    )
    config.verify(model, model / "model.sig")
    (model / "config.json").write_text("{}")
    with pytest.raises(ValueError):
        config.verify(model, model / "model.sig")


def test_mlsec_verifies_model_signing_signature(tmp_path, keypair, scan_repo):
    """And the other way round: a signature written by model-signing verifies in mlsec."""
    model_signing = pytest.importorskip("model_signing")
    pytest.importorskip("OpenSSL")
    root = tmp_path / "repo"
    model = _model(root)
    (
        model_signing.signing.Config()
        .use_elliptic_key_signer(private_key=keypair.private)
        .set_hashing_config(model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"]))
        .sign(model, model / "model.sig")
    )
    write_config(root, key_policy(keypair.public))
    assert findings(scan_repo(root)) == []


def test_certificate_signing_roundtrip(tmp_path, scan_repo):
    """`mlsec sign --certificate` verifies in mlsec and in model-signing."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from mlsec.signatures.sign import sign_model

    ca = make_key(tmp_path / "ca", "ca")
    leaf = make_key(tmp_path / "leaf", "leaf")
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    end = start + datetime.timedelta(days=30)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca.key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca.key, hashes.SHA256())
    )
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model-signer")]))
        .issuer_name(ca_name)
        .public_key(leaf.key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    ca_pem = tmp_path / "ca.crt"
    leaf_pem = tmp_path / "leaf.crt"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    leaf_pem.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    root = tmp_path / "repo"
    model = _model(root)
    sign_model(model, key=leaf.private, certificate=leaf_pem, chain=[ca_pem])
    write_config(root, f'[signatures]\n[[signatures.signers]]\ncertificate-chain = ["{ca_pem}"]\n')
    report = scan_repo(root)
    assert findings(report) == []
    assert _fact(report).signer == "CN=model-signer"

    model_signing = pytest.importorskip("model_signing")
    pytest.importorskip("OpenSSL")
    (
        model_signing.verifying.Config()
        .use_certificate_verifier(certificate_chain=[ca_pem])
        .set_hashing_config(model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"]))
        .verify(model, model / "model.sig")
    )


def test_ignore_globs_are_recorded_as_paths_model_signing_understands(tmp_path, keypair):
    """model-signing reads recorded ignore paths literally, so globs are expanded."""
    model_signing = pytest.importorskip("model_signing")
    pytest.importorskip("OpenSSL")
    from mlsec.signatures.sign import sign_model

    model = _model(tmp_path / "r")
    (model / "notes.md").write_text("n")
    (model / "logs").mkdir()
    (model / "logs" / "a.log").write_text("l")
    signed = sign_model(model, key=keypair.private, ignore=["*.md", "logs"])
    payload = json.loads(
        __import__("base64").b64decode(
            json.loads((model / "model.sig").read_text())["dsseEnvelope"]["payload"]
        )
    )
    recorded = payload["predicate"]["serialization"]["ignore_paths"]
    assert "notes.md" in recorded and "logs" in recorded and "*.md" not in recorded
    assert "notes.md" not in signed.files
    # model-signing, guessing its configuration from the signature, accepts the folder
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=keypair.public).verify(
        model, model / "model.sig"
    )


def test_lfs_pointer_to_the_signed_content_counts_as_signed(tmp_path, keypair, scan_repo):
    """CI checkouts without LFS hold pointers; a pointer whose oid is the signed sha256
    commits to the signed bytes, a pointer to other content is a modification."""
    import hashlib

    root, model = _signed_repo(tmp_path, keypair)
    weights = model / "weights.safetensors"
    data = weights.read_bytes()

    def pointer(oid: str, size: int) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
        ).encode()

    weights.write_bytes(pointer(hashlib.sha256(data).hexdigest(), len(data)))
    report = scan_repo(root)
    assert [f for f in findings(report) if f[0].startswith("MLS4")] == []
    assert "models/bert/weights.safetensors" in _fact(report).files
    weights.write_bytes(pointer(hashlib.sha256(b"other").hexdigest(), 5))
    report = scan_repo(root)
    assert [f for f in findings(report) if f[0].startswith("MLS4")] == [
        ("MLS405", "high", "models/bert/weights.safetensors")
    ]
    assert "LFS pointer" in report.findings[0].message


def test_added_empty_file_is_not_covered(tmp_path, keypair, scan_repo):
    root, model = _signed_repo(tmp_path, keypair)
    (model / "empty.bin").write_bytes(b"")
    assert findings(scan_repo(root)) == [("MLS407", "medium", "models/bert/empty.bin")]
