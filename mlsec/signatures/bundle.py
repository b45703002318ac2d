"""Sigstore bundles: parsing, and verification against a signer policy.

Three kinds of signing material, one outcome type:

- keyless (a Fulcio certificate plus transparency-log entries): verified with sigstore-python
  against the trusted root (certificate chain, SCT, log inclusion proof, signature), then the
  certificate is checked against the keyless signers of the policy;
- an elliptic-curve public key (``publicKey`` material, as ``model-signing sign key`` writes):
  the DSSE signature is checked with each configured key;
- a certificate chain (private PKI, ``model-signing sign certificate``): the chain is checked
  against each configured set of trust anchors with cryptography's X.509 verifier, then the
  signature with the signing certificate's key.

sigstore-python only verifies keyless bundles, and model-signing 1.1.1's key and certificate
verifiers print to stdout and import pyOpenSSL without declaring it, so the key and chain
checks (plain ECDSA over the DSSE pre-authentication encoding, RFC 5280 path validation) are
written here with cryptography. Verification and policy are kept apart so that "the signature
is broken" and "the signature is fine but the signer is not allowed" are distinct outcomes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mlsec import boundedjson
from mlsec.safeopen import open_regular
from mlsec.signatures.policy import (
    AllOf,
    AnyOf,
    CertificateChainSigner,
    KeylessSigner,
    Leaf,
    PublicKeySigner,
    SignerPolicy,
    leaves,
)
from mlsec.signatures.trust import Trust

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
_OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


class BundleError(ValueError):
    """The file is not a well-formed Sigstore bundle."""


class State(str, enum.Enum):
    VERIFIED = "verified"
    MALFORMED = "malformed"
    UNVERIFIABLE = "unverifiable"
    INVALID = "invalid"
    NOT_ALLOWED = "not-allowed"


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: str = ""
    signer: str | None = None
    issuer: str | None = None
    payload_type: str | None = None
    payload: bytes | None = None  # the DSSE payload, once its signature verified
    kind: str | None = None  # keyless | public-key | certificate, once verified


@dataclass(frozen=True)
class Dsse:
    payload_type: str
    payload: bytes
    signature: bytes


@dataclass(frozen=True)
class MessageSignature:
    signature: bytes
    digest: bytes | None  # the artifact digest the bundle records, if any
    algorithm: str | None


@dataclass(frozen=True)
class RawBundle:
    """What mlsec reads from a bundle before any verification."""

    text: str
    certificates: tuple[x509.Certificate, ...]  # leaf first; empty for public-key material
    key_hint: str | None
    has_tlog: bool
    dsse: Dsse | None = None
    message: MessageSignature | None = None
    uses_public_key: bool = False
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{where} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:  # some writers use the URL-safe alphabet
            return base64.urlsafe_b64decode(value)
        except (binascii.Error, ValueError):
            raise BundleError(f"{where} is not valid base64") from None


def parse_bundle(text: str) -> RawBundle:
    try:
        data = boundedjson.loads(text, max_bytes=MAX_BUNDLE_BYTES)
    except boundedjson.JsonLimitError as exc:
        raise BundleError(f"not a usable JSON document: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError("not a JSON object")
    media_type = data.get("mediaType")
    if not isinstance(media_type, str) or not media_type.startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        raise BundleError(f"not a Sigstore bundle (mediaType {media_type!r})")
    material = data.get("verificationMaterial")
    if not isinstance(material, dict):
        raise BundleError("no verificationMaterial")
    certificates: list[x509.Certificate] = []
    key_hint: str | None = None
    uses_public_key = False
    try:
        if isinstance(material.get("publicKey"), dict):
            uses_public_key = True
            hint = material["publicKey"].get("hint")
            key_hint = hint if isinstance(hint, str) and hint else None
        elif isinstance(material.get("certificate"), dict):
            raw = _b64(material["certificate"].get("rawBytes"), "certificate")
            certificates.append(x509.load_der_x509_certificate(raw))
        elif isinstance(material.get("x509CertificateChain"), dict):
            chain = material["x509CertificateChain"].get("certificates")
            if not isinstance(chain, list) or not chain:
                raise BundleError("empty x509CertificateChain")
            for i, cert in enumerate(chain):
                if not isinstance(cert, dict):
                    raise BundleError(f"x509CertificateChain[{i}] is not an object")
                raw = _b64(cert.get("rawBytes"), f"x509CertificateChain[{i}]")
                certificates.append(x509.load_der_x509_certificate(raw))
        else:
            raise BundleError("verificationMaterial has no publicKey, certificate or chain")
    except ValueError as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"bad certificate: {exc}") from None
    tlog = material.get("tlogEntries")
    has_tlog = isinstance(tlog, list) and bool(tlog)

    envelope = data.get("dsseEnvelope")
    message = data.get("messageSignature")
    if (envelope is None) == (message is None):
        raise BundleError("a bundle holds exactly one of dsseEnvelope and messageSignature")
    dsse: Dsse | None = None
    msg: MessageSignature | None = None
    if envelope is not None:
        if not isinstance(envelope, dict):
            raise BundleError("dsseEnvelope is not an object")
        payload_type = envelope.get("payloadType")
        if not isinstance(payload_type, str):
            raise BundleError("dsseEnvelope has no payloadType")
        signatures = envelope.get("signatures")
        if not isinstance(signatures, list) or len(signatures) != 1:
            raise BundleError("dsseEnvelope must carry exactly one signature")
        if not isinstance(signatures[0], dict):
            raise BundleError("dsseEnvelope signature is not an object")
        dsse = Dsse(
            payload_type,
            _b64(envelope.get("payload"), "dsseEnvelope.payload"),
            _b64(signatures[0].get("sig"), "dsseEnvelope signature"),
        )
    else:
        if not isinstance(message, dict):
            raise BundleError("messageSignature is not an object")
        digest = message.get("messageDigest")
        recorded: bytes | None = None
        algorithm: str | None = None
        if isinstance(digest, dict):
            recorded = _b64(digest.get("digest"), "messageDigest.digest")
            algorithm = str(digest.get("algorithm", "SHA2_256"))
        msg = MessageSignature(
            _b64(message.get("signature"), "messageSignature.signature"), recorded, algorithm
        )
    return RawBundle(
        text=text,
        certificates=tuple(certificates),
        key_hint=key_hint,
        has_tlog=has_tlog,
        dsse=dsse,
        message=msg,
        uses_public_key=uses_public_key,
        data=data,
    )


def load_bundle(path: Path) -> RawBundle:
    """Read a bundle once, as a regular file, at most :data:`MAX_BUNDLE_BYTES` of it."""
    try:
        with open_regular(path) as handle:
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"over {MAX_BUNDLE_BYTES} bytes; larger than any signature mlsec reads")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError("not UTF-8 text") from None
    return parse_bundle(text)


# -- signature primitives --------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (what a DSSE signature covers)."""
    head = f"DSSEv1 {len(payload_type.encode())} {payload_type} {len(payload)} "
    return head.encode("utf-8") + payload


