"""Which Sigstore trusted root a scan verifies keyless signatures against, and its digest.

Offline (the default for CI runners without network) the root shipped inside sigstore-python
is read straight from its package data: no TUF refresh, nothing written to the user's cache.
A root given with ``--trusted-root`` (or ``[signatures] trusted-root``) wins. Online, the
production root is refreshed through TUF; if that fails the bundled root is used and the
recorded source says why. The source and sha256 of the root used go into the facts, so a
report says which trust material vouched for a signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from mlsec.errors import ConfigError, MlsecError

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot

PRODUCTION_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
# sigstore-python keeps its bootstrap TUF data, trusted root included, in this package folder.
_BUNDLED_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"


@dataclass(frozen=True)
class Trust:
    """A loaded trusted root and a description: ``"<source> sha256:<digest>"``."""

    root: TrustedRoot
    description: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse(data: bytes, origin: str) -> TrustedRoot:
    from sigstore.models import TrustedRoot

    try:
        import sigstore_models.trustroot.v1 as trustroot_v1  # sigstore >= 4

        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(data))
    except ImportError:  # pragma: no cover - sigstore 3.x
        pass
    except Exception as exc:
        raise ConfigError(f"{origin} is not a Sigstore trusted root: {exc}") from None
    try:  # pragma: no cover - sigstore 3.x only reads files
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            tmp.write(data)
            tmp.flush()
            return TrustedRoot.from_file(tmp.name)
    except Exception as exc:  # pragma: no cover
        raise ConfigError(f"{origin} is not a Sigstore trusted root: {exc}") from None


def bundled_root_bytes() -> bytes:
    """The production trusted root shipped inside the installed sigstore-python."""
    try:
        return (
            resources.files("sigstore") / "_store" / _BUNDLED_DIR / "trusted_root.json"
        ).read_bytes()
    except (OSError, ModuleNotFoundError) as exc:
        raise MlsecError(
            f"the installed sigstore-python does not ship a trusted root ({exc})",
            hint="pass a Sigstore trusted root JSON with --trusted-root",
        ) from None


def load_bundled() -> Trust:
    import sigstore

    data = bundled_root_bytes()
    version = getattr(sigstore, "__version__", "?")
    return Trust(
        _parse(data, "the trusted root bundled with sigstore-python"),
        f"sigstore-python {version} bundled production root sha256:{_sha256(data)}",
    )


MAX_TRUSTED_ROOT_BYTES = 16 * 1024 * 1024


def load_file(path: Path) -> Trust:
    from mlsec import boundedjson

    hint = "--trusted-root takes a Sigstore trusted_root.json"
    try:
        data = boundedjson.read_capped(path, MAX_TRUSTED_ROOT_BYTES)
        boundedjson.loads(data, max_bytes=MAX_TRUSTED_ROOT_BYTES)  # depth before sigstore
    except OSError as exc:
        raise ConfigError(
            f"cannot read trusted root {path}: {exc.strerror or exc}", hint=hint
        ) from None
    except boundedjson.JsonLimitError as exc:
        raise ConfigError(f"trusted root {path} is refused: {exc}", hint=hint) from None
    return Trust(_parse(data, f"trusted root {path}"), f"file {path} sha256:{_sha256(data)}")


def load_online() -> Trust:
    """Refresh the production root through TUF; fall back to the bundled root on failure."""
    try:
        from sigstore.models import ClientTrustConfig

        config = ClientTrustConfig.production(offline=False)
        root = config.trusted_root
        data = root._inner.to_json().encode("utf-8")
        return Trust(root, f"TUF {PRODUCTION_TUF_URL} sha256:{_sha256(data)}")
    except Exception as exc:  # no network, TUF metadata problems: use what ships offline
        bundled = load_bundled()
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return Trust(bundled.root, f"{bundled.description} (TUF refresh failed: {reason})")


def load_trust(path: Path | None, *, offline: bool) -> Trust:
    if path is not None:
        return load_file(path)
    return load_bundled() if offline else load_online()
