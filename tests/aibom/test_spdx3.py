"""SPDX 3.0.1 JSON-LD (`mlsec bom --format spdx3`): the same facts as the CycloneDX BOM, in
the AI and Dataset profiles, checked by spdx-python-model (required properties and
cardinalities on serialising; every reference resolving when read back) and byte-identical
under SOURCE_DATE_EPOCH."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlsec.errors import MlsecError
from tests.aibom.helpers import REAL, scan_report

EPOCH = "1700000000"


def _load(text: str) -> Any:
    """Read the document back with the library; every id referenced must be defined."""
    from spdx_python_model import v3_0_1 as spdx

    objects = spdx.SHACLObjectSet()
    spdx.JSONLDDeserializer().read(io.StringIO(text), objects)
    assert objects.link() == set()  # no dangling reference
    return objects


@pytest.fixture(scope="module")
def real_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spdx") / "repo"
    shutil.copytree(REAL, root, ignore=shutil.ignore_patterns("templates", "*.md", "*.json"))
    for folder in ("all-MiniLM-L6-v2", "llama-style", "diffusers-pipeline"):
        shutil.rmtree(root / folder)
        shutil.copytree(REAL / folder, root / folder)
    return root


def test_cli_spdx3_is_byte_identical_and_valid(real_repo: Path, cli, tmp_path: Path) -> None:
    env = {"SOURCE_DATE_EPOCH": EPOCH, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    outputs = []
    for name in ("a.json", "b.json"):
        done = cli(
            "bom", real_repo, "--format", "spdx3", "--no-git", "-o", tmp_path / name, env=env
        )
        assert done.returncode == 0, done.stderr
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    text = outputs[0].decode()
    _load(text)
    graph = json.loads(text)["@graph"]
    (info,) = [o for o in graph if o["type"] == "CreationInfo"]
    assert info["created"] == "2023-11-14T22:13:20Z"
    assert info["specVersion"] == "3.0.1"
    (document,) = [o for o in graph if o["type"] == "SpdxDocument"]
    assert document["profileConformance"] == ["core", "software", "ai", "dataset"]
    assert document["spdxId"].startswith("urn:uuid:")
    ids = {o["spdxId"] for o in graph if "spdxId" in o}
    assert set(document["element"]) == ids - {document["spdxId"]}


def _graph(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from mlsec.render.spdx3 import render_spdx3

    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    text = render_spdx3(scan_report(root))
    _load(text)
    graph = json.loads(text)["@graph"]
    by_name: dict[str, Any] = {}
    for obj in graph:
        by_name.setdefault(obj["type"], {})[obj.get("name", obj.get("spdxId", ""))] = obj
    by_name["relationships"] = [o for o in graph if o["type"] == "Relationship"]
    by_name["ids"] = {o.get("spdxId"): o for o in graph}
    return by_name


def _related(graph: dict[str, Any], source: str, kind: str) -> list[Any]:
    targets = [
        t
        for r in graph["relationships"]
        if r["from"] == source and r["relationshipType"] == kind
        for t in r["to"]
    ]
    return [graph["ids"][t] for t in targets]


def test_minilm_as_an_ai_package(real_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _graph(real_repo, monkeypatch)
    model = graph["ai_AIPackage"]["all-MiniLM-L6-v2"]
    assert model["software_primaryPurpose"] == "model"
    assert model["description"].startswith("This is a sentence-transformers model")
    assert model["ai_domain"] == ["sentence-similarity"]
    assert model["ai_typeOfModel"] == ["BertModel"]
    assert model["ai_informationAboutApplication"].startswith("Our model is intended")
    assert model["ai_informationAboutTraining"].startswith("We use the concatenation")
    hyper = {e["key"]: e["value"] for e in model["ai_hyperparameter"]}
    assert hyper == {
        "attention-heads": "12",
        "context-length": "512",
        "embedding-length": "384",
        "layers": "6",
        "vocabulary-size": "30522",
        "parameter-count": "328",
    }
    assert "software_packageVersion" not in model  # none is known
    files = _related(graph, model["spdxId"], "contains")
    assert len(files) == 12 and all(f["type"] == "software_File" for f in files)
    assert {f["name"] for f in files} >= {"all-MiniLM-L6-v2/1_Pooling/config.json"}
    weights = [f for f in files if f["name"].endswith("model.safetensors")]
    assert weights[0]["software_primaryPurpose"] == "model"
    assert weights[0]["verifiedUsing"][0]["algorithm"] == "sha256"
    trained = _related(graph, model["spdxId"], "trainedOn")
    assert len(trained) == 21 and {d["type"] for d in trained} == {"dataset_DatasetPackage"}
    assert all(d["dataset_datasetType"] == ["noAssertion"] for d in trained)
    (license_,) = _related(graph, model["spdxId"], "hasDeclaredLicense")
    assert license_["simplelicensing_licenseExpression"] == "Apache-2.0"
    libraries = [p["software_packageUrl"] for p in _related(graph, model["spdxId"], "dependsOn")]
    assert libraries == [
        "pkg:pypi/sentence-transformers",
        "pkg:pypi/torch",
        "pkg:pypi/transformers",
    ]


def test_gguf_llama_and_arrays(real_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _graph(real_repo, monkeypatch)
    gguf = graph["ai_AIPackage"]["Smollm2 135M 8k Lc100K Mix1 Ep2"]
    hyper = {e["key"]: e["value"] for e in gguf["ai_hyperparameter"]}
    assert hyper["quantization"] == "Q4_1" and hyper["context-length"] == "8192"
    assert graph["ids"][gguf["suppliedBy"]]["name"] == "HuggingFaceTB"
    (template,) = _related(graph, gguf["spdxId"], "contains")
    assert template["contentType"] == "text/x-jinja2"
    assert template["description"].startswith("{% for message in messages %}")
    llama = graph["ai_AIPackage"]["llama-style"]
    assert llama["ai_limitation"].startswith("The model can produce")
    assert "Out of scope: Use that violates" in llama["ai_informationAboutApplication"]
    (licence,) = _related(graph, llama["spdxId"], "hasDeclaredLicense")
    assert licence["simplelicensing_licenseExpression"] == "LicenseRef-llama3.2"
    base = graph["ai_AIPackage"]["meta-llama/Llama-3.2-1B"]
    assert base["software_packageUrl"] == "pkg:huggingface/meta-llama/Llama-3.2-1B"
    assert _related(graph, base["spdxId"], "ancestorOf") == [llama]
    mel = graph["software_File"]["whisper-assets/mel_filters.npz"]
    assert mel["software_primaryPurpose"] == "data"
    assert "whisper-assets/mel_filters.npz" not in graph["ai_AIPackage"]
    silero = graph["ai_AIPackage"]["silero_vad.onnx"]
    assert {"key": "parameter-count", "value": "545597", "type": "DictionaryEntry"} in silero[
        "ai_hyperparameter"
    ]


def test_serialising_checks_required_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's check is real: a dataset without its required type does not serialise,
    and the renderer reports it as an internal error rather than writing it."""
    from spdx_python_model import v3_0_1 as spdx

    from mlsec.render import spdx3

    real = spdx3._Document.dataset

    def broken(self: Any, dataset: Any) -> str:
        element_id = real(self, dataset)
        next(o for o in self.objects if o._id == element_id).dataset_datasetType = []
        return element_id

    monkeypatch.setattr(spdx3._Document, "dataset", broken)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    report = scan_report(REAL / "all-MiniLM-L6-v2")
    with pytest.raises(MlsecError, match="not valid"):
        spdx3.render_spdx3(report)
    assert spdx.dataset_DatasetPackage  # the class the check comes from
