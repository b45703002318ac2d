"""SPDX 3.0.1 JSON-LD of a scan's AI bill of materials (``mlsec bom --format spdx3``).

The same facts as the CycloneDX ML-BOM (:mod:`mlsec.render.cyclonedx`), in the Core,
Software, AI and Dataset profiles, built with spdx-python-model (the SPDX project's bindings,
generated from the SHACL model: every property is type-checked when set, and serialising
checks each class's required properties and cardinalities).

- the repository is a ``software_Package`` (purpose ``source``), the document's root, with its
  version (tag, else commit), purl and VCS reference;
- each model is an ``ai_AIPackage``: description, version, purl, supplier, licence
  (``hasDeclaredLicense``), use cases (``ai_informationAboutApplication``), limitations,
  training notes, metrics and architecture hyper-parameters (``ai_metric``,
  ``ai_hyperparameter``), its files (``contains``), datasets (``trainedOn``/``testedOn``),
  libraries (``dependsOn``), base models (``ancestorOf``), signatures (external references);
- datasets are ``dataset_DatasetPackage`` (type ``noAssertion``: a card names a dataset, not
  its kind); tokenizer vocabularies and arrays outside any model are ``software_File`` data.

Pure: no clock (the time is the analyzer's), no I/O. With ``SOURCE_DATE_EPOCH`` (or
``--reproducible``) the document namespace is derived from the content, so the output is
byte-identical between runs.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from mlsec.aibom.facts import AibomFacts, BomFile, BomModel, DatasetRef
from mlsec.aibom.gitinfo import web_url
from mlsec.errors import MlsecError
from mlsec.facts import DependencyFacts, SignatureFacts
from mlsec.report import ScanReport

SPEC_VERSION = "3.0.1"
_PLACEHOLDER = uuid.UUID(int=0)
_NAMESPACE = uuid.UUID("2b3c7f4e-1c55-5a8e-9d41-6d6c73656333")
_LICENSE_REF = re.compile(r"[^A-Za-z0-9.-]+")


class _Document:
    """Builds the object set; ids are ``<namespace>#<kind>/<name>``."""

    def __init__(self, report: ScanReport, facts: AibomFacts, namespace: str) -> None:
        from spdx_python_model import v3_0_1

        spdx: Any = v3_0_1
        self.spdx = spdx
        self.report = report
        self.facts = facts
        self.namespace = namespace
        self.objects: list[Any] = []
        self.ids: set[str] = set()
        deps = report.facts.get("dependencies")
        self.deps = deps if isinstance(deps, DependencyFacts) else None
        sigs = report.facts.get("signatures")
        self.sigs = sigs if isinstance(sigs, SignatureFacts) else None
        assert facts.timestamp is not None
        agent_id = self.id("agent", "mlsec")
        tool_id = self.id("tool", f"mlsec-{report.tool_version}")
        self.agent: Any = spdx.SoftwareAgent(_id=agent_id, name="mlsec")
        self.tool: Any = spdx.Tool(_id=tool_id, name=f"mlsec {report.tool_version}")
        self.creation: Any = spdx.CreationInfo(
            specVersion=SPEC_VERSION,
            created=datetime.fromtimestamp(facts.timestamp, tz=timezone.utc),
            createdBy=[agent_id],
            createdUsing=[tool_id],
        )
        for element in (self.agent, self.tool):
            self.add(element)

    def id(self, kind: str, name: str) -> str:
        return f"{self.namespace}#{kind}/{quote(name, safe='')}"

    def add(self, element: Any) -> Any:
        if element._id in self.ids:
            return element
        element.creationInfo = self.creation
        self.ids.add(element._id)
        self.objects.append(element)
        return element

    def relate(self, source: str, kind: str, targets: Iterable[str]) -> None:
        targets = sorted(set(targets))
        if not targets:
            return
        spdx = self.spdx
        relationship = spdx.Relationship(
            _id=self.id(
                "relationship",
                f"{source}/{kind}/{hashlib.sha256(' '.join(targets).encode()).hexdigest()[:16]}",
            ),
            from_=source,
            relationshipType=getattr(spdx.RelationshipType, kind),
            to=targets,
        )
        self.add(relationship)

    # -- elements -------------------------------------------------------------------------
    def repository(self) -> Any:
        spdx, git = self.spdx, self.facts.git
        package = spdx.software_Package(
            _id=self.id("repository", self.facts.repository),
            name=self.facts.repository,
            software_primaryPurpose=spdx.software_SoftwarePurpose.source,
        )
        if git:
            from mlsec.render.cyclonedx import repository_purl

            package.software_packageVersion = git.tag or git.commit
            purl = repository_purl(git.remote_url, git.commit)
            if purl is not None:
                package.software_packageUrl = str(purl)
            url = web_url(git.remote_url) if git.remote_url else None
            if url:
                package.software_downloadLocation = f"git+{url}@{git.commit}"
                package.externalRef.append(
                    spdx.ExternalRef(
                        externalRefType=spdx.ExternalRefType.vcs,
                        locator=[url],
                        comment=f"commit {git.commit}",
                    )
                )
        return self.add(package)

    def _license(self, model: BomModel) -> str | None:
        if not model.license:
            return None
        from cyclonedx.spdx import fixup_id

        if model.license_spdx:  # an SPDX id in its canonical case ("apache-2.0" on the Hub)
            expression = fixup_id(model.license) or model.license
        else:
            expression = "LicenseRef-" + (
                _LICENSE_REF.sub("-", model.license).strip("-") or "unnamed"
            )
        license_id = self.id("license", expression)
        if license_id not in self.ids:
            element = self.spdx.simplelicensing_LicenseExpression(
                _id=license_id, simplelicensing_licenseExpression=expression
            )
            if not model.license_spdx:
                element.comment = f"as the model states it: {model.license}"
            self.add(element)
        return license_id

    def _organization(self, name: str) -> str:
        org_id = self.id("organization", name)
        if org_id not in self.ids:
            self.add(self.spdx.Organization(_id=org_id, name=name))
        return org_id

    def _hash(self, sha256: str) -> Any:
        return self.spdx.Hash(algorithm=self.spdx.HashAlgorithm.sha256, hashValue=sha256)

    def file(self, file: BomFile, purpose: str) -> str:
        spdx = self.spdx
        element = spdx.software_File(
            _id=self.id("file", file.path),
            name=file.path,
            software_fileKind=spdx.software_FileKindType.file,
            software_primaryPurpose=getattr(spdx.software_SoftwarePurpose, purpose),
        )
        if file.sha256:
            element.verifiedUsing.append(self._hash(file.sha256))
        element.comment = f"role: {file.role}; size: {file.size}; hash source: {file.hash_source}"
        return str(self.add(element)._id)

    def model(self, model: BomModel) -> str:
        spdx = self.spdx
        package = spdx.ai_AIPackage(
            _id=self.id("model", model.path),
            name=model.name,
            software_primaryPurpose=spdx.software_SoftwarePurpose.model,
        )
        if model.version:
            package.software_packageVersion = model.version
        if model.description:
            package.description = model.description
        if model.hub_id:
            from mlsec.render.cyclonedx import hub_purl

            purl = hub_purl(model.hub_id, model.hub_revision)
            if purl is not None:
                package.software_packageUrl = str(purl)
        if model.hub_url:
            package.software_homePage = model.hub_url
        if model.supplier:
            package.suppliedBy = self._organization(model.supplier)
        if model.task:
            package.ai_domain.append(model.task)
        if model.architecture or model.architecture_family:
            package.ai_typeOfModel.append(model.architecture or model.architecture_family)
        uses = [*model.use_cases, *(f"Out of scope: {t}" for t in model.out_of_scope)]
        if uses:
            package.ai_informationAboutApplication = "\n\n".join(uses)
        limits = [*model.limitations, *model.ethical_considerations, *model.tradeoffs]
        if limits:
            package.ai_limitation = "\n\n".join(dict.fromkeys(limits))
        if model.training_data_notes:
            package.ai_informationAboutTraining = "\n\n".join(model.training_data_notes)
        for metric in model.metrics:
            key = f"{metric.type} ({metric.slice})" if metric.slice else metric.type
            package.ai_metric.append(spdx.DictionaryEntry(key=key, value=metric.value))
        for key, value in sorted(model.architecture_details.items()):
            package.ai_hyperparameter.append(spdx.DictionaryEntry(key=key, value=value))
        if model.parameter_count is not None:
            package.ai_hyperparameter.append(
                spdx.DictionaryEntry(key="parameter-count", value=str(model.parameter_count))
            )
        single = len(model.files) == 1 and model.files[0].path == model.path
        if single and model.files[0].sha256:
            package.verifiedUsing.append(self._hash(model.files[0].sha256))
        if model.card_path:
            package.externalRef.append(
                spdx.ExternalRef(
                    externalRefType=spdx.ExternalRefType.documentation,
                    locator=[model.card_path],
                    comment="model card",
                )
            )
        for sig in self.sigs.signatures if self.sigs else ():
            paths = {f.path for f in model.files} | {model.path}
            if sig.path not in paths and not paths & set(sig.files):
                continue
            who = sig.signer or "unknown signer"
            state = "verified" if sig.verified else "NOT verified"
            package.externalRef.append(
                spdx.ExternalRef(
                    externalRefType=spdx.ExternalRefType.securityOther,
                    locator=[sig.bundle],
                    comment=f"{sig.kind} signature over {sig.path}, {state}; signer: {who}"
                    + (f" (issuer {sig.issuer})" if sig.issuer else ""),
                )
            )
        self.add(package)
        model_id = str(package._id)
        parts = [] if single else [self.file(f, _purpose(f.role)) for f in model.files]
        for template in model.chat_templates:
            element = spdx.software_File(
                _id=self.id("chat-template", f"{template.source}#{template.name}"),
                name=f"{template.source}#{template.name}",
                contentType="text/x-jinja2",
                software_primaryPurpose=spdx.software_SoftwarePurpose.configuration,
                description=template.text,
            )
            element.verifiedUsing.append(self._hash(template.sha256))
            parts.append(str(self.add(element)._id))
        self.relate(model_id, "contains", parts)
        license_id = self._license(model)
        if license_id:
            self.relate(model_id, "hasDeclaredLicense", [license_id])
        bases = []
        for base in model.base_models:
            base_id = self.id("model", f"base:{base}")
            if base_id not in self.ids:
                from mlsec.render.cyclonedx import hub_purl

                element = spdx.ai_AIPackage(
                    _id=base_id,
                    name=base,
                    software_primaryPurpose=spdx.software_SoftwarePurpose.model,
                )
                purl = hub_purl(base)
                if purl is not None:
                    element.software_packageUrl = str(purl)
                self.add(element)
            bases.append(base_id)
        for base_id in bases:
            self.relate(base_id, "ancestorOf", [model_id])
        return model_id

    def dataset(self, dataset: DatasetRef) -> str:
        spdx = self.spdx
        element = spdx.dataset_DatasetPackage(
            _id=self.id("dataset", dataset.name),
            name=dataset.name,
            dataset_datasetType=[spdx.dataset_DatasetType.noAssertion],
            software_primaryPurpose=spdx.software_SoftwarePurpose.data,
        )
        if dataset.url:
            element.software_downloadLocation = dataset.url
        element.comment = "named by: " + ", ".join(dataset.sources)
        return str(self.add(element)._id)

    def library(self, name: str, version: str | None) -> str:
        from packageurl import PackageURL

        purl = str(PackageURL(type="pypi", name=name, version=version))
        library_id = self.id("library", purl)
        if library_id not in self.ids:
            element = self.spdx.software_Package(
                _id=library_id,
                name=name,
                software_packageUrl=purl,
                software_primaryPurpose=self.spdx.software_SoftwarePurpose.library,
            )
            if version:
                element.software_packageVersion = version
            self.add(element)
        return library_id


