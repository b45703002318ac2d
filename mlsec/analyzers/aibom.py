"""The AIBOM analyzer: runs last, gathers what the repository and the other analyzers tell
about each model (see :mod:`mlsec.aibom.build`) and hashes every model file, so the CycloneDX
renderer has everything; reports MLS3xx findings for what a complete BOM would need.

Configuration (``[bom]`` in ``.mlsec.toml``):

- ``hash-cache`` (bool, default true): keep file hashes in the user cache folder, keyed on
  path, size, modification time and inode, so a second run does not read the weights again.
- ``min-completeness`` (number from 0 to 1): report MLS307 for a model scoring below it on a
  completeness profile.
- ``findings`` (bool, default false): report the documentation gaps of each model (MLS301 to
  MLS306, MLS308). Also on when the command line selects MLS3 rules (``--select MLS3``).
  The completeness scores are in the BOM either way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mlsec.aibom.settings import BomSettings
from mlsec.analyzers import AnalysisContext, Analyzer, AnalyzerResult
from mlsec.errors import ConfigError
from mlsec.walk import Target


def bom_settings(ctx: AnalysisContext) -> BomSettings:
    section = ctx.options.section("bom")
    origin = ctx.options.config_file or "configuration"
    selected = any(s.startswith("MLS3") for s in ctx.options.select)
    # (Not cache_root(): that imports mlsec.hashing, on scans that build no BOM too.)
    use_cache = ctx.options.use_cache
    settings = BomSettings(findings=selected, hash_cache=use_cache, cache_dir=ctx.options.cache_dir)
    for key, value in section.items():
        where = f"{origin}: bom.{key}"
        if key in ("hash-cache", "findings"):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false")
            if key == "hash-cache":
                settings = settings._replace(hash_cache=value and use_cache)
            else:
                settings = settings._replace(findings=value or selected)
        elif key == "min-completeness":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"{where}: expected a number from 0 to 1, got {value!r}")
            settings = settings._replace(min_completeness=float(value))
        else:
            raise ConfigError(
                f"{where}: unknown key",
                hint="known keys: findings, hash-cache, min-completeness",
            )
    return settings


def _renderer_warm_up() -> None:
    from mlsec.render.cyclonedx import warm_up

    warm_up()


class AibomAnalyzer(Analyzer):
    name = "aibom"
    description = "Building the AI bill of materials"

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        settings = bom_settings(ctx)
        if not (ctx.options.build_bom or settings.findings or settings.min_completeness):
            # Nothing asks for the BOM: do not hash every model file on every scan.
            return AnalyzerResult()
        from mlsec.aibom.inputs import known_models, model_file_facts
        from mlsec.aibom.settings import hash_cache
        from mlsec.hashing import PendingHashes
        from mlsec.models.sniff import FileKind

        # Every file the model analyzers recognised is a model's weights in the BOM: their
        # hashing starts now, before the builder is imported and the models are grouped.
        known = set(known_models(model_file_facts(ctx.facts)))
        weights = [
            t.path for t in targets if t.relpath in known and t.kind is not FileKind.LFS_POINTER
        ]
        with PendingHashes(weights, cache=hash_cache(settings)) as hashing:
            from mlsec.aibom.build import AibomBuilder  # git, YAML, cards: only when used

            reproducible = ctx.options.reproducible or bool(os.environ.get("SOURCE_DATE_EPOCH"))
            builder = AibomBuilder(
                ctx.root,
                targets,
                ctx.facts,
                ctx.finding,
                settings=settings,
                reproducible=reproducible,
                use_git=ctx.options.use_git,
                while_hashing=_renderer_warm_up if ctx.options.build_bom else None,
                hashing=hashing,
            )
            built = builder.build()
        ctx.progress(len(targets))
        return AnalyzerResult(findings=built.findings, errors=built.errors, facts=built.facts)
