"""CycloneDX ML-BOM (1.6, or 1.5) of a scan: JSON, or XML for ``mlsec bom --format xml``.

Pure: built from ``report.facts["aibom"]`` (models, datasets, git provenance; the analyzer
took the timestamp and hashes), ``report.facts["dependencies"]`` (library components, the
graph, advisories as vulnerabilities), ``report.facts["signatures"]`` and the findings, with
cyclonedx-python-lib's model classes. ``modelCard`` and ``data`` are inserted as plain JSON
(:mod:`mlsec.render.cdx_ml`). Every document is validated with the library's strict
validator before it is returned; an invalid BOM raises :class:`InvalidBomError`.

Fields without a CycloneDX home are properties in the ``mlsec:`` namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import (
    Commit,
    Component,
    ComponentScope,
    ComponentType,
    Pedigree,
)
from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
from cyclonedx.model.license import DisjunctiveLicense, License
from cyclonedx.model.vulnerability import (
    BomTarget,
    BomTargetVersionRange,
    Vulnerability,
    VulnerabilityRating,
    VulnerabilityReference,
    VulnerabilityScoreSource,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from mlsec.aibom.facts import AibomFacts, BomFile, BomModel, ChatTemplate, DatasetRef
from mlsec.aibom.gitinfo import web_url
from mlsec.errors import MlsecError
from mlsec.facts import Advisory, Dependency, DependencyFacts, SignatureFacts
from mlsec.findings import Finding, Severity
from mlsec.render import cdx_ml
from mlsec.report import ScanReport

NS = "mlsec"
SPEC_VERSIONS = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6}
HF = "https://huggingface.co"
# A fixed serial number put in while the content hash (the reproducible serial) is taken.
_PLACEHOLDER_SERIAL = uuid.UUID(int=0)
_TIMESTAMP_STANDIN = datetime(1901, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
_SERIAL_NAMESPACE = uuid.UUID("6f1c1e2a-6d1b-5d2e-9a63-6d6c7365632d")
_SEVERITIES = {
    Severity.CRITICAL: VulnerabilitySeverity.CRITICAL,
    Severity.HIGH: VulnerabilitySeverity.HIGH,
    Severity.MEDIUM: VulnerabilitySeverity.MEDIUM,
    Severity.LOW: VulnerabilitySeverity.LOW,
    Severity.INFO: VulnerabilitySeverity.INFO,
}


class InvalidBomError(MlsecError):
    """The BOM failed schema validation: a bug in mlsec, never written out."""


def _prop(name: str, value: object) -> Property:
    return Property(
        name=f"{NS}:{name}", value=str(value).lower() if isinstance(value, bool) else str(value)
    )


def _uri(text: str) -> XsUri:
    """An IRI reference: relative paths are percent-encoded, URLs kept."""
    if "://" in text:
        return XsUri(text)
    return XsUri(quote(text, safe="/._-~"))


def _license(model: BomModel) -> list[License]:
    if not model.license:
        return []
    if model.license_spdx:
        from cyclonedx.contrib.license.factories import LicenseFactory

        made = LicenseFactory().make_from_string(model.license)
        if isinstance(made, DisjunctiveLicense) and model.license_url:
            made.url = _uri(model.license_url)
        return [made]
    url = _uri(model.license_url) if model.license_url else None
    return [DisjunctiveLicense(name=model.license, url=url)]


def _hub_id(model_id: str) -> bool:
    parts = model_id.split("/")
    return 0 < len(parts) <= 2 and all(
        p and not p.startswith(".") and all(c.isalnum() or c in "-_." for c in p) for p in parts
    )


def _hf_url(model_id: str) -> str | None:
    return f"{HF}/{model_id}" if _hub_id(model_id) else None


def hub_purl(model_id: str, revision: str | None = None) -> PackageURL | None:
    """``pkg:huggingface/<org>/<name>@<revision>`` (the purl spec's huggingface type: the
    revision is the hub commit, lower-cased)."""
    if not _hub_id(model_id):
        return None
    namespace, _, name = model_id.rpartition("/")
    return PackageURL(
        type="huggingface",
        namespace=namespace or None,
        name=name,
        version=revision.lower() if revision else None,
    )


def repository_purl(remote_url: str | None, commit: str | None) -> PackageURL | None:
    """A purl for the repository when its remote is on a forge with a purl type."""
    url = web_url(remote_url) if remote_url else None
    if not url:
        return None
    host, _, path = url.removeprefix("https://").partition("/")
    parts = path.strip("/").split("/")
    kinds = {"github.com": "github", "bitbucket.org": "bitbucket", "huggingface.co": "huggingface"}
    if host not in kinds or len(parts) != 2 or not all(parts):
        return None
    return PackageURL(type=kinds[host], namespace=parts[0], name=parts[1], version=commit)


class BomBuilder:
    def __init__(self, report: ScanReport, spec_version: str = "1.6") -> None:
        if spec_version not in SPEC_VERSIONS:
            raise MlsecError(
                f"unsupported CycloneDX version {spec_version}",
                hint=f"use one of: {', '.join(SPEC_VERSIONS)}",
            )
        facts = report.facts.get("aibom")
        if not isinstance(facts, AibomFacts):
            raise MlsecError(
                "the scan has no AI bill of materials data",
                hint="the aibom analyzer did not run (was it excluded, or did it fail? see "
                "'errors' in a JSON report)",
            )
        # The BOM describes the scanned folder: its paths are relative to it, like the facts.
        self.report = report.scan_relative_findings()
        self.facts = facts
        self.spec_version = spec_version
        deps = report.facts.get("dependencies")
        self.deps = deps if isinstance(deps, DependencyFacts) else None
        sigs = report.facts.get("signatures")
        self.sigs = sigs if isinstance(sigs, SignatureFacts) else None
        self.extras: dict[str, dict[str, Any]] = {}
        self._library_only_by_models: set[str] = set()

    # -- assembly -----------------------------------------------------------------------
    def build(self) -> Bom:
        facts = self.facts
        # A fixed stand-in, replaced in the serialised text (render_bom): the rest of the
        # document does not depend on the time, so it can be memoised.
        timestamp = _TIMESTAMP_STANDIN if facts.timestamp else None
        repo = self._repository()
        tool = Component(
            type=ComponentType.APPLICATION,
            name="mlsec",
            version=self.report.tool_version,
            bom_ref="tool:mlsec",
            external_references=[
                ExternalReference(
                    type=ExternalReferenceType.WEBSITE,
                    url=XsUri("https://github.com/mlsec-dev/mlsec"),
                )
            ],
        )
        metadata = BomMetaData(component=repo, timestamp=timestamp)
        if timestamp is None:
            metadata.timestamp = None  # type: ignore[assignment]
        metadata.tools.components.clear()
        metadata.tools.components.add(tool)
        bom = Bom(metadata=metadata, serial_number=self._serial())
        _index_dependencies(bom)

        attached = self._model_findings()
        model_components = [self._model(m, attached.get(m.bom_ref, [])) for m in facts.models]
        data_components = [self._dataset(d) for d in facts.datasets]
        data_components += [self._loose_file(f) for f in facts.loose_files]
        libraries = self._libraries()
        model_libraries = self._model_libraries(libraries)
        for component in [*model_components, *data_components, *libraries.values()]:
            bom.components.add(component)

        # The graph: the repository holds its models, datasets and direct dependencies;
        # models use their datasets; libraries depend on what their lock file says.
        direct = [libraries[k] for k in self._direct_library_keys() if k in libraries]
        bom.register_dependency(repo, [*model_components, *data_components, *direct])
        by_ref = {str(c.bom_ref): c for c in data_components}
        for model, component in zip(facts.models, model_components, strict=True):
            uses = [by_ref[r] for r in model.datasets if r in by_ref]
            uses += [libraries[k] for k in model_libraries.get(model.bom_ref, ())]
            bom.register_dependency(component, uses)
        for component in data_components:
            bom.register_dependency(component, [])
        edges = self._library_edges()
        for key, component in libraries.items():
            bom.register_dependency(
                component, [libraries[d] for d in edges.get(key, ()) if d in libraries]
            )
        for vulnerability in self._vulnerabilities(libraries):
            bom.vulnerabilities.add(vulnerability)
        return bom

    def _serial(self) -> uuid.UUID:
        return _PLACEHOLDER_SERIAL  # replaced after serialisation (render_bom's _stamp)

    def _repository(self) -> Component:
        facts, git = self.facts, self.facts.git
        props = []
        refs = []
        if git:
            props += [_prop("git:commit", git.commit), _prop("git:dirty", git.dirty)]
            if git.branch:
                props.append(_prop("git:branch", git.branch))
            if git.tag:
                props.append(_prop("git:tag", git.tag))
            if git.remote_url:
                props.append(_prop("git:remote", git.remote_url))
                url = web_url(git.remote_url)
                if url:
                    refs.append(
                        ExternalReference(
                            type=ExternalReferenceType.VCS,
                            url=XsUri(url),
                            comment=f"commit {git.commit}",
                        )
                    )
        for finding in self._repository_findings():
            props.append(_prop("finding", _finding_text(finding)))
        # The repository's version is its tag at HEAD, else the commit itself.
        version = (git.tag or git.commit) if git else None
        return Component(
            type=ComponentType.APPLICATION,
            name=facts.repository,
            version=version,
            bom_ref="repository",
            purl=repository_purl(git.remote_url, git.commit) if git else None,
            external_references=refs,
            properties=props,
            pedigree=Pedigree(commits=[Commit(uid=git.commit)]) if git else None,
        )

    # -- models -------------------------------------------------------------------------
    def _model(self, model: BomModel, findings: list[Finding]) -> Component:
        props = [_prop("path", model.path), _prop("size", model.size)]
        props += [_prop("format", f) for f in model.formats]
        if model.framework:
            props.append(_prop("framework", model.framework))
        if model.library_name:
            props.append(_prop("library", model.library_name))
        if model.parameter_count is not None:
            props.append(_prop("parameter-count", model.parameter_count))
        if model.version_source:
            props.append(_prop("version-source", model.version_source))
        if model.last_commit:
            props.append(_prop("git:last-commit", model.last_commit))
            props.append(_prop("git:committed", model.committed))
        props += [_prop("language", lang) for lang in model.languages]
        props += [_prop("missing-file", name) for name in model.missing_files]
        for result in model.completeness:
            props.append(_prop(f"completeness:{result.profile}", f"{result.score:.2f}"))
            if result.missing:
                props.append(
                    _prop(f"completeness:{result.profile}:missing", ", ".join(result.missing))
                )
        props += [_prop("finding", _finding_text(f)) for f in findings]

        refs: list[ExternalReference] = []
        if model.card_path:
            refs.append(
                ExternalReference(type=ExternalReferenceType.MODEL_CARD, url=_uri(model.card_path))
            )
        if model.hub_url:
            refs.append(
                ExternalReference(type=ExternalReferenceType.WEBSITE, url=_uri(model.hub_url))
            )
        refs += self._signature_refs(model)
        ancestors = [
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL,
                name=base,
                bom_ref=f"{model.bom_ref}#base:{base}",
                purl=hub_purl(base),
                external_references=[
                    ExternalReference(type=ExternalReferenceType.WEBSITE, url=XsUri(url))
                    for url in [_hf_url(base)]
                    if url
                ],
            )
            for base in model.base_models
        ]
        single = len(model.files) == 1 and model.files[0].path == model.path
        parts = [] if single else [self._file(f) for f in model.files]
        parts += [self._template(model, t) for t in model.chat_templates]
        component = Component(
            type=ComponentType.MACHINE_LEARNING_MODEL,
            name=model.name,
            version=model.version,
            bom_ref=model.bom_ref,
            description=model.description,
            supplier=OrganizationalEntity(name=model.supplier) if model.supplier else None,
            authors=[OrganizationalContact(name=a) for a in model.authors],
            licenses=_license(model),
            hashes=_hashes(model.files[0]) if single else [],
            external_references=refs,
            properties=props + (_file_props(model.files[0]) if single else []),
            pedigree=Pedigree(ancestors=ancestors) if ancestors else None,
            purl=hub_purl(model.hub_id, model.hub_revision) if model.hub_id else None,
            components=parts,
            tags=model.tags,
        )
        card = self._model_card(model)
        if card:
            self.extras[model.bom_ref] = {"modelCard": card}
        return component

    def _file(self, file: BomFile) -> Component:
        return Component(
            type=ComponentType.FILE,
            name=file.path,
            bom_ref=f"file:{file.path}",
            hashes=_hashes(file),
            properties=[_prop("role", file.role), *_file_props(file)],
        )

    def _template(self, model: BomModel, template: ChatTemplate) -> Component:
        """A chat template as a part of its model: its digest and its text (loaders render
        it, so it is reviewed like code)."""
        bom_ref = f"{model.bom_ref}#chat-template:{template.source}:{template.name}"
        data: dict[str, Any] = {
            "type": "configuration",
            "name": template.name,
            "contents": {"attachment": {"contentType": "text/x-jinja2", "content": template.text}},
        }
        self.extras[bom_ref] = {"data": [data]}
        return Component(
            type=ComponentType.DATA,
            name=f"{template.source}#{template.name}",
            bom_ref=bom_ref,
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=template.sha256)],
            properties=[_prop("role", "chat-template"), _prop("template:source", template.source)],
        )

    def _model_card(self, model: BomModel) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if model.approach:
            params["approach"] = {"type": model.approach}
        if model.task:
            params["task"] = model.task
        if model.architecture_family:
            params["architectureFamily"] = model.architecture_family
        if model.architecture:
            params["modelArchitecture"] = model.architecture
        datasets: list[dict[str, Any]] = [{"ref": ref} for ref in model.datasets]
        datasets += [{"type": "dataset", "description": t} for t in model.training_data_notes]
        if datasets:
            params["datasets"] = datasets
        if model.inputs:
            params["inputs"] = [{"format": f} for f in model.inputs]
        if model.outputs:
            params["outputs"] = [{"format": f} for f in model.outputs]
        card: dict[str, Any] = {"bom-ref": f"{model.bom_ref}#model-card"}
        if params:
            card["modelParameters"] = params
        if model.metrics:
            card["quantitativeAnalysis"] = {
                "performanceMetrics": [
                    {"type": m.type, "value": m.value, **({"slice": m.slice} if m.slice else {})}
                    for m in model.metrics
                ]
            }
        considerations: dict[str, Any] = {}
        if model.use_cases:
            considerations["useCases"] = list(model.use_cases)
        if model.limitations:
            considerations["technicalLimitations"] = list(model.limitations)
        if model.tradeoffs:
            considerations["performanceTradeoffs"] = list(model.tradeoffs)
        if model.ethical_considerations:
            considerations["ethicalConsiderations"] = [
                {"name": text} for text in model.ethical_considerations
            ]
        if considerations:
            card["considerations"] = considerations
        props = [{"name": f"{NS}:out-of-scope-use", "value": t} for t in model.out_of_scope]
        # Evaluation prose has no CycloneDX field of its own (quantitativeAnalysis holds
        # metrics, which come from model-index).
        props += [{"name": f"{NS}:evaluation", "value": t} for t in model.evaluation_notes]
        props += [
            {"name": f"{NS}:architecture:{key}", "value": value}
            for key, value in sorted(model.architecture_details.items())
        ]
        props += [
            {"name": f"{NS}:metadata:{key}", "value": value}
            for key, value in model.format_metadata.items()
        ]
        if props:
            card["properties"] = props
        return card if len(card) > 1 else {}

    def _signature_refs(self, model: BomModel) -> list[ExternalReference]:
        """Each signature over the model's files as an external reference to its bundle:
        ``attestation`` for a model-signing manifest (an in-toto statement), else
        ``digital-signature`` (CycloneDX 1.6; ``attestation`` in 1.5), the verification
        result and the signer identity in its comment."""
        if self.sigs is None:
            return []
        paths = {f.path for f in model.files} | {model.path}
        refs: list[ExternalReference] = []
        for sig in self.sigs.signatures:
            if sig.path not in paths and not paths & set(sig.files):
                continue
            kind = ExternalReferenceType.ATTESTATION
            if sig.kind != "model-signing" and self.spec_version != "1.5":
                kind = ExternalReferenceType.DIGITAL_SIGNATURE
            who = sig.signer or "unknown signer"
            if sig.issuer:
                who += f" (issuer {sig.issuer})"
            state = "verified" if sig.verified else "NOT verified"
            refs.append(
                ExternalReference(
                    type=kind,
                    url=_uri(sig.bundle),
                    comment=f"{sig.kind} signature over {sig.path}, {state}; signer: {who}",
                )
            )
        return refs

    def _model_findings(self) -> dict[str, list[Finding]]:
        """Findings on a model's files (or its folder) by model bom-ref."""
        owners: dict[str, str] = {}
        for model in self.facts.models:
            owners[model.path] = model.bom_ref
            for file in model.files:
                owners[file.path] = model.bom_ref
        attached: dict[str, list[Finding]] = {}
        for finding in self.report.findings:
            owner = owners.get(finding.path)
            if owner:
                attached.setdefault(owner, []).append(finding)
        return attached

    def _repository_findings(self) -> list[Finding]:
        owned = {m.path for m in self.facts.models} | {
            f.path for m in self.facts.models for f in m.files
        }
        # Dependency findings are the vulnerabilities section's (advisories) or belong to
        # the manifests, not to the repository component.
        return [
            f
            for f in self.report.findings
            if f.path not in owned and not f.rule_id.startswith("MLS2")
        ]

    # -- datasets -------------------------------------------------------------------------
    def _dataset(self, dataset: DatasetRef) -> Component:
        props = [_prop("dataset:source", s) for s in dataset.sources]
        props += [_prop("dataset:role", r) for r in dataset.roles]
        refs = (
            [ExternalReference(type=ExternalReferenceType.WEBSITE, url=XsUri(dataset.url))]
            if dataset.url
            else []
        )
        data: dict[str, Any] = {"type": "dataset", "name": dataset.name}
        if dataset.url:
            data["contents"] = {"url": dataset.url}
        self.extras[dataset.bom_ref] = {"data": [data]}
        return Component(
            type=ComponentType.DATA,
            name=dataset.name,
            bom_ref=dataset.bom_ref,
            external_references=refs,
            properties=props,
        )

    # -- dependencies -------------------------------------------------------------------
    def _packages(self) -> dict[str, list[Dependency]]:
        found: dict[str, list[Dependency]] = {}
        for dep in self.deps.dependencies if self.deps else ():
            found.setdefault(_lib_key(dep), []).append(dep)
        return found

    def _direct_library_keys(self) -> list[str]:
        return sorted({k for k, deps in self._packages().items() if any(d.direct for d in deps)})

    def _library_edges(self) -> dict[str, list[str]]:
        packages = self._packages()
        by_name: dict[str, str] = {}
        for key, deps in packages.items():
            by_name.setdefault(deps[0].name, key)
        return {
            key: sorted({by_name[n] for d in deps for n in d.depends_on if n in by_name})
            for key, deps in packages.items()
        }

    def _model_libraries(self, libraries: dict[str, Component]) -> dict[str, list[str]]:
        """Library keys each model uses, adding a component for a library the repository's
        manifests do not list (named by the model only: no version is known)."""
        by_name: dict[str, str] = {}
        for key, deps in sorted(self._packages().items()):
            by_name.setdefault(_normal(deps[0].name), key)
        edges: dict[str, list[str]] = {}
        for model in self.facts.models:
            keys: list[str] = []
            for lib in model.libraries:
                known = by_name.get(_normal(lib.name))
                key = known or str(PackageURL(type="pypi", name=lib.name))
                if known is None and key not in libraries:
                    libraries[key] = Component(
                        type=ComponentType.LIBRARY,
                        name=lib.name,
                        bom_ref=key,
                        purl=PackageURL(type="pypi", name=lib.name),
                        properties=[],
                    )
                    self._library_only_by_models.add(key)
                component = libraries[key]
                for source in lib.sources:
                    component.properties.add(_prop("library:named-by", source))
                if lib.version:
                    component.properties.add(
                        _prop("library:saved-with", f"{lib.version} ({model.path})")
                    )
                if key not in keys:
                    keys.append(key)
            edges[model.bom_ref] = keys
        return edges

    def _loose_file(self, file: BomFile) -> Component:
        """A tokenizer vocabulary or arrays file outside every model: data."""
        self.extras[f"file:{file.path}"] = {
            "data": [
                {
                    "type": "other",
                    "name": file.path,
                    "description": "tokenizer vocabulary"
                    if file.role == "tokenizer"
                    else "arrays file (not a model's weights)",
                }
            ]
        }
        return Component(
            type=ComponentType.DATA,
            name=file.path,
            bom_ref=f"file:{file.path}",
            hashes=_hashes(file),
            properties=[_prop("role", file.role), *_file_props(file)],
        )

    def _libraries(self) -> dict[str, Component]:
        out: dict[str, Component] = {}
        for key, deps in sorted(self._packages().items()):
            first = deps[0]
            props = [_prop("dependency:source", s) for s in sorted({d.source for d in deps})]
            props += [
                _prop("dependency:specifier", s)
                for s in sorted({d.specifier for d in deps if d.specifier})
            ]
            out[key] = Component(
                type=ComponentType.LIBRARY,
                name=first.name,
                version=first.version,
                bom_ref=key,
                # Development-only dependencies are not needed to run the code.
                scope=ComponentScope.OPTIONAL if all(d.dev for d in deps) else None,
                purl=PackageURL(type="pypi", name=first.name, version=first.version),
                properties=props,
            )
        return out

    def _vulnerabilities(self, libraries: Mapping[str, Component]) -> Iterable[Vulnerability]:
        advisories: list[Advisory] = list(self.deps.advisories) if self.deps else []
        grouped: dict[str, list[Advisory]] = {}
        for advisory in advisories:
            grouped.setdefault(advisory.id, []).append(advisory)
        for vuln_id, items in sorted(grouped.items()):
            first = items[0]
            ratings = []
            if first.cvss_score is not None or first.cvss_vector:
                ratings.append(
                    VulnerabilityRating(
                        score=(
                            Decimal(str(first.cvss_score)) if first.cvss_score is not None else None
                        ),
                        severity=_severity(first.severity),
                        method=_cvss_method(first.cvss_vector),
                        vector=first.cvss_vector,
                    )
                )
            else:
                ratings.append(VulnerabilityRating(severity=_severity(first.severity)))
            affects = []
            for advisory in items:
                key = _lib_key_of(advisory.package, advisory.version)
                if key in libraries:
                    affects.append(
                        BomTarget(
                            ref=key,
                            versions=[BomTargetVersionRange(version=advisory.version)],
                        )
                    )
            yield Vulnerability(
                bom_ref=f"vulnerability:{vuln_id}",
                id=vuln_id,
                source=_vuln_source(vuln_id),
                references=[
                    VulnerabilityReference(id=alias, source=_vuln_source(alias))
                    for alias in first.aliases
                    if alias != vuln_id
                ],
                ratings=ratings,
                description=first.summary or None,
                recommendation=(
                    f"Upgrade {first.package} to {' or '.join(first.fix_versions)}"
                    if first.fix_versions
                    else None
                ),
                affects=affects,
            )


