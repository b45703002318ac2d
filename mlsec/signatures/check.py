"""Signature checks behind :class:`mlsec.analyzers.signatures.SignaturesAnalyzer`: OpenSSF
model-signing ``model.sig`` folders and detached Sigstore bundles.

For each signature found in the scan: parse the bundle, verify it against the ``[signatures]``
policy (keyless identity and issuer, public keys, certificate chains; keyless offline against
the bundled or given trusted root), then compare what it signed with the files on disk. Each
distinct state is its own rule (MLS400-MLS409), and every verified signature becomes a
:class:`~mlsec.facts.SignatureFact` for the JSON summary and the AIBOM. Paths matched by
``required`` that no signature speaks for are MLS401.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlsec import boundedjson
from mlsec.analyzers import AnalysisContext, Analyzer, AnalyzerResult
from mlsec.analyzers.signatures import MODEL_SIGNATURE, detached_artifact, is_signature_file
from mlsec.facts import SignatureFact, SignatureFacts
from mlsec.findings import Finding, ScanError
from mlsec.globs import any_match
from mlsec.hashing import hash_files
from mlsec.signatures.bundle import (
    BundleError,
    BundleVerifier,
    Outcome,
    RawBundle,
    State,
    load_bundle,
)
from mlsec.signatures.manifest import (
    ManifestError,
    compare,
    ignore_set,
    is_ignored,
    parse_statement,
)
from mlsec.signatures.policy import SignaturePolicy, parse_policy
from mlsec.signatures.trust import Trust, load_trust
from mlsec.walk import Target

_STATE_RULES = {
    State.MALFORMED: "MLS400",
    State.UNVERIFIABLE: "MLS402",
    State.INVALID: "MLS403",
    State.NOT_ALLOWED: "MLS404",
}
_STATE_TEXT = {
    State.MALFORMED: "Signature is malformed",
    State.UNVERIFIABLE: "Signature cannot be verified here",
    State.INVALID: "Signature is invalid",
    State.NOT_ALLOWED: "Signer is not allowed by the signature policy",
}


@dataclass
class _Run:
    ctx: AnalysisContext
    policy: SignaturePolicy
    targets: Sequence[Target]
    verifier: BundleVerifier | None
    findings: list[Finding] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    facts: list[SignatureFact] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)  # files some signature speaks for

    def add(self, rule_id: str, path: str, message: str, **kwargs: object) -> None:
        self.findings.append(self.ctx.finding(rule_id, path, message, **kwargs))

    def trust_description(self) -> str | None:
        return self.verifier.trust.description if self.verifier and self.verifier.trust else None

    def add_fact(
        self,
        path: str,
        kind: str,
        bundle: str,
        verified: bool,
        outcome: Outcome | None,
        files: Sequence[str] = (),
    ) -> None:
        """Record one signature; the trusted root matters only for keyless signatures."""
        keyless = outcome is not None and outcome.kind == "keyless"
        self.facts.append(
            SignatureFact(
                path=path,
                kind=kind,
                bundle=bundle,
                verified=verified,
                signer=outcome.signer if outcome else None,
                issuer=outcome.issuer if outcome else None,
                files=tuple(files),
                trusted_root=self.trust_description() if keyless else None,
            )
        )

    def failed(self, outcome: Outcome, bundle_rel: str, what: str) -> None:
        rule = _STATE_RULES[outcome.state]
        hint = ""
        if outcome.state is State.UNVERIFIABLE:
            hint = " (pass the right Sigstore trusted root with --trusted-root, or scan online)"
        self.add(
            rule,
            bundle_rel,
            f"{_STATE_TEXT[outcome.state]} ({what}): {outcome.reason}{hint}",
            key=outcome.state.value,
            details={"state": outcome.state.value, "reason": outcome.reason},
        )


class SignatureCheck(Analyzer):
    name = "signatures"
    description = "Verifying signatures"

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        options = ctx.options
        policy = parse_policy(
            options.section("signatures"),
            config_file=options.config_file,
            base=options.config_dir(),
            present="signatures" in options.sections,
        )
        signature_targets = [t for t in targets if is_signature_file(t.relpath)]
        trust_path = options.trusted_root or policy.trusted_root
        verifier: BundleVerifier | None = None
        if policy.signers is not None:
            cache: list[Trust] = []

            def trust() -> Trust:
                if not cache:
                    cache.append(load_trust(trust_path, offline=options.offline))
                return cache[0]

            if trust_path is not None and signature_targets:
                trust()  # a trusted root the user named must be readable: fail early if not
            verifier = BundleVerifier(policy.signers, trust)
        run = _Run(ctx, policy, targets, verifier)
        for target in signature_targets:
            if target.relpath.rsplit("/", 1)[-1] == MODEL_SIGNATURE:
                self._model_signing(run, target)
            else:
                self._detached(run, target)
        if policy.required:
            for target in targets:
                rel = target.relpath
                if is_signature_file(rel) or rel in run.claimed:
                    continue
                if any_match(policy.required, rel):
                    run.add(
                        "MLS401",
                        rel,
                        "Signature required by policy but none found "
                        f"(no {MODEL_SIGNATURE} in its folder, no detached bundle beside it)",
                        key="unsigned",
                    )
        ctx.progress(len(targets))
        facts = SignatureFacts(
            signatures=tuple(sorted(run.facts, key=lambda f: (f.path, f.bundle))),
            trusted_root=run.trust_description(),
        )
        return AnalyzerResult(findings=run.findings, errors=run.errors, facts=facts)

    # -- model-signing folders --------------------------------------------------------------
    def _model_signing(self, run: _Run, target: Target) -> None:
        bundle_rel = target.relpath
        folder_rel = bundle_rel.rpartition("/")[0]
        prefix = folder_rel + "/" if folder_rel else ""
        folder = target.path.parent
        present = {
            t.relpath[len(prefix) :]: t.size
            for t in run.targets
            if t.relpath.startswith(prefix) and t.relpath != bundle_rel
        }
        shown_folder = folder_rel or "."

        def claim_all() -> None:
            run.claimed.update(prefix + rel for rel in present)

        def fact(verified: bool, outcome: Outcome | None, files: Sequence[str] = ()) -> None:
            run.add_fact(shown_folder, "model-signing", bundle_rel, verified, outcome, files)

        try:
            raw = load_bundle(target.path)
            if raw.dsse is None:
                raise BundleError("a model signature must hold a DSSE envelope")
        except BundleError as exc:
            claim_all()
            run.add("MLS400", bundle_rel, f"Signature is malformed: {exc}", key="malformed")
            fact(False, None)
            return
        if run.verifier is None:
            claim_all()
            self._no_policy(run, bundle_rel)
            fact(False, None)
            return
        outcome = run.verifier.verify(raw)
        if outcome.state is not State.VERIFIED:
            claim_all()
            run.failed(outcome, bundle_rel, f"model-signing signature of {shown_folder}")
            fact(False, None)
            return
        try:
            assert outcome.payload is not None
            manifest = parse_statement(outcome.payload)
        except ManifestError as exc:
            claim_all()
            run.add("MLS400", bundle_rel, f"Signature is malformed: {exc}", key="manifest")
            fact(False, outcome)
            return
        for name in manifest.rejected:
            run.add(
                "MLS408",
                bundle_rel,
                f"Signed manifest entry {_clip(name)!r} is absolute, leaves the model folder,"
                " or is not a usable file name; it was not read",
                key=_clip(name),
            )
        if manifest.single_file:
            run.claimed.add(prefix + manifest.model_name)
        else:
            claim_all()
        exempt = ignore_set(manifest, MODEL_SIGNATURE)

        def ignored(rel: str) -> bool:
            return (
                is_ignored(rel, exempt)
                or any_match(run.policy.ignore, rel)
                or any_match(run.policy.ignore, prefix + rel)
            )

        comparison = compare(manifest, folder, present, ignored=ignored)
        if comparison.unsupported:
            run.add(
                "MLS402",
                bundle_rel,
                f"Signature cannot be verified here: {comparison.unsupported}",
                key="unsupported-hash",
            )
            fact(False, outcome)
            return
        signer = _short(outcome.signer)
        for rel, why in comparison.modified:
            run.add(
                "MLS405",
                prefix + rel,
                f"File was modified after it was signed: {why} (signature {bundle_rel}, "
                f"signed by {signer})",
                key=bundle_rel,
            )
        for rel in comparison.missing:
            run.add(
                "MLS406",
                prefix + rel,
                f"Signed file is missing (signature {bundle_rel}, signed by {signer})",
                key=bundle_rel,
            )
        for rel in comparison.not_covered:
            self._not_covered(run, prefix + rel, bundle_rel)
        if not manifest.single_file:
            listed = set(manifest.files())
            for rel in _links_under(folder):
                if rel in present or rel in listed or ignored(rel):
                    continue
                if _inside(folder.resolve(), folder / rel) and (folder / rel).is_file():
                    self._not_covered(run, prefix + rel, bundle_rel)
                    continue
                run.add(
                    "MLS411",
                    prefix + rel,
                    f"Symlink in a signed model folder leads outside it (or nowhere), and the"
                    f" signature ({bundle_rel}) does not cover it: a loader would read unsigned"
                    " content",
                    key=bundle_rel,
                )
        intact = [prefix + rel for rel in [*comparison.intact, *comparison.lfs_pointers]]
        verified = not (
            manifest.rejected or comparison.modified or comparison.missing or comparison.not_covered
        )
        fact(verified, outcome, intact)

    # -- detached bundles ----------------------------------------------------------------------
    def _detached(self, run: _Run, target: Target) -> None:
        bundle_rel = target.relpath
        artifact_rel = detached_artifact(bundle_rel)
        assert artifact_rel is not None
        artifact = target.path.parent / artifact_rel.rsplit("/", 1)[-1]
        run.claimed.add(artifact_rel)

        def fact(verified: bool, outcome: Outcome | None) -> None:
            files = (artifact_rel,) if verified else ()
            run.add_fact(artifact_rel, "sigstore-bundle", bundle_rel, verified, outcome, files)

        try:
            raw = load_bundle(target.path)
        except BundleError as exc:
            run.add("MLS400", bundle_rel, f"Signature is malformed: {exc}", key="malformed")
            fact(False, None)
            return
        if not os.path.lexists(artifact) or not artifact.is_file():
            run.add(
                "MLS406",
                artifact_rel,
                f"Signed file is missing: {bundle_rel} signs {artifact_rel}, which is not there",
                key=bundle_rel,
            )
            fact(False, None)
            return
        if not _inside(run.ctx.root, artifact):
            run.add(
                "MLS405",
                artifact_rel,
                f"Signed file is a symlink that leads outside the repository ({bundle_rel}); "
                "it was not read",
                key=bundle_rel,
            )
            fact(False, None)
            return
        if run.verifier is None:
            self._no_policy(run, bundle_rel)
            fact(False, None)
            return
        digest_hex = hash_files([artifact]).get(artifact)
        if digest_hex is None:
            run.errors.append(
                ScanError(artifact_rel, "cannot read the signed file", analyzer="signatures")
            )
            fact(False, None)
            return
        digest = bytes.fromhex(digest_hex)
        if raw.message is not None:
            self._detached_message(run, raw, digest, bundle_rel, artifact_rel, fact)
            return
        outcome = run.verifier.verify(raw)
        if outcome.state is not State.VERIFIED:
            run.failed(outcome, bundle_rel, f"detached signature of {artifact_rel}")
            fact(False, None)
            return
        subjects = _statement_subject_digests(outcome.payload or b"")
        if subjects is None:
            run.add(
                "MLS400",
                bundle_rel,
                "Signature is malformed: the signed payload is not an in-toto statement "
                "with subject digests",
                key="statement",
            )
            fact(False, outcome)
            return
        if digest_hex not in subjects:
            run.add(
                "MLS405",
                artifact_rel,
                "File was modified after it was signed: its sha256 is not a subject of the "
                f"signed statement ({bundle_rel}, signed by {_short(outcome.signer)})",
                key=bundle_rel,
            )
            fact(False, outcome)
            return
        fact(True, outcome)

    def _detached_message(
        self,
        run: _Run,
        raw: RawBundle,
        digest: bytes,
        bundle_rel: str,
        artifact_rel: str,
        record: Callable[[bool, Outcome | None], None],
    ) -> None:
        assert run.verifier is not None and raw.message is not None
        recorded = raw.message.digest
        if recorded is not None and recorded != digest:
            # The bundle records the digest it signed; if the signature holds over that digest,
            # the signature is fine and the file changed since.
            outcome = run.verifier.verify(raw, recorded)
            if outcome.state is State.VERIFIED:
                run.add(
                    "MLS405",
                    artifact_rel,
                    "File was modified after it was signed: its sha256 differs from the "
                    f"signed digest ({bundle_rel}, signed by {_short(outcome.signer)})",
                    key=bundle_rel,
                )
                record(False, outcome)
                return
        outcome = run.verifier.verify(raw, digest)
        if outcome.state is not State.VERIFIED:
            run.failed(outcome, bundle_rel, f"detached signature of {artifact_rel}")
            record(False, None)
            return
        record(True, outcome)

    def _not_covered(self, run: _Run, rel: str, bundle_rel: str) -> None:
        required = any_match(run.policy.required, rel)
        run.add(
            "MLS410" if required else "MLS407",
            rel,
            f"File is in a signed model folder but not covered by its signature ({bundle_rel})"
            + ("; the folder must be signed ([signatures] required)" if required else ""),
            key=bundle_rel,
        )

    def _no_policy(self, run: _Run, bundle_rel: str) -> None:
        run.add(
            "MLS409",
            bundle_rel,
            "Signature found but not verified: no signer policy is configured "
            "(add [signatures] with [[signatures.signers]] to .mlsec.toml)",
            key="no-policy",
        )


def _short(signer: str | None) -> str:
    """A signer for messages: key fingerprints cut to 16 hex digits (facts keep them whole)."""
    return re.sub(r"sha256:([0-9a-f]{16})[0-9a-f]{48}", r"sha256:\1", signer or "?")


def _clip(text: str, limit: int = 200) -> str:
    """A name from a signature, cut for messages (a hostile one can be megabytes long)."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _links_under(folder: Path, limit: int = 100_000) -> list[str]:
    """Symlinks under ``folder`` (relative, ``/``-separated): the walk scans a link at its
    target's path or not at all, so a signed folder's own links are listed here."""
    links: list[str] = []
    for base, dirs, files in os.walk(folder, followlinks=False):
        for name in (*dirs, *files):
            full = os.path.join(base, name)
            if os.path.islink(full):
                links.append(Path(full).relative_to(folder).as_posix())
                if len(links) >= limit:
                    return links
    return links


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (ValueError, OSError):
        return False
    return True


def _statement_subject_digests(payload: bytes) -> set[str] | None:
    try:
        statement = boundedjson.loads(payload)
    except boundedjson.JsonLimitError:
        return None
    if not isinstance(statement, dict) or not isinstance(statement.get("subject"), list):
        return None
    digests: set[str] = set()
    for subject in statement["subject"]:
        if isinstance(subject, dict) and isinstance(subject.get("digest"), dict):
            value = subject["digest"].get("sha256")
            if isinstance(value, str):
                digests.add(value.lower())
    return digests
