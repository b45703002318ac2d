"""The BOM of the committed fixtures: a Hugging Face style folder, a GGUF and an ONNX model."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.aibom.helpers import AIBOM_FIXTURES, bom_of, components, props, scan_report


def _sha256sum(path: Path) -> str:
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bom_validates_strictly_and_has_ml_components(fixture_copy: Path) -> None:
    from mlsec.render.cyclonedx import render_bom

    text = render_bom(scan_report(fixture_copy))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    models = {c["bom-ref"]: c for c in bom["components"] if c["type"] == "machine-learning-model"}
    assert set(models) == {"model:hf-model", "model:tiny-llama.gguf", "model:classifier.onnx"}
    assert bom["metadata"]["tools"]["components"][0]["name"] == "mlsec"
    assert bom["metadata"]["component"]["bom-ref"] == "repository"


def test_hashes_match_sha256sum_for_every_model_file(fixture_copy: Path) -> None:
    bom = bom_of(scan_report(fixture_copy))
    every = components(bom)
    hf_files = sorted(
        p.relative_to(fixture_copy).as_posix() for p in (fixture_copy / "hf-model").iterdir()
    )
    assert hf_files == [
        "hf-model/README.md",
        "hf-model/config.json",
        "hf-model/model.safetensors",
        "hf-model/tokenizer_config.json",
    ]
    # One model with one file component (and hash) per file.
    nested = {c["name"] for c in every["model:hf-model"]["components"]}
    assert nested == set(hf_files)
    for rel in hf_files:
        hashes = every[f"file:{rel}"]["hashes"]
        assert hashes == [{"alg": "SHA-256", "content": _sha256sum(fixture_copy / rel)}]
    for single in ("tiny-llama.gguf", "classifier.onnx"):
        assert every[f"model:{single}"]["hashes"] == [
            {"alg": "SHA-256", "content": _sha256sum(fixture_copy / single)}
        ]
        assert props(every[f"model:{single}"])["mlsec:size"] == [
            str((fixture_copy / single).stat().st_size)
        ]


def test_every_card_field_lands_where_it_should(fixture_copy: Path) -> None:
    bom = bom_of(scan_report(fixture_copy))
    every = components(bom)
    model = every["model:hf-model"]
    assert model["name"] == "tiny-bert-sentiment"  # model-index name
    assert model["version"] == "1.2.0"
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert model["authors"] == [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}]
    assert model["description"].startswith("A tiny BERT model fine-tuned")
    assert model["tags"] == ["generated_from_trainer", "sentiment-analysis"]
    assert {"type": "model-card", "url": "hf-model/README.md"} in model["externalReferences"]
    (ancestor,) = model["pedigree"]["ancestors"]
    assert ancestor["name"] == "google-bert/bert-base-uncased"
    assert ancestor["type"] == "machine-learning-model"
    assert ancestor["externalReferences"] == [
        {"type": "website", "url": "https://huggingface.co/google-bert/bert-base-uncased"}
    ]
    p = props(model)
    assert p["mlsec:language"] == ["en"]
    assert p["mlsec:library"] == ["transformers"]
    assert p["mlsec:version-source"] == ["card"]

    card = model["modelCard"]
    params = card["modelParameters"]
    assert params["task"] == "text-classification"  # pipeline_tag
    assert params["architectureFamily"] == "bert"  # config.json model_type
    assert params["modelArchitecture"] == "BertForSequenceClassification"
    assert params["datasets"] == [
        {"ref": "dataset:stanfordnlp/imdb"},
        {"ref": "dataset:stanfordnlp/sst2"},
    ]
    assert card["quantitativeAnalysis"]["performanceMetrics"] == [
        {"type": "accuracy", "value": "0.9312", "slice": "IMDB test"},
        {"type": "f1", "value": "0.9298", "slice": "IMDB test"},
    ]
    considerations = card["considerations"]
    assert considerations["useCases"] == [
        "Classifying the sentiment (positive or negative) of short English reviews."
    ]
    assert considerations["technicalLimitations"] == [
        "Trained on movie reviews only; accuracy drops on other domains and on sarcasm."
    ]
    assert {
        "name": "mlsec:out-of-scope-use",
        "value": ("Medical, legal or financial decisions; languages other than English."),
    } in card["properties"]
    # "[More Information Needed]" sections (Recommendations, Environmental Impact) are absent.
    assert "More Information Needed" not in json.dumps(bom)

    for name, roles in (
        ("stanfordnlp/imdb", {"training", "evaluation"}),
        ("stanfordnlp/sst2", {"training"}),
    ):
        data = every[f"dataset:{name}"]
        assert data["type"] == "data"
        assert data["data"] == [
            {
                "type": "dataset",
                "name": name,
                "contents": {"url": f"https://huggingface.co/datasets/{name}"},
            }
        ]
        assert set(props(data)["mlsec:dataset:role"]) == roles
    graph = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert graph["model:hf-model"] == [
        "dataset:stanfordnlp/imdb",
        "dataset:stanfordnlp/sst2",
        "pkg:pypi/transformers",
    ]
    assert "model:hf-model" in graph["repository"]


def test_nothing_invented_for_a_bare_weights_file(tmp_path: Path) -> None:
    """A lone safetensors file: no card, no metadata beyond its header, not in git."""
    (tmp_path / "weights.safetensors").write_bytes(
        (AIBOM_FIXTURES / "hf-model" / "model.safetensors").read_bytes()
    )
    report = scan_report(tmp_path)
    bom = bom_of(report)
    model = components(bom)["model:weights.safetensors"]
    assert model["name"] == "weights.safetensors"
    for field in ("version", "licenses", "supplier", "authors", "description", "pedigree", "tags"):
        assert field not in model, field
    card = model.get("modelCard", {})
    assert not {"modelParameters", "quantitativeAnalysis", "considerations"} & set(card)
    assert props(model)["mlsec:parameter-count"] == ["146"]  # from the safetensors header
    # Not a git repository: no version, no VCS reference, no git properties.
    repo = bom["metadata"]["component"]
    assert "version" not in repo and "externalReferences" not in repo
    assert not any(p["name"].startswith("mlsec:git:") for p in repo.get("properties", []))
    found = {(f.rule_id, f.path) for f in report.findings if f.rule_id.startswith("MLS3")}
    assert found == {
        ("MLS301", "weights.safetensors"),
        ("MLS302", "weights.safetensors"),
        ("MLS303", "weights.safetensors"),
    }


def test_completeness_scores_and_findings(fixture_copy: Path) -> None:
    report = scan_report(fixture_copy)
    bom = bom_of(report)
    hf = props(components(bom)["model:hf-model"])
    assert hf["mlsec:completeness:ntia-minimum-elements"] == ["1.00"]
    assert hf["mlsec:completeness:eu-ai-act-annex-iv"] == ["1.00"]
    onnx = props(components(bom)["model:classifier.onnx"])
    assert onnx["mlsec:completeness:ntia-minimum-elements"] == ["1.00"]
    assert onnx["mlsec:completeness:eu-ai-act-annex-iv:missing"] == [
        "description, intended-purpose, architecture, training-data, data-provenance, "
        "performance-metrics, limitations, risks"
    ]
    found = {(f.rule_id, f.path, f.severity.value) for f in report.findings}
    assert ("MLS303", "classifier.onnx", "low") in found
    assert ("MLS302", "classifier.onnx", "low") in found
    assert not any(r in ("MLS301", "MLS306") for r, p, _ in found if p == "classifier.onnx")
    assert ("MLS302", "hf-model", "low") in found  # not in git, no hub URL, no signature
    # The complete card raises nothing else.
    assert {r for r, p, _ in found if p == "hf-model"} == {"MLS302"}
    assert (
        "MLS303 low classifier.onnx: Model 'classifier.onnx' does not name its training data"
        in onnx["mlsec:finding"]
    )


def test_gap_findings_are_opt_in(fixture_copy: Path) -> None:
    default = scan_report(fixture_copy, select=None)
    assert not [f for f in default.findings if f.rule_id.startswith("MLS3")]
    # ... while the BOM still carries the scores.
    onnx = props(components(bom_of(default))["model:classifier.onnx"])
    assert onnx["mlsec:completeness:eu-ai-act-annex-iv"] == ["0.33"]
    (fixture_copy / ".mlsec.toml").write_text("[bom]\nfindings = true\n")
    enabled = scan_report(fixture_copy, select=None)
    assert ("MLS303", "classifier.onnx") in {(f.rule_id, f.path) for f in enabled.findings}


def test_min_completeness_config(fixture_copy: Path) -> None:
    (fixture_copy / ".mlsec.toml").write_text("[bom]\nmin-completeness = 0.9\n")
    report = scan_report(fixture_copy, select=None)  # MLS307 needs no opt-in beyond this
    low = {(f.rule_id, f.path, f.key) for f in report.findings if f.rule_id == "MLS307"}
    assert ("MLS307", "classifier.onnx", "completeness:eu-ai-act-annex-iv") in low
    assert not any(path == "hf-model" for _, path, _ in low)


def test_bad_bom_config_is_a_config_error(fixture_copy: Path) -> None:
    from mlsec.errors import ConfigError

    (fixture_copy / ".mlsec.toml").write_text("[bom]\nmin-completness = 0.9\n")
    with pytest.raises(ConfigError, match=r"bom\.min-completness: unknown key"):
        scan_report(fixture_copy)


def test_gguf_and_onnx_metadata(fixture_copy: Path) -> None:
    """The model-format analyzer's facts (format, parameters, header metadata) reach the BOM."""
    report = scan_report(fixture_copy)
    every = components(bom_of(report))

    gguf = every["model:tiny-llama.gguf"]
    assert gguf["name"] == "Tiny Llama Test"
    assert gguf["version"] == "0.3"
    assert gguf["supplier"] == {"name": "example-org"}
    assert gguf["authors"] == [{"name": "Grace Hopper"}]
    assert gguf["licenses"] == [{"license": {"name": "llama3.2"}}]  # not an SPDX id
    assert gguf["description"] == "A tiny llama-architecture model for tests."
    assert gguf["pedigree"]["ancestors"][0]["name"] == "meta-llama/Llama-3.2-1B"
    p = props(gguf)
    assert p["mlsec:parameter-count"] == ["256"]  # 2 tensors of 16x8
    assert p["mlsec:format"] == ["gguf"]
    assert p["mlsec:version-source"] == ["gguf"]
    card = gguf["modelCard"]
    assert card["modelParameters"] == {"architectureFamily": "llama"}
    card_props = {x["name"]: x["value"] for x in card["properties"]}
    assert card_props["mlsec:metadata:gguf:general.license"] == "llama3.2"
    assert not any("tokenizer" in k for k in card_props)
    found = {(f.rule_id, f.path) for f in report.findings}
    assert ("MLS305", "tiny-llama.gguf") in found
    assert ("MLS301", "tiny-llama.gguf") not in found

    onnx = every["model:classifier.onnx"]
    assert onnx["version"] == "3"  # ModelProto.model_version
    assert onnx["licenses"] == [{"license": {"id": "MIT"}}]  # metadata_props license
    assert onnx["authors"] == [{"name": "Katherine Johnson"}]
    assert props(onnx)["mlsec:parameter-count"] == ["12"]
    assert props(onnx)["mlsec:version-source"] == ["onnx"]
    onnx_props = {x["name"]: x["value"] for x in onnx["modelCard"]["properties"]}
    assert onnx_props["mlsec:metadata:onnx:producer_name"] == "pytorch"
    assert onnx_props["mlsec:metadata:onnx:producer_version"] == "2.4.0"
    assert onnx_props["mlsec:metadata:onnx:opset_imports.default"] == "17"

    assert props(every["model:hf-model"])["mlsec:parameter-count"] == ["146"]


