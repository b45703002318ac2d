"""How complete a model's documentation is, against named profiles.

- ``ntia-minimum-elements``: the NTIA "Minimum Elements for a Software Bill of Materials"
  (2021) applied to a model component: supplier, name, version, unique identifiers, the
  dependency relationship, the author of the SBOM data and a timestamp.
- ``eu-ai-act-annex-iv``: what Annex IV of the EU AI Act (Regulation (EU) 2024/1689) asks
  technical documentation to describe, as far as a repository can show it: the provider,
  version, intended purpose, architecture, training data and its provenance, performance
  metrics, known limitations, risks, the license and integrity of the artifact.

Each element is a named check on the facts; the score is the share present.
"""

from __future__ import annotations

from collections.abc import Callable

from mlsec.aibom.facts import BomModel, Completeness, DatasetRef

Check = Callable[[BomModel, dict[str, DatasetRef], bool], bool]


def _hashed(model: BomModel) -> bool:
    weights = [f for f in model.files if f.role == "weights"]
    return bool(weights) and all(f.sha256 for f in weights) and not model.missing_files


def _datasets_with_source(model: BomModel, datasets: dict[str, DatasetRef]) -> bool:
    named = [datasets[r] for r in model.datasets if r in datasets]
    return bool(named) and all(d.url for d in named)


NTIA: tuple[tuple[str, Check], ...] = (
    ("supplier", lambda m, d, t: bool(m.supplier or m.authors)),
    ("name", lambda m, d, t: bool(m.name)),
    ("version", lambda m, d, t: bool(m.version)),
    ("unique-identifier", lambda m, d, t: _hashed(m)),
    # Every model is placed in the BOM's dependency graph under the repository.
    ("dependency-relationship", lambda m, d, t: True),
    # The BOM's author is mlsec (metadata.tools), always present.
    ("sbom-author", lambda m, d, t: True),
    ("timestamp", lambda m, d, t: t),
)

EU_AI_ACT: tuple[tuple[str, Check], ...] = (
    ("provider", lambda m, d, t: bool(m.supplier or m.authors)),
    ("version", lambda m, d, t: bool(m.version)),
    ("description", lambda m, d, t: bool(m.description)),
    ("intended-purpose", lambda m, d, t: bool(m.task or m.use_cases)),
    ("architecture", lambda m, d, t: bool(m.architecture or m.architecture_family)),
    ("training-data", lambda m, d, t: bool(m.datasets)),
    ("data-provenance", lambda m, d, t: _datasets_with_source(m, d)),
    ("performance-metrics", lambda m, d, t: bool(m.metrics)),
    ("limitations", lambda m, d, t: bool(m.limitations or m.out_of_scope)),
    ("risks", lambda m, d, t: bool(m.ethical_considerations or m.limitations)),
    ("license", lambda m, d, t: bool(m.license)),
    ("integrity", lambda m, d, t: _hashed(m)),
)

PROFILES: dict[str, tuple[tuple[str, Check], ...]] = {
    "ntia-minimum-elements": NTIA,
    "eu-ai-act-annex-iv": EU_AI_ACT,
}


def assess(
    model: BomModel, datasets: dict[str, DatasetRef], has_timestamp: bool
) -> tuple[Completeness, ...]:
    results: list[Completeness] = []
    for profile, checks in PROFILES.items():
        present = tuple(name for name, check in checks if check(model, datasets, has_timestamp))
        missing = tuple(name for name, _ in checks if name not in present)
        results.append(Completeness(profile, present, missing))
    return tuple(results)
