"""``mlsec sign``: write an OpenSSF model-signing ``model.sig`` for a model folder or file.

The signature is the same document ``model-signing sign key|certificate`` writes (a Sigstore
bundle v0.3 holding a DSSE envelope over an in-toto statement, predicate
``https://model_signing/signature/v1.0``, file serialization with sha256), so both mlsec and
the model-signing tool verify it. Files are hashed with :func:`mlsec.hashing.hash_files` (in
parallel). Keyless signing goes through sigstore-python and needs the network (an OIDC token,
Fulcio, Rekor); offline it is a clear error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlsec.errors import MlsecError
from mlsec.globs import any_match
from mlsec.hashing import hash_files
from mlsec.signatures.bundle import BUNDLE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, key_fingerprint, pae
from mlsec.signatures.manifest import GIT_PATHS, PREDICATE_V1, STATEMENT_V1

SIGNATURE_NAME = "model.sig"


@dataclass(frozen=True)
class Signed:
    signature: Path
    files: tuple[str, ...]
    model_name: str


def _collect(
    model: Path, exempt: Sequence[str], patterns: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Regular files below ``model`` (relative, '/'-separated) minus the ignored ones, and the
    paths the ``patterns`` left out (recorded literally: model-signing reads no globs)."""
    found: list[str] = []
    left_out: list[str] = []
    for directory, dirnames, filenames in os.walk(model, followlinks=False):
        base = Path(directory)
        rel_dir = base.relative_to(model).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in sorted(dirnames):
            rel = prefix + name
            if rel in exempt or any_match(patterns, rel):
                dirnames.remove(name)
                if rel not in exempt:
                    left_out.append(rel)
            elif (base / name).is_symlink():
                raise MlsecError(
                    f"{base / name} is a symlink; model signatures cover regular files only"
                )
        for name in filenames:
            rel = prefix + name
            if rel in exempt or any_match(patterns, rel):
                if rel not in exempt:
                    left_out.append(rel)
                continue
            path = base / name
            if path.is_symlink() or not path.is_file():
                what = "a symlink" if path.is_symlink() else "not a regular file"
                raise MlsecError(f"{path} is {what}; model signatures cover regular files only")
            found.append(rel)
    return sorted(found, key=lambda r: PurePosixPath(r).parts), sorted(left_out)


def statement_for(
    model_name: str, resources: Sequence[tuple[str, str]], ignore_paths: Sequence[str]
) -> bytes:
    """The in-toto statement model-signing 1.x writes: resources (name, sha256 hex) in order,
    the subject digest a sha256 over their digests."""
    root = hashlib.sha256()
    for _, digest in resources:
        root.update(bytes.fromhex(digest))
    serialization: dict[str, Any] = {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
    }
    if ignore_paths:
        serialization["ignore_paths"] = list(ignore_paths)
    statement = {
        "_type": STATEMENT_V1,
        "subject": [{"name": model_name, "digest": {"sha256": root.hexdigest()}}],
        "predicateType": PREDICATE_V1,
        "predicate": {
            "serialization": serialization,
            "resources": [
                {"name": name, "algorithm": "sha256", "digest": digest}
                for name, digest in resources
            ],
        },
    }
    return json.dumps(statement, indent=2).encode("utf-8")


def _read_pem(path: Path) -> bytes:
    """A key or certificate file: a regular file of at most 1 MiB (ValueError past that)."""
    from mlsec import boundedjson
    from mlsec.signatures.policy import MAX_KEY_BYTES

    return boundedjson.read_capped(path, MAX_KEY_BYTES)  # JsonLimitError is a ValueError