def test_xml_output_validates_and_carries_the_model_card(fixture_copy: Path) -> None:
    from mlsec.render.cyclonedx import render_bom

    xml = render_bom(scan_report(fixture_copy), fmt="xml")
    assert '<modelCard bom-ref="model:hf-model#model-card">' in xml
    assert "<task>text-classification</task>" in xml
    assert "<ref>dataset:stanfordnlp/imdb</ref>" in xml
    assert "<url>https://huggingface.co/datasets/stanfordnlp/sst2</url>" in xml


def test_spec_version_1_5(fixture_copy: Path) -> None:
    bom = bom_of(scan_report(fixture_copy), spec_version="1.5")
    assert bom["specVersion"] == "1.5"
    assert components(bom)["model:hf-model"]["modelCard"]["modelParameters"]["task"]


def test_invalid_bom_raises_and_is_never_returned(
    fixture_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.render import cdx_ml, cyclonedx

    real = cdx_ml.insert_json

    def broken(text: str, extras: dict) -> str:
        # A model card field the schema does not know: strict validation must refuse it.
        return real(text, {**extras, "model:hf-model": {"modelCard": {"madeUp": True}}})

    monkeypatch.setattr(cdx_ml, "insert_json", broken)
    with pytest.raises(cyclonedx.InvalidBomError, match="does not validate"):
        cyclonedx.render_bom(scan_report(fixture_copy))


def test_validation_memo_skips_only_identical_content(
    fixture_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.render import cyclonedx

    calls: list[str] = []
    real = cyclonedx._validate_json
    monkeypatch.setattr(
        cyclonedx, "_validate_json", lambda text, v: calls.append(v) or real(text, v)
    )
    memo = cyclonedx.ValidationMemo(tmp_path / "memo.json")
    report = scan_report(fixture_copy)
    first = cyclonedx.render_bom(report, memo=memo)
    second = cyclonedx.render_bom(
        scan_report(fixture_copy), memo=cyclonedx.ValidationMemo(tmp_path / "memo.json")
    )
    assert len(calls) == 1  # same content, new serial and timestamp: validated once
    assert json.loads(first)["serialNumber"] != json.loads(second)["serialNumber"]
    (fixture_copy / "hf-model" / "config.json").write_text('{"model_type": "roberta"}')
    cyclonedx.render_bom(scan_report(fixture_copy), memo=memo)
    assert len(calls) == 2  # changed content is validated again


def test_render_memo_serves_an_unchanged_bom_without_rebuilding_it(
    fixture_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.render import cyclonedx

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    memo_file = tmp_path / "memo.json"
    first = cyclonedx.render_bom(
        scan_report(fixture_copy), memo=cyclonedx.ValidationMemo(memo_file)
    )
    built: list[int] = []
    from mlsec.render import cdx_build

    real_build = cdx_build.BomBuilder.build
    monkeypatch.setattr(
        cdx_build.BomBuilder, "build", lambda self: built.append(1) or real_build(self)
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    second = cyclonedx.render_bom(
        scan_report(fixture_copy), memo=cyclonedx.ValidationMemo(memo_file)
    )
    assert built == []  # served from the memo
    one, two = json.loads(first), json.loads(second)
    assert two["metadata"]["timestamp"] == "2027-01-15T08:00:00+00:00"  # this run's time
    assert one["serialNumber"] != two["serialNumber"]  # derived from this run's content
    one["metadata"].pop("timestamp"), two["metadata"].pop("timestamp")
    one.pop("serialNumber"), two.pop("serialNumber")
    assert one == two
    # The same run without the memo gives the same bytes.
    assert second == cyclonedx.render_bom(scan_report(fixture_copy))
    built.clear()
    (fixture_copy / "hf-model" / "config.json").write_text('{"model_type": "roberta"}')
    cyclonedx.render_bom(scan_report(fixture_copy), memo=cyclonedx.ValidationMemo(memo_file))
    assert built == [1]  # a changed repository is rendered again


def test_render_key_follows_every_fact_but_the_serial_and_time(fixture_copy: Path) -> None:
    import dataclasses

    from mlsec.render.cyclonedx import ValidationMemo

    report = scan_report(fixture_copy)
    facts = report.facts["aibom"]

    def key(aibom: object) -> str:
        return ValidationMemo.render_key(
            report._replace(facts={**report.facts, "aibom": aibom}), "json", "1.6"
        )

    base = key(facts)
    assert key(dataclasses.replace(facts, serial="urn:uuid:1", timestamp=1)) == base
    model = facts.models[0]
    file = dataclasses.replace(model.files[0], sha256="0" * 64)  # deep inside a model
    changed = dataclasses.replace(model, files=(file, *model.files[1:]))
    assert key(dataclasses.replace(facts, models=(changed, *facts.models[1:]))) != base
    assert key(dataclasses.replace(facts, timestamp=None)) != base  # no time: a field less