def _normal(name: str) -> str:
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def _index_dependencies(bom: Bom) -> None:
    """Give ``bom`` a ``register_dependency`` that finds a registered component by its
    bom-ref in a dict. The library's own scans every registered dependency on each call
    (and ``Bom.validate`` calls it once per component before output), which is quadratic:
    5 s for a repository of 1,000 models. Same semantics, set on the instance because the
    library's serialiser looks its classes up by name (a subclass would not serialise)."""
    from cyclonedx.model.dependency import Dependency

    index: dict[str, Dependency] = {}
    library_register = bom.register_dependency

    def register(target: Any, depends_on: Iterable[Any] | None = None) -> None:
        key = target.bom_ref.value
        if key is None:  # a reference the library assigns later: its own way
            library_register(target, depends_on)
            return
        uses = list(depends_on or ())
        known = index.get(key)
        if known is None:
            known = Dependency(
                ref=target.bom_ref, dependencies=[Dependency(ref=u.bom_ref) for u in uses]
            )
            bom.dependencies.add(known)
            index[key] = known
        elif uses:
            known.dependencies.update(Dependency(ref=u.bom_ref) for u in uses)
        for used in uses:
            register(used)

    setattr(bom, "register_dependency", register)  # noqa: B010 - an instance override


def _lib_key_of(name: str, version: str | None) -> str:
    return str(PackageURL(type="pypi", name=name, version=version))


