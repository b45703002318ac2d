"""Model signatures: OpenSSF model-signing ``model.sig`` folders and detached Sigstore bundles.

This module only decides whether there is anything to check (a signature file, or a
``[signatures]`` policy); the checks themselves live in :mod:`mlsec.signatures.check` and are
imported only then, so scans of repositories without signatures do not pay for loading the
cryptography stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlsec.analyzers import AnalysisContext, Analyzer, AnalyzerResult
from mlsec.walk import Target

MODEL_SIGNATURE = "model.sig"
DETACHED_SUFFIXES = (".sigstore.json", ".sigstore")


def detached_artifact(relpath: str) -> str | None:
    """The artifact a detached bundle signs (``x.bin.sigstore.json`` -> ``x.bin``), if any."""
    for suffix in DETACHED_SUFFIXES:
        if relpath.endswith(suffix) and len(relpath) > len(suffix):
            artifact = relpath[: -len(suffix)]
            if not artifact.endswith("/"):
                return artifact
    return None


_SIGNATURE_ENDINGS = (MODEL_SIGNATURE, *DETACHED_SUFFIXES)


def is_signature_file(relpath: str) -> bool:
    if not relpath.endswith(_SIGNATURE_ENDINGS):  # asked of every file in the tree
        return False
    return relpath.rsplit("/", 1)[-1] == MODEL_SIGNATURE or detached_artifact(relpath) is not None


class SignaturesAnalyzer(Analyzer):
    name = "signatures"
    description = "Verifying signatures"

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        if "signatures" not in ctx.options.sections and not any(
            is_signature_file(t.relpath) for t in targets
        ):
            return AnalyzerResult()  # no policy and nothing signed: nothing to verify
        from mlsec.signatures.check import SignatureCheck

        return SignatureCheck().analyze(targets, ctx)
