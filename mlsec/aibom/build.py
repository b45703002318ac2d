"""Assemble the AIBOM facts of a repository: models, their files and hashes, cards, datasets,
git provenance and completeness, plus the MLS3xx findings for what is missing.

Values come from the repository only (cards, configs, format headers via the model analyzers'
facts, git). Where nothing tells a value, it stays absent.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlsec.aibom import completeness, sidecars
from mlsec.aibom.card import (
    ModelCard,
    ModelConfig,
    adapter_base_model,
    parse_card,
    parse_config,
    read_bounded,
)
from mlsec.aibom.code_datasets import CodeDataset, find_datasets
from mlsec.aibom.discover import (
    ModelGroup,
    card_candidates,
    group_models,
    is_loose_artifact,
    role_of,
)
from mlsec.aibom.facts import (
    AibomFacts,
    BomFile,
    BomModel,
    ChatTemplate,
    DatasetRef,
    GitProvenance,
    Metric,
)
from mlsec.aibom.gitinfo import GitRepo, repository_name, web_url
from mlsec.aibom.inputs import known_models, model_file_facts
from mlsec.aibom.settings import BomSettings, hash_cache
from mlsec.aibom.tasks import task_facts
from mlsec.facts import ModelFileFact, SignatureFacts
from mlsec.findings import Finding, ScanError
from mlsec.hashing import PendingHashes
from mlsec.models.sniff import HEAD_SIZE, FileKind, parse_lfs_pointer
from mlsec.walk import Target

HF = "https://huggingface.co"
MAX_INDEX_BYTES = 64 * 1024 * 1024  # a sharded checkpoint's index maps every tensor name
MAX_LOOSE_HASH_BYTES = 64 * 1024 * 1024  # data files outside models hashed up to this size
# load_dataset("json", data_files=...) names a file loader, not a dataset.
_PACKAGED_BUILDERS = frozenset(
    {
        "json",
        "csv",
        "parquet",
        "text",
        "arrow",
        "pandas",
        "imagefolder",
        "audiofolder",
        "videofolder",
        "webdataset",
        "sql",
        "generator",
        "xml",
    }
)
# Format metadata copied into the BOM: scalar values only, bounded, tokenizer tables left out.
_MAX_METADATA_VALUE = 512
_SKIPPED_METADATA_PREFIXES = ("tokenizer.",)


@dataclass
class BuildResult:
    facts: AibomFacts
    findings: list[Finding] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)


FindingFactory = Any  # AnalysisContext.finding (typed loosely to avoid an import cycle)


def _hf_id(name: str) -> bool:
    """Whether ``name`` looks like a Hugging Face hub id ("org/name" or a bare canonical id)."""
    parts = name.split("/")
    return (
        0 < len(parts) <= 2
        and all(p and not p.startswith(".") for p in parts)
        and all(c.isalnum() or c in "-_." for p in parts for c in p)
    )


def _hub_repo(url: str | None) -> str | None:
    """``org/name`` of a huggingface.co model repository URL."""
    if not url:
        return None
    web = web_url(url) or url
    prefix = HF + "/"
    if not web.startswith(prefix):
        return None
    rest = web[len(prefix) :].strip("/").split("/")
    if rest and rest[0] in ("datasets", "spaces"):
        return None
    return "/".join(rest[:2]) if len(rest) >= 2 else None


def _scalar_metadata(fmt: str, metadata: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}

    def add(key: str, value: Any) -> None:
        if key.startswith(_SKIPPED_METADATA_PREFIXES):
            return
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                add(f"{key}.{sub or 'default'}", inner)
        elif isinstance(value, bool | int | float | str) and value != "":
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if len(text) <= _MAX_METADATA_VALUE:
                out[f"{fmt}:{key}"] = text

    for key, value in metadata.items():
        add(str(key), value)
    return dict(sorted(out.items()))


def _meta(metadata: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        if metadata.get(key):
            return metadata[key]
    return None


class AibomBuilder:
    def __init__(
        self,
        root: Path,
        targets: Sequence[Target],
        facts: Mapping[str, Any],
        finding: FindingFactory,
        *,
        settings: BomSettings | None = None,
        reproducible: bool = False,
        use_git: bool = True,
        while_hashing: Callable[[], None] | None = None,
        hashing: PendingHashes | None = None,
    ) -> None:
        self.root = root
        self.targets = targets
        self.facts = facts
        self.finding = finding
        self.settings = settings or BomSettings()
        self.reproducible = reproducible
        self.use_git = use_git
        # Work for the caller that overlaps the hashing (the renderer's imports).
        self.while_hashing = while_hashing
        # Hashing the caller began (the known model files), that the BOM's files join.
        self.hashing = hashing
        self.result_findings: list[Finding] = []
        self.errors: list[ScanError] = []

    # -- inputs from other analyzers -----------------------------------------------------
    def _signatures(self) -> SignatureFacts | None:
        facts = self.facts.get("signatures")
        return facts if isinstance(facts, SignatureFacts) else None

    # -- the build -------------------------------------------------------------------------
    def build(self) -> BuildResult:
        file_facts = model_file_facts(self.facts)
        cards: dict[str, ModelCard] = {}
        for folder, target in card_candidates(self.targets).items():
            # A card is hostile input like any file: whatever goes wrong in it costs only
            # its own facts, never the BOM.
            try:
                cards[folder] = parse_card(target.path, target.relpath)
            except OSError as exc:
                self.errors.append(
                    ScanError(target.relpath, f"cannot read: {exc}", analyzer="aibom")
                )
            except Exception as exc:
                self.errors.append(
                    ScanError(
                        target.relpath,
                        f"model card not parsed ({type(exc).__name__}); the BOM leaves it out",
                        analyzer="aibom",
                    )
                )
        configs: dict[str, ModelConfig] = {}
        for target in self.targets:
            if target.relpath.rsplit("/", 1)[-1] == "config.json" and target.kind is FileKind.TEXT:
                try:
                    config = parse_config(target.path, target.relpath)
                except Exception:
                    config = None
                if config is not None:
                    configs[posixpath.dirname(target.relpath) or "."] = config
        card_folders = [
            folder
            for folder, card in cards.items()
            if card.front_matter
            and (card.declares_model or card.license or card.datasets or card.base_models)
        ]
        declared = [f for f, c in cards.items() if c.declares_model] + [
            f for f, c in configs.items() if c.architectures
        ]
        groups = group_models(self.targets, card_folders, known_models(file_facts), declared)

        # The weights hash in workers while git, code and the caller's work run here.
        with self._hash(groups) as hashing:
            git_repo = GitRepo(self.root) if self.use_git else None
            provenance = git_repo.provenance() if git_repo and git_repo.available else None
            timestamp = self._timestamp(provenance)
            states = (
                git_repo.model_states({g.path: [t.relpath for t in g.files] for g in groups})
                if git_repo and git_repo.available
                else {}
            )
            code_datasets = self._code_datasets()
            if hashing.running:
                # Imports the steps after the digests need, while the workers hash: the
                # SPDX license list (model licenses) and the caller's (the renderer).
                import cyclonedx.spdx  # noqa: F401

                if self.while_hashing is not None:
                    self.while_hashing()
            digests = hashing.result()
        signatures = self._signatures()

        datasets: dict[str, DatasetRef] = {}
        models: list[BomModel] = []
        for group in groups:
            try:
                model = self._model(
                    group,
                    cards.get(group.path) if group.folder else None,
                    configs.get(group.path) if group.folder else None,
                    file_facts,
                    digests,
                    provenance,
                    states.get(group.path, (None, False)),
                    code_datasets,
                    datasets,
                )
            except Exception as exc:  # a bug: keep the rest of the BOM, report this model
                self.errors.append(
                    ScanError(
                        group.path,
                        f"internal error ({type(exc).__name__}: {exc}); this model is missing "
                        "from the BOM; please report this",
                        analyzer="aibom",
                        internal=True,
                    )
                )
                continue
            models.append(model)
        loose = self._loose_files(groups, file_facts, digests)
        # Datasets named only by code outside any model folder still belong in the BOM.
        for found in code_datasets:
            self._dataset(datasets, found.name, f"{found.path}:{found.line}", "code")

        has_timestamp = timestamp is not None
        assessed = []
        for model in models:
            model = replace(model, completeness=completeness.assess(model, datasets, has_timestamp))
            assessed.append(model)
            self._findings(model, datasets, signatures)
        facts = AibomFacts(
            repository=repository_name(provenance.remote_url if provenance else None, self.root),
            git=provenance,
            models=tuple(assessed),
            datasets=tuple(sorted(datasets.values(), key=lambda d: d.bom_ref)),
            loose_files=loose,
            timestamp=timestamp,
            reproducible=self.reproducible,
            serial=None if self.reproducible else f"urn:uuid:{uuid.uuid4()}",
        )
        return BuildResult(facts, self.result_findings, self.errors)

    def _timestamp(self, provenance: GitProvenance | None) -> int | None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if epoch.isdigit():
            return int(epoch)
        if self.reproducible:
            # No SOURCE_DATE_EPOCH: the commit time is the only time that does not change.
            return provenance.commit_time if provenance else None
        return int(time.time())

    def _code_datasets(self) -> list[CodeDataset]:
        found: list[CodeDataset] = []
        for target in self.targets:
            if target.relpath.endswith(".py") and target.kind is FileKind.TEXT:
                try:
                    found.extend(
                        d
                        for d in find_datasets(target.path, target.relpath)
                        if d.name.lower() not in _PACKAGED_BUILDERS
                    )
                except OSError:
                    continue
        return found

    def _loose(self, groups: Iterable[ModelGroup]) -> list[Target]:
        owned = {t.relpath for g in groups for t in g.files}
        return [t for t in self.targets if t.relpath not in owned and is_loose_artifact(t)]

    def _loose_files(
        self,
        groups: Iterable[ModelGroup],
        file_facts: Mapping[str, ModelFileFact],
        digests: Mapping[Path, str],
    ) -> tuple[BomFile, ...]:
        files = []
        for target in self._loose(groups):
            file = self._file(target, False, file_facts.get(target.relpath), digests)
            if target.size > MAX_LOOSE_HASH_BYTES and file.sha256 is None:
                file = replace(file, hash_source="not-hashed-large-data")
            files.append(file)
        return tuple(files)

    def _hash(self, groups: Sequence[ModelGroup]) -> PendingHashes:
        paths = [t.path for g in groups for t in g.files if t.kind is not FileKind.LFS_POINTER]
        # Data outside every model is hashed when small (a filterbank, a vocabulary): a
        # repository's training arrays are not read in full for a bill of materials.
        paths += [
            t.path
            for t in self._loose(groups)
            if t.kind is not FileKind.LFS_POINTER and t.size <= MAX_LOOSE_HASH_BYTES
        ]
        if self.hashing is not None:
            self.hashing.add(paths)
            return self.hashing
        return PendingHashes(paths, cache=hash_cache(self.settings))

    # -- one model -------------------------------------------------------------------------
    def _model(
        self,
        group: ModelGroup,
        card: ModelCard | None,
        config: ModelConfig | None,
        file_facts: Mapping[str, ModelFileFact],
        digests: Mapping[Path, str],
        provenance: GitProvenance | None,
        git_state: tuple[str | None, bool],
        code_datasets: list[CodeDataset],
        datasets: dict[str, DatasetRef],
    ) -> BomModel:
        weight_paths = {t.relpath for t in group.weights}
        files: list[BomFile] = []
        metadata: dict[str, str] = {}
        formats: list[str] = []
        frameworks: list[str] = []
        params_by_format: dict[str, int] = {}
        for target in group.files:
            fact = file_facts.get(target.relpath)
            files.append(self._file(target, target.relpath in weight_paths, fact, digests))
            if fact is None:
                continue
            if fact.format not in formats:
                formats.append(fact.format)
            if fact.framework and fact.framework not in frameworks:
                frameworks.append(fact.framework)
            if fact.parameter_count is not None:
                params_by_format[fact.format] = (
                    params_by_format.get(fact.format, 0) + fact.parameter_count
                )
            for key, value in _scalar_metadata(fact.format, fact.metadata).items():
                metadata.setdefault(key, value)
        for target in group.weights:
            if target.relpath not in file_facts and target.kind is FileKind.LFS_POINTER:
                continue
            if target.relpath not in file_facts and target.kind.value not in formats:
                formats.append(target.kind.value)

        file_pairs = [
            (t.relpath, t.path) for t in group.files if t.kind is not FileKind.LFS_POINTER
        ]
        details: dict[str, str] = dict(
            sidecars.config_details(sidecars.read_json(self.root / config.path)) if config else {}
        )
        templates: list[ChatTemplate] = sidecars.chat_templates(file_pairs)
        gguf_languages: list[str] = []
        for target in group.weights:
            fact = file_facts.get(target.relpath)
            if fact is not None and fact.format == "gguf":
                gguf, langs, gguf_templates = sidecars.gguf_details(target.path, target.relpath)
                for key, value in gguf.items():
                    details.setdefault(key, value)
                gguf_languages = gguf_languages or langs
                templates.extend(gguf_templates)

        hub_id, revision = self._hub_identity(group, provenance, metadata)
        name, version, version_source = self._identity(
            group, card, metadata, provenance, hub_id, revision, config
        )
        license_text, license_url = self._license(card, metadata)
        spdx = _spdx(license_text)
        base_models = (
            (card.base_models if card else ())
            or _gguf_base_models(metadata)
            or self._adapter_base(group)
        )

        hub_url = f"{HF}/{hub_id}" if hub_id else None
        hub_url = hub_url or _meta(metadata, "gguf:general.repo_url", "gguf:general.url")
        supplier = _meta(metadata, "gguf:general.organization")
        if supplier is None and hub_url and _hub_repo(hub_url):
            supplier = str(_hub_repo(hub_url)).split("/")[0]
        authors = (card.authors if card else ()) or tuple(
            a for a in [_meta(metadata, "gguf:general.author", "onnx:metadata_props.author")] if a
        )

        # Datasets: the card's (training), model-index's (evaluation), code in the folder.
        refs: list[str] = []
        if card:
            for name_ in card.datasets:
                refs.append(self._dataset(datasets, name_, f"{card.path} (datasets)", "training"))
            for name_ in card.eval_datasets:
                refs.append(
                    self._dataset(datasets, name_, f"{card.path} (model-index)", "evaluation")
                )
        if group.folder:
            for found in list(code_datasets):
                if group.path == "." or found.path.startswith(group.path + "/"):
                    refs.append(
                        self._dataset(datasets, found.name, f"{found.path}:{found.line}", "code")
                    )
                    code_datasets.remove(found)
        unique_refs = tuple(dict.fromkeys(refs))

        metrics = tuple(
            Metric(m.type, m.value, " ".join(p for p in (m.dataset, m.split) if p) or None)
            for m in (card.metrics if card else ())
        )
        last_commit, committed = git_state

        family = (config.model_type if config else None) or _meta(
            metadata, "gguf:general.architecture"
        )
        architecture = ", ".join(config.architectures) if config and config.architectures else None
        description = (card.description if card else None) or _meta(
            metadata, "gguf:general.description", "onnx:doc_string"
        )
        task = card.pipeline_tag if card else None
        determined = task_facts(task)
        libraries = sidecars.libraries(
            file_pairs, card.library_name if card else None, card.path if card else None
        )
        return BomModel(
            missing_files=_missing_shards(group),
            bom_ref=f"model:{group.path}",
            name=name,
            path=group.path,
            files=tuple(files),
            version=version,
            version_source=version_source,
            description=description,
            license=license_text,
            license_spdx=spdx,
            license_url=license_url,
            supplier=supplier,
            authors=authors,
            base_models=base_models,
            hub_url=hub_url,
            hub_id=hub_id,
            hub_revision=revision,
            card_path=card.path if card and card.front_matter else None,
            formats=tuple(formats),
            framework=frameworks[0] if len(frameworks) == 1 else None,
            library_name=card.library_name if card else None,
            # Each format holds the whole model (shards add up; a .bin beside a .safetensors
            # is the same model twice), so take the largest per-format total.
            parameter_count=max(params_by_format.values()) if params_by_format else None,
            task=task,
            architecture_family=family,
            architecture=architecture,
            datasets=unique_refs,
            metrics=metrics,
            use_cases=card.use_cases if card else (),
            out_of_scope=card.out_of_scope if card else (),
            limitations=card.limitations if card else (),
            ethical_considerations=card.ethical if card else (),
            tradeoffs=card.tradeoffs if card else (),
            training_data_notes=card.training_data if card else (),
            evaluation_notes=card.evaluation if card else (),
            inputs=determined.inputs if determined else (),
            outputs=determined.outputs if determined else (),
            approach=determined.approach if determined else None,
            architecture_details=details,
            chat_templates=tuple(templates),
            libraries=libraries,
            languages=(card.languages if card else ()) or tuple(gguf_languages),
            tags=card.tags if card else (),
            format_metadata=metadata,
            last_commit=last_commit,
            committed=committed,
        )

    def _file(
        self,
        target: Target,
        weights: bool,
        fact: ModelFileFact | None,
        digests: Mapping[Path, str],
    ) -> BomFile:
        role = role_of(target.relpath, weights)
        fmt = fact.format if fact else None
        if target.kind is FileKind.LFS_POINTER:
            try:
                with open(target.path, "rb") as handle:
                    pointer = parse_lfs_pointer(handle.read(HEAD_SIZE))
            except OSError:
                pointer = None
            if pointer is not None:
                return BomFile(target.relpath, pointer[1], pointer[0], "git-lfs-pointer", role, fmt)
            return BomFile(target.relpath, target.size, None, "unavailable", role, fmt)
        digest = digests.get(target.path)
        return BomFile(
            target.relpath, target.size, digest, "file" if digest else "unavailable", role, fmt
        )

    def _hub_identity(
        self,
        group: ModelGroup,
        provenance: GitProvenance | None,
        metadata: Mapping[str, str],
    ) -> tuple[str | None, str | None]:
        """(hub id, hub revision): a Hugging Face cache snapshot's path, a ``local_dir``
        download's metadata, the repository itself when it is a hub clone (its remote on
        huggingface.co, the model at its root: the revision is HEAD), or GGUF's repo_url."""
        snapshot = sidecars.hub_snapshot(group.files[0].relpath) if group.files else None
        if snapshot:
            return snapshot
        if group.path == "." and provenance and _hub_repo(provenance.remote_url):
            return _hub_repo(provenance.remote_url), provenance.commit
        if group.folder:
            base = self.root if group.path == "." else self.root / group.path
            revision = sidecars.download_metadata(base)
        else:
            revision = None
        url = _meta(metadata, "gguf:general.repo_url", "gguf:general.url")
        hub_id = _hub_repo(url) if url else None
        return hub_id, revision if hub_id or revision else None

    @staticmethod
    def _adapter_base(group: ModelGroup) -> tuple[str, ...]:
        for target in group.files:
            if target.relpath.rsplit("/", 1)[-1] == "adapter_config.json":
                base = adapter_base_model(target.path)
                if base:
                    return (base,)
        return ()

    @staticmethod
    def _produced_here(group: ModelGroup) -> bool:
        """Whether the repository itself produces this model, so that the repository's tag
        versions it: the model is the repository (its folder is the scanned root, as in a
        clone of a hub model repository) and not a cache snapshot of someone else's. A
        third-party model kept in a sub-folder, or a downloaded one, is versioned only by
        what it says itself (card, GGUF or ONNX metadata, hub revision)."""
        return group.path == "." and not (
            group.files and sidecars.hub_snapshot(group.files[0].relpath)
        )

    def _identity(
        self,
        group: ModelGroup,
        card: ModelCard | None,
        metadata: Mapping[str, str],
        provenance: GitProvenance | None,
        hub_id: str | None = None,
        revision: str | None = None,
        config: ModelConfig | None = None,
    ) -> tuple[str, str | None, str | None]:
        if group.path == ".":
            fallback = repository_name(provenance.remote_url if provenance else None, self.root)
        else:
            fallback = group.path.rsplit("/", 1)[-1]
        if hub_id and group.files and sidecars.hub_snapshot(group.files[0].relpath):
            fallback = hub_id  # the folder of a cache snapshot is named by a commit hash
        name = (card.name if card else None) or _meta(metadata, "gguf:general.name") or fallback
        if card and card.version:
            return name, card.version, "card"
        if config and config.version:
            return name, config.version, "config"
        for key, source in (("gguf:general.version", "gguf"), ("onnx:model_version", "onnx")):
            value = metadata.get(key)
            if value and value != "0":  # ONNX writes 0 when no version was set
                return name, value, source
        if provenance and provenance.tag and self._produced_here(group):
            return name, provenance.tag, "git-tag"
        if revision:
            return name, revision, "hub-revision"
        return name, None, None

    @staticmethod
    def _license(
        card: ModelCard | None, metadata: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        if card and card.license:
            if card.license.lower() == "other" and card.license_name:
                return card.license_name, card.license_link
            return card.license, card.license_link
        # Embedded metadata: GGUF general.license, or an ONNX metadata property "license".
        return (
            _meta(metadata, "gguf:general.license", "onnx:metadata_props.license"),
            _meta(metadata, "gguf:general.license.link"),
        )

    @staticmethod
    def _dataset(datasets: dict[str, DatasetRef], name: str, source: str, role: str) -> str:
        bom_ref = f"dataset:{name}"
        known = datasets.get(bom_ref)
        if known is None:
            url = f"{HF}/datasets/{name}" if _hf_id(name) else None
            datasets[bom_ref] = DatasetRef(name, bom_ref, url, (source,), (role,))
        else:
            datasets[bom_ref] = replace(
                known,
                sources=tuple(dict.fromkeys((*known.sources, source))),
                roles=tuple(dict.fromkeys((*known.roles, role))),
            )
        return bom_ref

    # -- findings --------------------------------------------------------------------------
    def _findings(
        self,
        model: BomModel,
        datasets: Mapping[str, DatasetRef],
        signatures: SignatureFacts | None,
    ) -> None:
        gaps: list[Finding] = []
        add = gaps.append
        path = model.path
        if not model.license:
            add(self.finding("MLS301", path, f"Model {model.name!r} has no license", key="license"))
        elif not model.license_spdx:
            add(
                self.finding(
                    "MLS305",
                    path,
                    f"Model {model.name!r} license {model.license!r} is not an SPDX identifier",
                    key=f"license:{model.license}",
                )
            )
        signed = bool(
            signatures
            and any(
                s.verified
                and (s.path == path or path in s.files or s.path in {f.path for f in model.files})
                for s in signatures.signatures
            )
        )
        if not (model.last_commit or model.hub_url or signed):
            add(
                self.finding(
                    "MLS302",
                    path,
                    f"Model {model.name!r} has no provenance: no git history, hub source or "
                    "verified signature",
                    key="provenance",
                )
            )
        if not model.datasets:
            add(
                self.finding(
                    "MLS303",
                    path,
                    f"Model {model.name!r} does not name its training data",
                    key="training-data",
                )
            )
        weights = [f for f in model.files if f.role == "weights"]
        if not weights:
            add(
                self.finding(
                    "MLS304",
                    path,
                    f"Model {model.name!r} has no weight files and no Git LFS pointer to them; "
                    "its weights cannot be identified by hash",
                    key="no-weights",
                )
            )
        for missing in model.missing_files:
            add(
                self.finding(
                    "MLS304",
                    path,
                    f"Model {model.name!r} weight shard {missing} is named by its index but is "
                    "not in the repository (not even as a Git LFS pointer)",
                    key=f"missing:{missing}",
                )
            )
        for file in weights:
            if file.sha256 is None:
                add(
                    self.finding(
                        "MLS304",
                        file.path,
                        "Model file could not be hashed (unreadable, or an LFS pointer with no "
                        "oid)",
                        key="unhashed",
                    )
                )
        if model.card_path is None and not model.format_metadata:
            add(
                self.finding(
                    "MLS306",
                    path,
                    f"Model {model.name!r} has no model card and no embedded metadata",
                    key="card",
                )
            )
        if model.last_commit and not model.committed:
            add(
                self.finding(
                    "MLS308",
                    path,
                    f"Model {model.name!r} has files that are untracked or changed since the "
                    "last commit",
                    key="uncommitted",
                )
            )
        if self.settings.findings:
            self.result_findings.extend(gaps)
        minimum = self.settings.min_completeness
        if minimum is not None:
            for result in model.completeness:
                if result.score < minimum:
                    self.result_findings.append(
                        self.finding(
                            "MLS307",
                            path,
                            f"Model {model.name!r} scores {result.score:.2f} on {result.profile} "
                            f"(minimum {minimum:.2f}); missing: {', '.join(result.missing)}",
                            key=f"completeness:{result.profile}",
                            details={
                                "profile": result.profile,
                                "score": result.score,
                                "missing": list(result.missing),
                            },
                        )
                    )


def _missing_shards(group: ModelGroup) -> tuple[str, ...]:
    """Weight files a sharded checkpoint's index (``*.index.json`` weight_map) names that are
    not among the model's files."""
    present = {t.relpath for t in group.files}
    missing: set[str] = set()
    for target in group.sidecars:
        if not target.relpath.endswith(".index.json"):
            continue
        try:
            data = json.loads(read_bounded(target.path, MAX_INDEX_BYTES))
        except (OSError, ValueError, RecursionError):  # deep nesting is hostile input
            continue
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            continue
        folder = posixpath.dirname(target.relpath)
        for shard in set(weight_map.values()):
            # Only plain file names beside the index: an index cannot point elsewhere.
            if not isinstance(shard, str) or "/" in shard or ".." in shard:
                continue
            if posixpath.join(folder, shard) not in present:
                missing.add(posixpath.join(folder, shard))
    return tuple(sorted(missing))


def _gguf_base_models(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """Base models a GGUF file names (general.base_model.N.repo_url, else .name)."""
    found: list[str] = []
    index = 0
    while (prefix := f"gguf:general.base_model.{index}.") and any(
        k.startswith(prefix) for k in metadata
    ):
        url = metadata.get(prefix + "repo_url")
        name = _hub_repo(url) or url or metadata.get(prefix + "name")
        if name:
            found.append(name)
        index += 1
    return tuple(found)


def _spdx(license_text: str | None) -> bool:
    """Whether the license is an SPDX id or expression (case-insensitively, as HF writes)."""
    if not license_text:
        return False
    from cyclonedx.spdx import fixup_id, is_expression

    if fixup_id(license_text) is not None:
        return True
    return " " in license_text.strip() and bool(is_expression(license_text))