def _lib_key(dep: Dependency) -> str:
    return _lib_key_of(dep.name, dep.version)


def _severity(severity: Severity | None) -> VulnerabilitySeverity:
    return _SEVERITIES[severity] if severity else VulnerabilitySeverity.UNKNOWN


def _cvss_method(vector: str | None) -> VulnerabilityScoreSource:
    if vector and vector.startswith("CVSS:4"):
        return VulnerabilityScoreSource.CVSS_V4
    if vector and vector.startswith("CVSS:3.1"):
        return VulnerabilityScoreSource.CVSS_V3_1
    if vector and vector.startswith("CVSS:3"):
        return VulnerabilityScoreSource.CVSS_V3
    if vector:
        return VulnerabilityScoreSource.CVSS_V2
    return VulnerabilityScoreSource.OTHER


def _vuln_source(vuln_id: str) -> VulnerabilitySource:
    if vuln_id.startswith("GHSA-"):
        return VulnerabilitySource(
            name="GitHub Advisory Database",
            url=XsUri(f"https://github.com/advisories/{vuln_id}"),
        )
    if vuln_id.startswith("CVE-"):
        return VulnerabilitySource(
            name="NVD", url=XsUri(f"https://nvd.nist.gov/vuln/detail/{vuln_id}")
        )
    return VulnerabilitySource(name="OSV", url=XsUri(f"https://osv.dev/vulnerability/{vuln_id}"))