def _pae_compat(payload_type: str, payload: bytes) -> bytes:
    # model-signing 0.2 signed this (a str/bytes mix-up put the payload's repr in the
    # message); its signatures are still in use, so they are accepted as written.
    return f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}".encode()


def hash_for_key(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    size = key.curve.key_size
    if size <= 256:
        return hashes.SHA256()
    if size <= 384:
        return hashes.SHA384()
    return hashes.SHA512()


def _dsse_signed_by(key: ec.EllipticCurvePublicKey, dsse: Dsse) -> bool:
    attempts: list[tuple[bytes, hashes.HashAlgorithm]] = [
        (pae(dsse.payload_type, dsse.payload), hash_for_key(key)),
        (_pae_compat(dsse.payload_type, dsse.payload), hash_for_key(key)),
        # model-signing 0.2 also hard-coded SHA-256 whatever the curve.
        (_pae_compat(dsse.payload_type, dsse.payload), hashes.SHA256()),
    ]
    for message, algorithm in attempts:
        try:
            key.verify(dsse.signature, message, ec.ECDSA(algorithm))
            return True
        except InvalidSignature:
            continue
    return False


def _message_signed_by(key: ec.EllipticCurvePublicKey, sig: bytes, sha256: bytes) -> bool:
    try:
        key.verify(sig, sha256, ec.ECDSA(Prehashed(hashes.SHA256())))
        return True
    except InvalidSignature:
        return False


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the PEM SubjectPublicKeyInfo: the ``hint`` model-signing records."""
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


# -- certificate details ----------------------------------------------------------------------
def certificate_identity(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    values = [*san.get_values_for_type(x509.RFC822Name)]
    values += san.get_values_for_type(x509.UniformResourceIdentifier)
    return values[0] if values else None


def _der_utf8(value: bytes) -> str | None:
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    return value[offset : offset + length].decode("utf-8", "replace")


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio recorded in the certificate."""
    for oid, der in ((_OIDC_ISSUER_V2, True), (_OIDC_ISSUER_V1, False)):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = getattr(ext, "value", b"")
        return _der_utf8(raw) if der else raw.decode("utf-8", "replace")
    return None


def _can_sign(cert: x509.Certificate) -> bool:
    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        return False


def _chain_valid(raw: RawBundle, signer: CertificateChainSigner) -> bool:
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    anchors = [c for pem in signer.pems for c in x509.load_pem_x509_certificates(pem)]
    leaf = raw.certificates[0]
    # Private PKIs mint unusual certificates (model-signing's own test chain uses a CA:TRUE
    # signing certificate), so extensions are not policed beyond path validation; the
    # signing capability is checked below as model-signing does. The time of validation is
    # the certificate's start of validity: there is no trusted timestamp in these bundles.
    ca_policy = ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, Criticality.AGNOSTIC, None
    )
    builder = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(leaf.not_valid_before_utc)
        .extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
    )
    try:
        builder.build_client_verifier().verify(leaf, list(raw.certificates[1:]))
    except (VerificationError, ValueError):
        return False
    return True


