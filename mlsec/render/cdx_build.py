"""The CycloneDX model of a scan's AIBOM, built with cyclonedx-python-lib's model classes
(the heavy part of :mod:`mlsec.render.cyclonedx`, imported only when a BOM is rendered
afresh: a BOM served from the render memo needs none of it).

Fields without a CycloneDX home are properties in the ``mlsec:`` namespace; ``modelCard``
and ``data`` are inserted as plain JSON by :mod:`mlsec.render.cdx_ml`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
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
from packageurl import PackageURL

from mlsec.aibom.facts import BomFile, BomModel, ChatTemplate, DatasetRef
from mlsec.aibom.gitinfo import web_url
from mlsec.facts import Advisory, Dependency, DependencyFacts, SignatureFacts
from mlsec.findings import Finding, Severity
from mlsec.render.cyclonedx import _PLACEHOLDER_SERIAL, _TIMESTAMP_STANDIN, NS, aibom_facts
from mlsec.report import ScanReport

HF = "https://huggingface.co"
_SEVERITIES = {
    Severity.CRITICAL: VulnerabilitySeverity.CRITICAL,
    Severity.HIGH: VulnerabilitySeverity.HIGH,
    Severity.MEDIUM: VulnerabilitySeverity.MEDIUM,
    Severity.LOW: VulnerabilitySeverity.LOW,
    Severity.INFO: VulnerabilitySeverity.INFO,
}


def _prop(name: str, value: object) -> Property:
    return Property(
        name=f"{NS}:{name}", value=str(value).lower() if isinstance(value, bool) else str(value)
    )


def _uri(text: str) -> XsUri | None:
    """An IRI reference: relative paths are percent-encoded, URLs kept (but for the spaces,
    quotes and brackets the library encodes). None for text that is none, even so: links come
    from scanned cards and GGUF metadata, and one bad link must cost that link, not the BOM
    (the library raises on a stray ``%`` or a second ``#``, the schema refuses a bad port)."""
    from cyclonedx.exception.model import InvalidUriException

    from mlsec.render.cdx_validate import iri_reference

    try:
        uri = XsUri(text if "://" in text else quote(text, safe="/._-~"))
    except InvalidUriException:
        return None
    return uri if iri_reference(str(uri)) else None


def _references(kind: ExternalReferenceType, *texts: str | None) -> list[ExternalReference]:
    """One external reference of ``kind`` per usable link in ``texts``."""
    uris = [_uri(text) for text in texts if text]
    return [ExternalReference(type=kind, url=uri) for uri in uris if uri is not None]


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
        self.facts = aibom_facts(report, spec_version)
        # The BOM describes the scanned folder: its paths are relative to it, like the facts.
        self.report = report.scan_relative_findings()
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
                for ref in _references(ExternalReferenceType.VCS, web_url(git.remote_url)):
                    ref.comment = f"commit {git.commit}"
                    refs.append(ref)
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
        refs += _references(ExternalReferenceType.MODEL_CARD, model.card_path)
        refs += _references(ExternalReferenceType.WEBSITE, model.hub_url)
        refs += self._signature_refs(model)
        ancestors = [
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL,
                name=base,
                bom_ref=f"{model.bom_ref}#base:{base}",
                purl=hub_purl(base),
                external_references=_references(ExternalReferenceType.WEBSITE, _hf_url(base)),
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

    def _file(self, file: BomFile, kind: ComponentType = ComponentType.FILE) -> Component:
        return Component(
            type=kind,
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
            for ref in _references(kind, sig.bundle):
                ref.comment = f"{sig.kind} signature over {sig.path}, {state}; signer: {who}"
                refs.append(ref)
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
        refs = _references(ExternalReferenceType.WEBSITE, dataset.url)
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
        return self._file(file, ComponentType.DATA)

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
