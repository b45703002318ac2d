"""The ``[signatures]`` policy: which paths must be signed, and who may sign.

```toml
[signatures]
required = ["models/**"]          # globs of paths that must carry a verified signature
trusted-root = "trust/root.json"  # optional Sigstore trusted root
ignore = ["README.md"]            # extra paths a model-signing manifest need not cover

[[signatures.signers]]            # any one entry matching is enough (any-of)
identity = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1.0"
issuer = "https://token.actions.githubusercontent.com"

[[signatures.signers]]
public-key = "keys/model.pub"

[[signatures.signers]]
certificate-chain = ["keys/ca.pem", "keys/int-ca.pem"]

[[signatures.signers]]            # composition: every part must hold
all-of = [{ github-repository = "org/repo" }, { github-ref = "refs/heads/main" }]
```

Within one keyless entry every given claim must hold. The top-level list is any-of; ``any-of``
and ``all-of`` nest. An empty policy (no signers, an empty entry, an empty ``any-of``) is a
configuration error, never a pass: a policy that names nobody must not accept everybody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsec.errors import ConfigError

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_KEYLESS_KEYS = ("identity", "issuer", "github-repository", "github-ref")
_SECTION_KEYS = ("required", "trusted-root", "ignore", "signers")
# Bounds on operator input: a policy longer or deeper than these is a mistake or an attack.
MAX_TEXT = 4096
MAX_ITEMS = 10_000
MAX_NESTING = 16
MAX_KEY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class KeylessSigner:
    """A Sigstore keyless (Fulcio certificate) signer: every given claim must match."""

    identity: str | None = None
    issuer: str | None = None
    github_repository: str | None = None
    github_ref: str | None = None

    def describe(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("identity", self.identity),
                ("issuer", self.issuer),
                ("github-repository", self.github_repository),
                ("github-ref", self.github_ref),
            )
            if v
        ]
        return "keyless(" + ", ".join(parts) + ")"


@dataclass(frozen=True)
class PublicKeySigner:
    """An elliptic-curve public key (PEM)."""

    path: Path
    pem: bytes = field(repr=False)

    def describe(self) -> str:
        return f"public-key {self.path.name}"


@dataclass(frozen=True)
class CertificateChainSigner:
    """Trust anchors (PEM certificates): the signing certificate must chain to them."""

    paths: tuple[Path, ...]
    pems: tuple[bytes, ...] = field(repr=False)

    def describe(self) -> str:
        return "certificate-chain " + ",".join(p.name for p in self.paths)


@dataclass(frozen=True)
class AnyOf:
    children: tuple[SignerPolicy, ...]


@dataclass(frozen=True)
class AllOf:
    children: tuple[SignerPolicy, ...]


SignerPolicy = KeylessSigner | PublicKeySigner | CertificateChainSigner | AnyOf | AllOf
Leaf = KeylessSigner | PublicKeySigner | CertificateChainSigner


def leaves(policy: SignerPolicy) -> list[Leaf]:
    if isinstance(policy, AnyOf | AllOf):
        return [leaf for child in policy.children for leaf in leaves(child)]
    return [policy]


@dataclass(frozen=True)
class SignaturePolicy:
    """The validated ``[signatures]`` section."""

    signers: SignerPolicy | None  # None only when there is no [signatures] section at all
    required: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    trusted_root: Path | None = None


def _where(config_file: Path | None, key: str) -> str:
    if config_file is None:
        return f"[signatures] {key}"
    prefix = "[tool.mlsec.signatures]" if config_file.name == "pyproject.toml" else "[signatures]"
    return f"{config_file}: {prefix} {key}"


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: expected a list of non-empty strings")
    if len(value) > MAX_ITEMS:
        raise ConfigError(f"{where}: more than {MAX_ITEMS} entries")
    return tuple(_text(v, where) for v in value)


def _text(value: str, where: str) -> str:
    """A policy string: no NUL or other control characters, at most MAX_TEXT characters."""
    if len(value) > MAX_TEXT:
        raise ConfigError(f"{where}: a value is {len(value)} characters long (at most {MAX_TEXT})")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError(f"{where}: a value contains a NUL or control character")
    return value.strip()


def _path(raw: object, where: str, base: Path, what: str) -> Path:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{where}: expected a path to {what}")
    try:
        return (base / _text(raw, where)).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{where}: {raw[:200]!r} is not a usable path ({exc})") from None


def _read(path: Path, where: str) -> bytes:
    from mlsec import boundedjson

    try:
        return boundedjson.read_capped(path, MAX_KEY_BYTES)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    except boundedjson.JsonLimitError:
        raise ConfigError(
            f"{where}: {path} is over {MAX_KEY_BYTES} bytes; not a key or certificate file"
        ) from None


def _signer(value: object, where: str, base: Path, depth: int = 0) -> SignerPolicy:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table")
    if depth > MAX_NESTING:
        raise ConfigError(
            f"{where}: any-of / all-of nested deeper than {MAX_NESTING} levels",
            hint="flatten the policy",
        )
    if not value:
        raise ConfigError(
            f"{where}: empty signer",
            hint="an empty policy would accept nobody; name an identity, key or chain",
        )
    keys = set(value)
    known = {*_KEYLESS_KEYS, "public-key", "certificate-chain", "any-of", "all-of"}
    unknown = sorted(keys - known)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key", hint=f"known keys: {', '.join(sorted(known))}"
        )
    kinds = [
        kind
        for kind, present in (
            ("keyless", bool(keys & set(_KEYLESS_KEYS))),
            ("public-key", "public-key" in keys),
            ("certificate-chain", "certificate-chain" in keys),
            ("any-of", "any-of" in keys),
            ("all-of", "all-of" in keys),
        )
        if present
    ]
    if len(kinds) > 1:
        raise ConfigError(
            f"{where}: mixes {' and '.join(kinds)}",
            hint="one signer table is one kind; compose kinds with any-of / all-of",
        )
    kind = kinds[0]
    if kind in ("any-of", "all-of"):
        children = value[kind]
        if not isinstance(children, list) or not children:
            raise ConfigError(
                f"{where}.{kind}: expected a non-empty list of signer tables",
                hint="an empty policy is an error, not a pass",
            )
        if len(children) > MAX_ITEMS:
            raise ConfigError(f"{where}.{kind}: more than {MAX_ITEMS} entries")
        parsed = tuple(
            _signer(child, f"{where}.{kind}[{i}]", base, depth + 1)
            for i, child in enumerate(children)
        )
        return AnyOf(parsed) if kind == "any-of" else AllOf(parsed)
    if kind == "public-key":
        path = _path(value["public-key"], f"{where}.public-key", base, "a PEM public key")
        pem = _read(path, f"{where}.public-key")
        _check_public_key(pem, f"{where}.public-key")
        return PublicKeySigner(path, pem)
    if kind == "certificate-chain":
        raw_paths = value["certificate-chain"]
        if isinstance(raw_paths, str):
            raw_paths = [raw_paths]
        where_chain = f"{where}.certificate-chain"
        paths = tuple(
            _path(p, where_chain, base, "a PEM certificate")
            for p in _strings(raw_paths, where_chain)
        )
        if not paths:
            raise ConfigError(f"{where_chain}: expected at least one PEM certificate")
        pems = tuple(_read(p, where_chain) for p in paths)
        _check_certificates(pems, where_chain)
        return CertificateChainSigner(paths, pems)
    claims: dict[str, str] = {}
    for key in _KEYLESS_KEYS:
        if key in value:
            raw = value[key]
            if not isinstance(raw, str) or not raw.strip():
                raise ConfigError(f"{where}.{key}: expected a non-empty string")
            claims[key.replace("-", "_")] = _text(raw, f"{where}.{key}")
    if "identity" in claims and "issuer" not in claims:
        raise ConfigError(
            f"{where}: identity without issuer",
            hint="an identity means nothing without the OIDC issuer that vouched for it",
        )
    if "issuer" not in claims:
        # GitHub workflow claims are only meaningful from GitHub's OIDC issuer.
        claims["issuer"] = GITHUB_ISSUER
    return KeylessSigner(**claims)


def _names_who(policy: SignerPolicy) -> bool:
    """Whether a policy pins down a signer: an identity, a repository, a key or a CA. An
    issuer or a ref alone admits anyone that issuer vouches for (any GitHub repository's
    main branch), so sigstore-python's own CLI refuses both, and so does mlsec."""
    if isinstance(policy, KeylessSigner):
        return bool(policy.identity or policy.github_repository)
    if isinstance(policy, AnyOf):
        return all(_names_who(child) for child in policy.children)
    if isinstance(policy, AllOf):
        return any(_names_who(child) for child in policy.children)
    return True


