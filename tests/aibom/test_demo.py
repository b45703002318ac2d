"""The demo repository's BOM, through the README's command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.aibom.helpers import components, props
from tests.conftest import FIXTURES


def test_demo_scan_cyclonedx_shows_models_and_gaps(cli, tmp_path: Path) -> None:
    done = cli(
        "scan",
        FIXTURES / "demo-repo",
        "--format",
        "cyclonedx",
        env={"XDG_CACHE_HOME": str(tmp_path)},
    )
    assert done.returncode == 1, done.stderr  # the demo has planted problems
    bom = json.loads(done.stdout)
    every = components(bom)
    model = every["model:models/sentiment-classifier"]
    assert model["licenses"] == [{"license": {"id": "MIT"}}]
    assert model["pedigree"]["ancestors"][0]["name"] == "distilbert/distilbert-base-uncased"
    params = model["modelCard"]["modelParameters"]
    assert params == {
        # A classifier is trained on labels; its task takes text and gives a label.
        "approach": {"type": "supervised"},
        "task": "text-classification",
        "architectureFamily": "distilbert",
        "modelArchitecture": "DistilBertForSequenceClassification",
        "inputs": [{"format": "string"}],
        "outputs": [{"format": "string"}],
    }
    findings = props(model)["mlsec:finding"]
    assert any(f.startswith("MLS303 low models/sentiment-classifier:") for f in findings)
    assert any(f.startswith("MLS307 medium models/sentiment-classifier:") for f in findings)
    # The malicious checkpoint's finding is on its model component.
    assert any(
        f.startswith("MLS101 critical models/finetune_epoch3.pt")
        for f in props(every["model:models/finetune_epoch3.pt"])["mlsec:finding"]
    )
    assert any(c["type"] == "library" for c in bom["components"])
    assert bom["vulnerabilities"]