def _hashes(file: BomFile) -> list[HashType]:
    return [HashType(alg=HashAlgorithm.SHA_256, content=file.sha256)] if file.sha256 else []


def _file_props(file: BomFile) -> list[Property]:
    props = [_prop("file:size", file.size), _prop("file:hash-source", file.hash_source)]
    if file.format:
        props.append(_prop("file:format", file.format))
    return props


def _finding_text(finding: Finding) -> str:
    where = finding.path + (f"!{finding.member}" if finding.member else "")
    return f"{finding.rule_id} {finding.severity.value} {where}: {finding.message}"


# -- serialisation and validation ---------------------------------------------------------------
def _validate_json(text: str, spec_version: str) -> None:
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SPEC_VERSIONS[spec_version]).validate_str(text)
    if error is not None:
        raise InvalidBomError(
            f"internal error: the CycloneDX {spec_version} BOM does not validate: {error}",
            hint="please report this; no BOM was written",
        )


def _validate_xml(text: str, spec_version: str) -> None:
    from cyclonedx.exception import MissingOptionalDependencyException
    from cyclonedx.validation.xml import XmlValidator

    try:
        error = XmlValidator(SPEC_VERSIONS[spec_version]).validate_str(text)
    except MissingOptionalDependencyException as exc:
        raise MlsecError(
            "XML output needs lxml to validate the BOM",
            hint="pip install 'cyclonedx-python-lib[xml-validation]', or use --format json",
        ) from exc
    if error is not None:
        raise InvalidBomError(
            f"internal error: the CycloneDX {spec_version} XML BOM does not validate: {error}",
            hint="please report this; no BOM was written",
        )