def _load_private_key(path: Path, password: bytes | None) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(_read_pem(path), password)
    except OSError as exc:
        raise MlsecError(f"cannot read key {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise MlsecError(
            f"{path} is not a usable PEM private key: {exc}",
            hint="encrypted keys need --password-env NAME (an environment variable)",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        raise MlsecError(f"{path}: model signatures need an elliptic-curve P-256/384/521 key")
    return key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def bundle_with_key(
    payload: bytes,
    private_key: Any,
    certificate: Path | None = None,
    chain: Sequence[Path] = (),
) -> dict[str, Any]:
    """A Sigstore bundle (v0.3) with a DSSE envelope signed by ``private_key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    from mlsec.signatures.bundle import hash_for_key

    public = private_key.public_key()
    message = pae(IN_TOTO_PAYLOAD_TYPE, payload)
    try:
        # RFC 6979 nonces: no dependence on the RNG, and the same input signs the same way
        algorithm = ec.ECDSA(hash_for_key(public), deterministic_signing=True)
    except TypeError:  # pragma: no cover - cryptography < 44
        algorithm = ec.ECDSA(hash_for_key(public))
    signature = private_key.sign(message, algorithm)
    material: dict[str, Any]
    if certificate is None:
        material = {"publicKey": {"hint": key_fingerprint(public)}, "tlogEntries": []}
    else:
        try:
            leaf = x509.load_pem_x509_certificate(_read_pem(certificate))
            others = [c for p in chain for c in x509.load_pem_x509_certificates(_read_pem(p))]
        except OSError as exc:
            raise MlsecError(f"cannot read certificate: {exc}") from None
        except ValueError as exc:
            raise MlsecError(f"not a PEM certificate: {exc}") from None
        if leaf.public_key() != public:
            raise MlsecError(f"{certificate} does not hold the public half of the signing key")
        material = {
            "x509CertificateChain": {
                "certificates": [
                    {"rawBytes": _b64(c.public_bytes(Encoding.DER))} for c in [leaf, *others]
                ]
            },
            "tlogEntries": [],
        }
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": _b64(signature), "keyid": ""}],
        },
    }


def _keyless_bundle(payload: bytes, *, offline: bool, identity_token: str | None) -> str:
    if offline:
        raise MlsecError(
            "keyless signing needs the network (an OIDC identity token, Fulcio and Rekor)",
            hint="sign with --key KEY offline, or run keyless signing in CI with network",
        )
    try:
        from sigstore import dsse
        from sigstore.models import ClientTrustConfig
        from sigstore.oidc import IdentityToken, Issuer, detect_credential
        from sigstore.sign import SigningContext

        config = ClientTrustConfig.production()
        context = SigningContext.from_trust_config(config)
        raw = identity_token or detect_credential()
        if raw:
            token = IdentityToken(raw)
        else:
            token = Issuer(config.signing_config.get_oidc_url()).identity_token()
        with context.signer(token) as signer:
            bundle = signer.sign_dsse(dsse.Statement(payload))
        return str(bundle.to_json())
    except MlsecError:
        raise
    except Exception as exc:  # network, OIDC and Sigstore service failures
        raise MlsecError(
            f"keyless signing failed: {type(exc).__name__}: {exc}",
            hint="check network access to Sigstore, or sign with --key KEY",
        ) from None


def sign_model(
    path: Path,
    *,
    key: Path | None = None,
    password: bytes | None = None,
    certificate: Path | None = None,
    chain: Sequence[Path] = (),
    keyless: bool = False,
    identity_token: str | None = None,
    offline: bool = False,
    output: Path | None = None,
    ignore: Sequence[str] = (),
) -> Signed:
    """Sign a model folder (every file in it) or a single model file."""
    if not path.exists():
        raise MlsecError(f"path not found: {path}")
    if (key is None) == (not keyless):
        raise MlsecError("pass either --key KEY or --keyless")
    if certificate is not None and key is None:
        raise MlsecError("--certificate needs --key (the certificate's private key)")
    path = path.resolve()
    folder = path if path.is_dir() else path.parent
    signature = (output or folder / SIGNATURE_NAME).resolve()
    model_name = path.name
    if path.is_dir():
        exempt = list(GIT_PATHS)
        try:
            inside = signature.relative_to(path).as_posix()
            exempt.append(inside)
        except ValueError:
            inside = None
        files, left_out = _collect(path, exempt, ignore)
        if not files:
            raise MlsecError(f"{path} has no files to sign")
        digests = hash_files([path / f for f in files])
        missing = [f for f in files if path / f not in digests]
        if missing:
            raise MlsecError(f"cannot read {path / missing[0]}")
        resources = [(f, digests[path / f]) for f in files]
        ignore_paths = [*(p for p in [inside] if p), *GIT_PATHS, *left_out]
    else:
        if not path.is_file():
            raise MlsecError(f"{path} is neither a folder nor a regular file")
        files = [path.name]
        digests = hash_files([path])
        resources = [(".", digests[path])]
        ignore_paths = []
    payload = statement_for(model_name, resources, ignore_paths)
    if keyless:
        text = _keyless_bundle(payload, offline=offline, identity_token=identity_token)
    else:
        assert key is not None
        private = _load_private_key(key, password)
        text = json.dumps(bundle_with_key(payload, private, certificate, chain), indent=2)
    try:
        signature.parent.mkdir(parents=True, exist_ok=True)
        signature.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise MlsecError(f"cannot write {signature}: {exc.strerror}") from None
    return Signed(signature, tuple(files), model_name)