def _purpose(role: str) -> str:
    return {
        "weights": "model",
        "config": "configuration",
        "tokenizer": "data",
        "chat-template": "configuration",
        "card": "documentation",
        "code": "source",
        "data": "data",
    }.get(role, "other")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build(report: ScanReport, facts: AibomFacts, namespace: str) -> _Document:
    doc = _Document(report, facts, namespace)
    spdx = doc.spdx
    repo = doc.repository()
    datasets = {d.bom_ref: doc.dataset(d) for d in facts.datasets}
    libraries: dict[str, str] = {}
    for dep in doc.deps.dependencies if doc.deps else ():
        libraries.setdefault(_normal(dep.name), doc.library(dep.name, dep.version))
    roles = {d.bom_ref: d.roles for d in facts.datasets}
    models = []
    for model in facts.models:
        model_id = doc.model(model)
        models.append(model_id)
        # A dataset named both by the card's datasets and its model-index is both.
        trained = [datasets[r] for r in model.datasets if {"training", "code"} & set(roles[r])]
        tested = [datasets[r] for r in model.datasets if "evaluation" in roles[r]]
        doc.relate(model_id, "trainedOn", trained)
        doc.relate(model_id, "testedOn", tested)
        used = []
        for lib in model.libraries:
            known = libraries.get(_normal(lib.name))
            used.append(known or doc.library(lib.name, None))
        doc.relate(model_id, "dependsOn", used)
    loose = [doc.file(f, "data") for f in facts.loose_files]
    direct = sorted(
        {libraries[_normal(d.name)] for d in doc.deps.dependencies if d.direct}
        if doc.deps
        else set()
    )
    doc.relate(str(repo._id), "contains", [*models, *loose])
    doc.relate(str(repo._id), "dependsOn", direct)
    document = spdx.SpdxDocument(
        _id=doc.id("document", facts.repository),
        name=f"AI bill of materials of {facts.repository}",
        rootElement=[repo._id],
        profileConformance=[
            spdx.ProfileIdentifierType.core,
            spdx.ProfileIdentifierType.software,
            spdx.ProfileIdentifierType.ai,
            spdx.ProfileIdentifierType.dataset,
        ],
    )
    document.element.extend(sorted(doc.ids))
    doc.add(document)
    return doc