def _stamp_time(template: str, facts: AibomFacts, fmt: str) -> str:
    """The real timestamp in place of the stand-in: the first occurrence is metadata's
    (metadata precedes every component, and scanned text cannot hold the unescaped
    pattern)."""
    if not facts.timestamp:
        return template
    real = datetime.fromtimestamp(facts.timestamp, tz=timezone.utc).isoformat()
    standin = _TIMESTAMP_STANDIN.isoformat()
    pattern = '"timestamp": "{}"' if fmt == "json" else "<timestamp>{}</timestamp>"
    return template.replace(pattern.format(standin), pattern.format(real), 1)


def _serial(document: str, facts: AibomFacts) -> str:
    """The serial number: a UUIDv5 of the JSON document's content (with the placeholder
    serial in it) when reproducible, else the run's random one."""
    if facts.reproducible or not facts.serial:
        digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
        return uuid.uuid5(_SERIAL_NAMESPACE, digest).urn
    return uuid.UUID(facts.serial.removeprefix("urn:uuid:")).urn


def _stamp(template: str, facts: AibomFacts) -> str:
    """The JSON document of this run from its template."""
    timed = _stamp_time(template, facts, "json")
    return timed.replace(_PLACEHOLDER_SERIAL.urn, _serial(timed, facts), 1)