def _require_who(policy: SignerPolicy, where: str) -> None:
    if _names_who(policy):
        return
    if isinstance(policy, KeylessSigner):
        given = "github-ref" if policy.github_ref else "issuer"
        raise ConfigError(
            f"{where}: {given} alone does not say who may sign (anyone the issuer vouches for"
            " would pass)",
            hint='add identity = "<the signer\'s certificate identity>" (with its issuer) or'
            ' github-repository = "org/repo" to this entry',
        )
    raise ConfigError(
        f"{where}: this signer entry does not say who may sign (one of its alternatives names"
        " only an issuer or a ref)",
        hint="give every alternative an identity, a github-repository, a public-key or a"
        " certificate-chain",
    )


def _check_public_key(pem: bytes, where: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise ConfigError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"{where}: not an elliptic-curve public key")


def _check_certificates(pems: Sequence[bytes], where: str) -> None:
    from cryptography import x509

    for pem in pems:
        try:
            if not x509.load_pem_x509_certificates(pem):
                raise ValueError("no certificate")
        except ValueError as exc:
            raise ConfigError(f"{where}: not a PEM certificate ({exc})") from None


def parse_policy(
    section: Mapping[str, Any], *, config_file: Path | None, base: Path, present: bool
) -> SignaturePolicy:
    """Validate ``[signatures]``; ``present`` says whether the section exists at all."""
    if not present:
        return SignaturePolicy(signers=None)
    unknown = sorted(set(section) - set(_SECTION_KEYS))
    if unknown:
        raise ConfigError(
            f"{_where(config_file, unknown[0])}: unknown key",
            hint=f"known keys: {', '.join(_SECTION_KEYS)}",
        )
    required = _strings(section.get("required", []), _where(config_file, "required"))
    ignore = _strings(section.get("ignore", []), _where(config_file, "ignore"))
    trusted_root = None
    if "trusted-root" in section:
        trusted_root = _path(
            section["trusted-root"],
            _where(config_file, "trusted-root"),
            base,
            "a Sigstore trusted_root.json",
        )
    raw_signers = section.get("signers")
    where = _where(config_file, "signers")
    if raw_signers is None or raw_signers == []:
        raise ConfigError(
            f"{where}: no signers",
            hint="an empty signature policy is an error, not a pass; add [[signatures.signers]] "
            "with an identity and issuer, a public-key or a certificate-chain",
        )
    if not isinstance(raw_signers, list):
        raise ConfigError(f"{where}: expected an array of tables ([[signatures.signers]])")
    if len(raw_signers) > MAX_ITEMS:
        raise ConfigError(f"{where}: more than {MAX_ITEMS} signers")
    signers = tuple(_signer(s, f"{where}[{i}]", base) for i, s in enumerate(raw_signers))
    for i, signer in enumerate(signers):
        _require_who(signer, f"{where}[{i}]")
    return SignaturePolicy(
        signers=signers[0] if len(signers) == 1 else AnyOf(signers),
        required=required,
        ignore=ignore,
        trusted_root=trusted_root,
    )
