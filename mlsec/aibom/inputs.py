"""What the AIBOM takes from the model analyzers, in a module of its own so the analyzer can
start hashing the model files before it imports the BOM builder (cards, YAML, git)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlsec.facts import ModelFacts, ModelFileFact

# Arrays and plain archives the model analyzers looked into are data, not models, unless
# their name says weights (discover.WEIGHT_EXTENSIONS).
DATA_FORMATS = frozenset({"numpy", "npz", "zip", "tar"})


def model_file_facts(facts: Mapping[str, Any]) -> dict[str, ModelFileFact]:
    """The model analyzers' facts by scan-root relative path."""
    found: dict[str, ModelFileFact] = {}
    for name in ("models", "model-formats"):
        analyzed = facts.get(name)
        if isinstance(analyzed, ModelFacts):
            for fact in analyzed.files:
                found.setdefault(fact.path, fact)
    return found


def known_models(file_facts: Mapping[str, ModelFileFact]) -> list[str]:
    """Paths the model analyzers recognised as models: each is a model's weights in the BOM
    (:func:`mlsec.aibom.discover.group_models`), so each is hashed."""
    return [path for path, fact in file_facts.items() if fact.format not in DATA_FORMATS]