class ValidationMemo:
    """Digests of BOMs that passed strict validation, so an unchanged repository's BOM is not
    validated again (importing the validator alone costs seconds: jsonschema builds an IRI
    grammar). The key is the document without its serial number and timestamp (which the
    library writes in valid formats), plus the mlsec, cyclonedx-python-lib and spec versions
    and the output format. A miss, or no memo, validates.

    Beside it, the last few rendered JSON documents (``bom-render/``, serial and timestamp
    left as stand-ins), keyed on everything the renderer reads from the report: the BOM of
    an unchanged repository is not rebuilt (the library's model classes cost about a
    millisecond per model)."""

    LIMIT = 256
    RENDERED = 8

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            self.digests: list[str] = [str(d) for d in data.get("digests", [])][-self.LIMIT :]
        except (OSError, ValueError, AttributeError):
            self.digests = []

    @staticmethod
    def key(text: str, fmt: str, spec_version: str, tool_version: str) -> str:
        from importlib.metadata import version

        data = json.loads(text)
        data.pop("serialNumber", None)
        data.get("metadata", {}).pop("timestamp", None)
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False)
        salt = f"{tool_version}\0{version('cyclonedx-python-lib')}\0{spec_version}\0{fmt}\0"
        return hashlib.sha256((salt + canonical).encode("utf-8")).hexdigest()

    @staticmethod
    def render_key(report: ScanReport, fmt: str, spec_version: str) -> str:
        """A digest of every input of the renderer (what :class:`BomBuilder` reads)."""
        from importlib.metadata import version

        facts = report.facts.get("aibom")
        aibom = facts.to_json() if isinstance(facts, AibomFacts) else None
        if isinstance(aibom, dict):
            aibom.pop("serial", None)
            aibom["timestamp"] = bool(aibom.get("timestamp"))
        inputs = {
            "aibom": aibom,
            "dependencies": _to_json(report.facts.get("dependencies")),
            "signatures": _to_json(report.facts.get("signatures")),
            "findings": [f.to_dict() for f in report.findings],
            "versions": [report.tool_version, version("cyclonedx-python-lib"), spec_version, fmt],
        }
        canonical = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def _rendered_file(self, key: str) -> Path:
        return self.file.parent / "bom-render" / f"{key}.json"

    def rendered(self, key: str) -> str | None:
        try:
            return self._rendered_file(key).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def keep(self, key: str, template: str) -> None:
        target = self._rendered_file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(template, encoding="utf-8")
            os.replace(tmp, target)
            kept = sorted(target.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for old in kept[: -self.RENDERED]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a memo that cannot be written only costs time

    def __contains__(self, digest: object) -> bool:
        return digest in self.digests

    def add(self, digest: str) -> None:
        self.digests = [*(d for d in self.digests if d != digest), digest][-self.LIMIT :]
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": 1, "digests": self.digests}), "utf-8")
            os.replace(tmp, self.file)
        except OSError:
            pass  # a memo that cannot be written only costs time


def _to_json(facts: object) -> Any:
    to_json = getattr(facts, "to_json", None)
    return to_json() if callable(to_json) else None


def render_bom(
    report: ScanReport,
    *,
    fmt: str = "json",
    spec_version: str = "1.6",
    memo: ValidationMemo | None = None,
) -> str:
    """The validated BOM document as text (``fmt`` is "json" or "xml")."""
    import warnings

    builder = BomBuilder(report, spec_version)
    render_key = ValidationMemo.render_key(report, fmt, spec_version) if memo else ""
    template = memo.rendered(render_key) if memo is not None and fmt == "json" else None
    if memo is not None and template is not None:
        text = _stamp(template, builder.facts)
        if ValidationMemo.key(text, fmt, spec_version, report.tool_version) in memo:
            return text
    bom = builder.build()
    schema = SPEC_VERSIONS[spec_version]
    with warnings.catch_warnings():
        # The library warns about components it considers incomplete; validation decides.
        warnings.simplefilter("ignore")
        # The JSON form is always built: it is the one the memo keys on, and it carries the
        # same content as the XML one.
        raw = make_outputter(bom, OutputFormat.JSON, schema).output_as_string()
        template = cdx_ml.insert_json(raw, builder.extras)
        xml = ""
        if fmt == "xml":
            raw_xml = make_outputter(bom, OutputFormat.XML, schema).output_as_string()
            xml = cdx_ml.insert_xml(raw_xml, builder.extras, spec_version)
    text = _stamp(template, builder.facts)
    if fmt == "xml":
        serial = json.loads(text)["serialNumber"]
        xml = _stamp_time(xml, builder.facts, "xml").replace(_PLACEHOLDER_SERIAL.urn, serial, 1)
    digest = ValidationMemo.key(text, fmt, spec_version, report.tool_version) if memo else ""
    if memo is None or digest not in memo:
        if fmt == "xml":
            _validate_xml(xml, spec_version)
        else:
            _validate_json(text, spec_version)
        if memo is not None:
            memo.add(digest)
    if memo is not None and fmt == "json":
        memo.keep(render_key, template)
    return xml if fmt == "xml" else text


def report_memo(report: ScanReport) -> ValidationMemo | None:
    """The validation memo in the scan's cache folder (``--cache-dir``, else the user cache),
    shared by `scan --format cyclonedx` and `mlsec bom`; None with ``--no-cache``."""
    if report.cache_root is None:
        return None
    return ValidationMemo(Path(report.cache_root) / "bom-validated.json")


def render(report: ScanReport) -> str:
    """``mlsec scan --format cyclonedx``: CycloneDX 1.6 JSON, validated unless the same
    document validated before (the memo: the validator's import alone costs about a
    second)."""
    return render_bom(report, memo=report_memo(report))