def serialise(doc: _Document) -> str:
    spdx = doc.spdx
    objects = spdx.SHACLObjectSet()
    for element in doc.objects:
        objects.add(element)
    out = io.BytesIO()
    # Serialising checks every required property and cardinality of the SHACL model.
    spdx.JSONLDSerializer().write(objects, out, indent=2)
    return out.getvalue().decode("utf-8") + "\n"


def render_spdx3(report: ScanReport) -> str:
    """The SPDX 3.0.1 JSON-LD document of the scan's AIBOM."""
    facts = report.facts.get("aibom")
    if not isinstance(facts, AibomFacts):
        raise MlsecError(
            "the scan has no AI bill of materials data",
            hint="the aibom analyzer did not run (was it excluded, or did it fail?)",
        )
    if facts.timestamp is None:
        raise MlsecError(
            "SPDX 3 needs a creation time and this reproducible run has none",
            hint="set SOURCE_DATE_EPOCH, or scan inside a git work tree (the commit time)",
        )
    serial = _PLACEHOLDER
    if not facts.reproducible and facts.serial:
        serial = uuid.UUID(facts.serial.removeprefix("urn:uuid:"))
    reproducible = serial == _PLACEHOLDER
    namespace = f"urn:uuid:{serial}"
    try:
        text = serialise(build(report, facts, namespace))
    except (ValueError, TypeError) as exc:
        raise MlsecError(
            f"internal error: the SPDX 3 document is not valid: {exc}",
            hint="please report this; no document was written",
        ) from exc
    if reproducible:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        text = text.replace(namespace, f"urn:uuid:{uuid.uuid5(_NAMESPACE, digest)}")
    return text
