"""What analyzers learn that other parts use (the AIBOM, the JSON summary).

Each analyzer returns one of these as ``AnalyzerResult.facts``; the scan stores it in
``ScanReport.facts`` under the analyzer's name ("models", "dependencies", "signatures",
"aibom"). They are plain immutable records (``NamedTuple``; :mod:`mlsec.findings` says why)
with a ``to_json`` for the JSON report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from mlsec.findings import EMPTY_MAPPING, Severity


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Severity):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):  # a record: an object, not a list
        return _jsonable(obj._asdict())
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


# -- models ---------------------------------------------------------------------------------
class ModelFileFact(NamedTuple):
    """One model artifact as the model analyzers understood it."""

    path: str  # relative to the scan root, '/'-separated
    format: str  # pytorch-zip, pytorch-legacy, torchscript, pickle, joblib, numpy, npz,
    # safetensors, gguf, onnx, keras, keras-h5, tf-savedmodel, zip, tar
    size: int
    framework: str | None = None  # pytorch, scikit-learn, tensorflow, keras, onnx, gguf, numpy
    parameter_count: int | None = None
    metadata: Mapping[str, Any] = EMPTY_MAPPING  # format metadata, as found
    # (pickle family: "pickles" count, "compression", "tensors" and "tensor_elements" for
    # PyTorch files: every tensor in the file, optimizer state included)
    max_severity: Severity | None = None  # worst finding on this file, if any


class ModelFacts(NamedTuple):
    files: tuple[ModelFileFact, ...] = ()

    def to_json(self) -> Any:
        return _jsonable([f._asdict() for f in self.files])


# -- dependencies ----------------------------------------------------------------------------
class Dependency(NamedTuple):
    name: str  # PEP 503 normalised
    version: str | None  # the exact version when pinned or locked, else None
    specifier: str  # as written, e.g. ">=2.0,<3" or "==1.2.3"
    source: str  # manifest path relative to the scan root
    line: int | None = None
    pinned: bool = False
    direct: bool = True  # False for transitive entries of a lock file
    depends_on: tuple[str, ...] = ()  # normalised names, from lock files that record them
    dev: bool = False  # from a development group (PEP 735, Poetry groups, Pipfile develop)


class Advisory(NamedTuple):
    id: str  # the primary id (PYSEC/GHSA/...)
    aliases: tuple[str, ...]
    package: str
    version: str
    summary: str
    fix_versions: tuple[str, ...]
    severity: Severity | None  # None: the advisory carries no score or rating
    cvss_vector: str | None = None
    cvss_score: float | None = None
    references: tuple[str, ...] = ()


class DependencyFacts(NamedTuple):
    dependencies: tuple[Dependency, ...] = ()
    advisories: tuple[Advisory, ...] = ()
    service: str | None = None  # e.g. "osv-db:<path> (<date>)", "pypi", "osv"
    unaudited: tuple[str, ...] = ()  # packages the service could not answer for

    def to_json(self) -> Any:
        # One entry per advisory, with every package version it affects: the same advisory
        # repeated per version (its summary and references) is most of a large audit's JSON.
        # Built directly (not through _jsonable): tens of thousands of entries.
        grouped: dict[str, dict[str, Any]] = {}
        for a in self.advisories:
            entry = grouped.get(a.id)
            if entry is None:
                entry = grouped[a.id] = {
                    "id": a.id,
                    "aliases": list(a.aliases),
                    "summary": a.summary,
                    "severity": a.severity.value if a.severity is not None else None,
                    "cvss_vector": a.cvss_vector,
                    "cvss_score": a.cvss_score,
                    "references": list(a.references),
                    "affects": [],
                }
            entry["affects"].append(
                {"package": a.package, "version": a.version, "fix_versions": list(a.fix_versions)}
            )
        fields = Dependency._fields
        dependencies = []
        for d in self.dependencies:
            row: dict[str, Any] = dict(zip(fields, d, strict=True))
            row["depends_on"] = list(d.depends_on)
            dependencies.append(row)
        return {
            "service": self.service,
            "dependencies": dependencies,
            "advisories": list(grouped.values()),
            "unaudited": list(self.unaudited),
        }


# -- signatures -------------------------------------------------------------------------------
class SignatureFact(NamedTuple):
    path: str  # the signed model directory or file, relative to the scan root
    kind: str  # "model-signing" or "sigstore-bundle"
    bundle: str  # the signature file, relative to the scan root
    verified: bool
    signer: str | None = None  # certificate identity, or public key fingerprint
    issuer: str | None = None  # OIDC issuer for keyless signatures
    files: tuple[str, ...] = ()  # files covered by the signature, relative to the scan root
    trusted_root: str | None = None  # "<source> sha256:<digest>" of the trust material used


class SignatureFacts(NamedTuple):
    signatures: tuple[SignatureFact, ...] = ()
    trusted_root: str | None = None

    def to_json(self) -> Any:
        return _jsonable(
            {
                "trusted_root": self.trusted_root,
                "signatures": [s._asdict() for s in self.signatures],
            }
        )