# -- verification -------------------------------------------------------------------------------
class _AcceptAnySigner:
    """sigstore-python policy that accepts any certificate: mlsec applies its own policy after
    the cryptographic checks, so a bad signature and an unwelcome signer stay distinct."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


@dataclass
class _LeafResult:
    matched: bool
    invalid: str | None = None
    unverifiable: str | None = None
    signer: str | None = None
    issuer: str | None = None
    kind: str | None = None


class BundleVerifier:
    """Verifies bundles against one signer policy; the trusted root is loaded on first need."""

    def __init__(self, policy: SignerPolicy, trust: Callable[[], Trust]) -> None:
        self.policy = policy
        self._trust_loader = trust
        self._trust: Trust | None = None

    @property
    def trust(self) -> Trust | None:
        return self._trust

    def _load_trust(self) -> Trust:
        if self._trust is None:
            self._trust = self._trust_loader()
        return self._trust

    def verify(self, raw: RawBundle, artifact_sha256: bytes | None = None) -> Outcome:
        """Verify ``raw``; message signatures need the artifact's sha256."""
        if raw.message is not None and artifact_sha256 is None:
            return Outcome(State.MALFORMED, "a message signature needs an artifact")
        if raw.dsse is not None and raw.dsse.payload_type != IN_TOTO_PAYLOAD_TYPE:
            return Outcome(
                State.MALFORMED, f"DSSE payload type {raw.dsse.payload_type!r} is not in-toto"
            )
        keyless_state: list[_LeafResult] = []  # computed at most once

        def keyless() -> _LeafResult:
            if not keyless_state:
                keyless_state.append(self._keyless_crypto(raw, artifact_sha256))
            return keyless_state[0]

        results: dict[int, _LeafResult] = {}
        for leaf in leaves(self.policy):
            results[id(leaf)] = self._leaf(leaf, raw, artifact_sha256, keyless)
        matched, signers = self._combine(self.policy, results)
        payload = raw.dsse.payload if raw.dsse else None
        payload_type = raw.dsse.payload_type if raw.dsse else None
        if matched:
            first = signers[0]
            return Outcome(
                State.VERIFIED,
                signer=" + ".join(s.signer or "?" for s in signers),
                issuer=first.issuer,
                payload_type=payload_type,
                payload=payload,
                kind=first.kind,
            )
        all_results = list(results.values())
        if keyless_state:
            all_results.append(keyless_state[0])
        for r in all_results:
            if r.invalid:
                return Outcome(State.INVALID, r.invalid)
        for r in all_results:
            if r.unverifiable:
                return Outcome(State.UNVERIFIABLE, r.unverifiable)
        return Outcome(State.NOT_ALLOWED, self._who(raw, keyless_state))

    def _who(self, raw: RawBundle, keyless_state: list[_LeafResult]) -> str:
        if raw.uses_public_key:
            hint = f" (key sha256 {raw.key_hint})" if raw.key_hint else ""
            return f"signed with a public key that no configured signer holds{hint}"
        leaf = raw.certificates[0]
        if keyless_state and keyless_state[0].matched:
            who = keyless_state[0].signer
            issuer = keyless_state[0].issuer
            return f"signed by {who} (issuer {issuer}), who is not an allowed signer"
        if raw.has_tlog:
            return (
                f"signed by {certificate_identity(leaf) or leaf.subject.rfc4514_string()} "
                "(keyless), not an allowed signer"
            )
        return (
            f"certificate {leaf.subject.rfc4514_string()} (issuer "
            f"{leaf.issuer.rfc4514_string()}) does not chain to any configured certificate-chain"
        )

    def _combine(
        self, policy: SignerPolicy, results: dict[int, _LeafResult]
    ) -> tuple[bool, list[_LeafResult]]:
        if isinstance(policy, AnyOf):
            for child in policy.children:
                ok, who = self._combine(child, results)
                if ok:
                    return True, who
            return False, []
        if isinstance(policy, AllOf):
            collected: list[_LeafResult] = []
            for child in policy.children:
                ok, who = self._combine(child, results)
                if not ok:
                    return False, []
                collected.extend(who)
            return True, collected
        result = results[id(policy)]
        return result.matched, [result] if result.matched else []

    def _leaf(
        self,
        leaf: Leaf,
        raw: RawBundle,
        artifact_sha256: bytes | None,
        keyless: Callable[[], _LeafResult],
    ) -> _LeafResult:
        if isinstance(leaf, PublicKeySigner):
            if not raw.uses_public_key:
                return _LeafResult(False)
            return self._with_key(leaf, raw, artifact_sha256)
        if isinstance(leaf, CertificateChainSigner):
            if raw.uses_public_key or not _chain_valid(raw, leaf):
                return _LeafResult(False)
            cert = raw.certificates[0]
            if not _can_sign(cert):
                return _LeafResult(False, invalid="the signing certificate may not sign")
            key = cert.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return _LeafResult(False, unverifiable="signing key is not elliptic-curve")
            if not self._signed_by(key, raw, artifact_sha256):
                return _LeafResult(False, invalid="signature does not match the certificate")
            return _LeafResult(
                True,
                signer=cert.subject.rfc4514_string(),
                issuer=cert.issuer.rfc4514_string(),
                kind="certificate",
            )
        if raw.uses_public_key or not raw.has_tlog:
            return _LeafResult(False)
        crypto = keyless()
        if not crypto.matched:
            return _LeafResult(False)
        return self._keyless_policy(leaf, raw, crypto)

    def _signed_by(
        self, key: ec.EllipticCurvePublicKey, raw: RawBundle, artifact_sha256: bytes | None
    ) -> bool:
        if raw.dsse is not None:
            return _dsse_signed_by(key, raw.dsse)
        assert raw.message is not None and artifact_sha256 is not None
        return _message_signed_by(key, raw.message.signature, artifact_sha256)

    def _with_key(
        self, leaf: PublicKeySigner, raw: RawBundle, artifact_sha256: bytes | None
    ) -> _LeafResult:
        key = serialization.load_pem_public_key(leaf.pem)
        assert isinstance(key, ec.EllipticCurvePublicKey)  # checked when the policy was parsed
        fingerprint = key_fingerprint(key)
        if raw.key_hint and raw.key_hint.lower() != fingerprint:
            return _LeafResult(False)
        if self._signed_by(key, raw, artifact_sha256):
            return _LeafResult(
                True,
                signer=f"public key sha256:{fingerprint} ({leaf.path.name})",
                kind="public-key",
            )
        if raw.key_hint:  # the bundle names this very key, yet the signature fails
            return _LeafResult(
                False, invalid=f"signature does not verify with {leaf.path.name}, the key it names"
            )
        return _LeafResult(False)

    def _keyless_crypto(self, raw: RawBundle, artifact_sha256: bytes | None) -> _LeafResult:
        """sigstore-python verification of everything but the signer identity."""
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle
        from sigstore.verify import Verifier

        trust = self._load_trust()
        leaf = raw.certificates[0]
        try:
            cas = trust.root.get_fulcio_certs()
        except SigstoreError as exc:
            return _LeafResult(False, unverifiable=f"trusted root has no Fulcio CA: {exc}")
        if not any(_issued_by(leaf, ca) for ca in cas):
            return _LeafResult(
                False,
                unverifiable=(
                    f"certificate issuer {leaf.issuer.rfc4514_string()} is not a Fulcio CA of "
                    f"the trusted root in use ({trust.description.split(' sha256:')[0]})"
                ),
            )
        try:
            bundle = Bundle.from_json(raw.text)
        except Exception as exc:  # sigstore raises InvalidBundle and pydantic errors
            return _LeafResult(False, invalid=f"sigstore rejects the bundle: {_short(exc)}")
        try:
            verifier = Verifier(trusted_root=trust.root)
            if raw.dsse is not None:
                verifier.verify_dsse(bundle, _AcceptAnySigner())
            else:
                import sigstore.hashes

                assert artifact_sha256 is not None
                hashed = sigstore.hashes.Hashed(
                    algorithm=sigstore.hashes.HashAlgorithm.SHA2_256,  # type: ignore[attr-defined]
                    digest=artifact_sha256,
                )
                verifier.verify_artifact(hashed, bundle, _AcceptAnySigner())
        except Exception as exc:  # VerificationError and friends: the signature does not hold
            return _LeafResult(False, invalid=_short(exc))
        return _LeafResult(
            True,
            signer=certificate_identity(leaf),
            issuer=certificate_issuer(leaf),
            kind="keyless",
        )

    def _keyless_policy(
        self, leaf: KeylessSigner, raw: RawBundle, crypto: _LeafResult
    ) -> _LeafResult:
        from sigstore.verify import policy as sp

        checks: list[Any] = []
        if leaf.identity:
            checks.append(sp.Identity(identity=leaf.identity, issuer=leaf.issuer))
        elif leaf.issuer:
            checks.append(sp.OIDCIssuer(leaf.issuer))
        if leaf.github_repository:
            checks.append(sp.GitHubWorkflowRepository(leaf.github_repository))
        if leaf.github_ref:
            checks.append(sp.GitHubWorkflowRef(leaf.github_ref))
        try:
            sp.AllOf(checks).verify(raw.certificates[0])
        except Exception:  # VerificationError: this signer is not the one in the policy
            return _LeafResult(False)
        return _LeafResult(True, signer=crypto.signer, issuer=crypto.issuer, kind="keyless")


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
