"""Helpers for the signature tests: EC keys, crafted bundles, scans with a policy.

Imported by the tests as ``tests.signatures.helpers``; fixtures are in conftest.py."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "fixtures" / "signatures" / "model-signing"
KEYLESS_IDENTITY = "stefanb@us.ibm.com"
KEYLESS_ISSUER = "https://sigstore.verify.ibm.com/oauth2"


@dataclass
class KeyPair:
    key: ec.EllipticCurvePrivateKey
    private: Path
    public: Path


def make_key(folder: Path, name: str = "key", curve: ec.EllipticCurve | None = None) -> KeyPair:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(key, private, public)


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys")


@pytest.fixture
def new_key() -> Callable[..., KeyPair]:
    return make_key


def signed_statement_bundle(statement: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """A model-signing style bundle (publicKey material) over an arbitrary statement."""
    from mlsec.signatures.sign import bundle_with_key

    payload = json.dumps(statement).encode()
    return json.dumps(bundle_with_key(payload, key))


def model_statement(
    resources: list[dict[str, str]], serialization: dict[str, Any] | None = None, name: str = "m"
) -> dict[str, Any]:
    root = hashlib.sha256()
    for r in resources:
        root.update(bytes.fromhex(r["digest"]))
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": root.hexdigest()}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": serialization
            or {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": resources,
        },
    }


@pytest.fixture
def craft() -> Any:
    class Craft:
        statement = staticmethod(model_statement)
        bundle = staticmethod(signed_statement_bundle)

    return Craft


def write_config(root: Path, body: str) -> None:
    (root / ".mlsec.toml").write_text("offline = true\n" + body, encoding="utf-8")


def key_policy(public: Path, extra: str = "") -> str:
    """A policy trusting one public key; ``extra`` lines go in the [signatures] table."""
    return f'[signatures]\n{extra}[[signatures.signers]]\npublic-key = "{public.as_posix()}"\n'


@pytest.fixture
def scan_repo() -> Callable[..., Any]:
    """Scan ``root`` offline through the library (no git), signatures analyzer only."""
    from mlsec.config import build_options
    from mlsec.scan import scan

    def _scan(root: Path, **flags: Any) -> Any:
        flags.setdefault("offline", True)
        flags.setdefault("use_git", False)
        options = build_options(root, **flags)
        return scan(options, analyzers=("mlsec.analyzers.signatures:SignaturesAnalyzer",))

    return _scan


@pytest.fixture
def real_copy(tmp_path: Path) -> Callable[[str], Path]:
    """A writable copy of one real signed model folder inside a fresh repository."""

    def _copy(name: str) -> Path:
        root = tmp_path / "repo"
        root.mkdir(exist_ok=True)
        shutil.copytree(REAL / name, root / name)
        shutil.copytree(REAL / "keys", root / "keys", dirs_exist_ok=True)
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        return root

    return _copy


def findings(report: Any) -> list[tuple[str, str, str]]:
    return sorted((f.rule_id, f.severity.value, f.path) for f in report.findings)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
