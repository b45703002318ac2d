"""The BOM of real models from public packages (fixtures/aibom/real/SOURCES.md): each field
asserted against what the files say, and nothing the files do not say."""

from __future__ import annotations

import hashlib
import json
import shutil
from typing import Any

import pytest

from mlsec.aibom.card import parse_card
from tests.aibom.helpers import REAL, bom_of, components, props, scan_report

MINILM = REAL / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("real")
    root = base / "repo"
    shutil.copytree(REAL, root, ignore=shutil.ignore_patterns("templates", "*.md", "*.json"))
    # The copy drops top-level notes; the model folders keep every file.
    for folder in ("all-MiniLM-L6-v2", "llama-style", "diffusers-pipeline"):
        shutil.rmtree(root / folder)
        shutil.copytree(REAL / folder, root / folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(base / "cache"))
        patch.delenv("SOURCE_DATE_EPOCH", raising=False)
        return scan_report(root)


@pytest.fixture(scope="module")
def real_bom(real_report: Any) -> dict[str, Any]:
    return bom_of(real_report)


@pytest.mark.parametrize(("fmt", "spec"), [("xml", "1.6"), ("json", "1.5"), ("xml", "1.5")])
def test_real_models_validate_in_every_form(real_report: Any, fmt: str, spec: str) -> None:
    from mlsec.render.cyclonedx import render_bom

    text = render_bom(real_report, fmt=fmt, spec_version=spec)  # strict validation inside
    assert "silero_vad.onnx" in text


def _card(component: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = component["modelCard"]
    return card


def _card_props(component: dict[str, Any]) -> dict[str, list[str]]:
    return props(_card(component))


# -- cards ----------------------------------------------------------------------------------
def test_minilm_card_description_and_intended_uses() -> None:
    card = parse_card(MINILM / "README.md", "README.md")
    # The paragraph right under the title (no blank line between), not the code snippet.
    assert card.description == (
        "This is a sentence-transformers model: It maps sentences & paragraphs to a 384 "
        "dimensional dense vector space and can be used for tasks like clustering or "
        "semantic search."
    )
    assert card.use_cases == (
        "Our model is intended to be used as a sentence and short paragraph encoder. Given an "
        "input text, it outputs a vector which captures the semantic information. The sentence "
        "vector may be used for information retrieval, clustering or sentence similarity tasks."
        "\n\nBy default, input text longer than 256 word pieces is truncated.",
    )
    assert card.training_data[0].startswith("We use the concatenation from multiple datasets")
    # "#Mean Pooling" and "# Sentences we want..." are comments in fenced code, not headings.
    assert card.limitations == () and card.ethical == () and card.evaluation == ()
    assert card.pipeline_tag == "sentence-similarity"
    assert card.library_name == "sentence-transformers"
    assert len(card.datasets) == 21 and card.datasets[0] == "s2orc"


def test_hub_template_unrendered_says_nothing() -> None:
    card = parse_card(REAL / "templates" / "modelcard_template.md", "README.md")
    assert card.description is None
    assert (card.use_cases, card.out_of_scope, card.limitations, card.ethical) == ((), (), (), ())
    assert (card.training_data, card.evaluation, card.tradeoffs) == ((), (), ())


def test_hub_template_rendered_fills_every_field() -> None:
    card = parse_card(REAL / "llama-style" / "README.md", "README.md")
    assert card.description == (
        "A 1B-parameter instruction-tuned text model for multilingual dialogue, "
        "summarisation and retrieval, fine-tuned from Llama 3.2 1B."
    )
    assert card.use_cases == (
        "Assistant-like chat and agentic retrieval and summarisation in the supported languages.",
    )
    assert card.out_of_scope == (
        "Use that violates applicable laws, and use in languages beyond the supported ones "
        "without further tuning and safety testing.",
    )
    bias = (
        "The model can produce inaccurate, biased or objectionable responses; its testing "
        "was in English and cannot cover every scenario."
    )
    # "Bias, Risks, and Limitations" is both; "Recommendations" under it is ethical only.
    assert card.limitations == (bias,)
    assert card.ethical == (
        bias,
        "Developers should perform safety testing and tuning tailored to their application "
        "before deployment.",
    )
    assert card.training_data == (
        "A new mix of publicly available online data, up to 9 trillion tokens.",
    )
    assert card.evaluation == (
        "Accuracy on MMLU (5-shot) and exact match on GSM8K.\n\nMMLU 49.3, GSM8K 44.4.",
    )


def test_diffusers_training_card_todos_are_missing() -> None:
    card = parse_card(REAL / "diffusers-pipeline" / "README.md", "README.md")
    assert card.description == (
        "This is a dreambooth model derived from stable-diffusion-v1-5/stable-diffusion-v1-5. "
        "The weights were trained on a photo of sks dog using DreamBooth. You can find some "
        "example images in the following."
    )
    assert card.use_cases == () and card.limitations == () and card.training_data == ()
    assert card.base_models == ("stable-diffusion-v1-5/stable-diffusion-v1-5",)


# -- the BOM of every real model -----------------------------------------------------------
def test_minilm_bom(real_bom: dict[str, Any]) -> None:
    every = components(real_bom)
    model = every["model:all-MiniLM-L6-v2"]
    assert model["name"] == "all-MiniLM-L6-v2"
    assert "version" not in model  # neither card nor config gives one
    assert model["description"].startswith("This is a sentence-transformers model")
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    parts = {c["name"]: props(c)["mlsec:role"][0] for c in model["components"]}
    # Every file of the folder, 1_Pooling/ included, with its role.
    assert parts == {
        "all-MiniLM-L6-v2/1_Pooling/config.json": "config",
        "all-MiniLM-L6-v2/README.md": "card",
        "all-MiniLM-L6-v2/config.json": "config",
        "all-MiniLM-L6-v2/config_sentence_transformers.json": "config",
        "all-MiniLM-L6-v2/data_config.json": "config",
        "all-MiniLM-L6-v2/model.safetensors": "weights",
        "all-MiniLM-L6-v2/modules.json": "config",
        "all-MiniLM-L6-v2/sentence_bert_config.json": "config",
        "all-MiniLM-L6-v2/special_tokens_map.json": "tokenizer",
        "all-MiniLM-L6-v2/tokenizer.json": "tokenizer",
        "all-MiniLM-L6-v2/tokenizer_config.json": "tokenizer",
        "all-MiniLM-L6-v2/vocab.txt": "tokenizer",
    }
    for part in model["components"]:
        digest = hashlib.sha256((REAL / part["name"]).read_bytes()).hexdigest()
        assert part["hashes"] == [{"alg": "SHA-256", "content": digest}]
    card = _card(model)
    params = card["modelParameters"]
    assert params["task"] == "sentence-similarity"
    assert params["inputs"] == [{"format": "string"}]
    assert params["outputs"] == [{"format": "embedding"}]
    assert "approach" not in params  # contrastive training: the task does not fix it
    assert params["architectureFamily"] == "bert"
    assert params["modelArchitecture"] == "BertModel"
    assert params["datasets"][0] == {"ref": "dataset:s2orc"}
    assert params["datasets"][-1]["description"].startswith("We use the concatenation")
    assert card["considerations"]["useCases"][0].startswith("Our model is intended to be used")
    cp = _card_props(model)
    assert cp["mlsec:architecture:layers"] == ["6"]
    assert cp["mlsec:architecture:attention-heads"] == ["12"]
    assert cp["mlsec:architecture:embedding-length"] == ["384"]
    assert cp["mlsec:architecture:vocabulary-size"] == ["30522"]
    assert cp["mlsec:architecture:context-length"] == ["512"]
    # The model uses the libraries its card, configs and modules name.
    graph = {d["ref"]: d.get("dependsOn", []) for d in real_bom["dependencies"]}
    libraries = [r for r in graph["model:all-MiniLM-L6-v2"] if r.startswith("pkg:")]
    assert libraries == [
        "pkg:pypi/sentence-transformers",
        "pkg:pypi/torch",
        "pkg:pypi/transformers",
    ]
    st = every["pkg:pypi/sentence-transformers"]
    assert "version" not in st  # not installed from a manifest: no version is known
    assert "2.0.0 (all-MiniLM-L6-v2)" in props(st)["mlsec:library:saved-with"]


def test_gguf_architecture_quantisation_languages_template(real_bom: dict[str, Any]) -> None:
    every = components(real_bom)
    model = every["model:smollm2-135m-instruct-q4_1.gguf"]
    assert model["name"] == "Smollm2 135M 8k Lc100K Mix1 Ep2"  # general.name
    assert "version" not in model
    assert model["supplier"] == {"name": "HuggingFaceTB"}
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert props(model)["mlsec:language"] == ["en"]
    cp = _card_props(model)
    assert {
        k.removeprefix("mlsec:architecture:"): v[0] for k, v in cp.items() if ":architecture:" in k
    } == {
        "attention-heads": "9",
        "context-length": "8192",
        "embedding-length": "576",
        "kv-heads": "3",
        "layers": "30",
        "quantization": "Q4_1",
        "tokenizer": "gpt2",
        "vocabulary-size": "49152",
    }
    meta = json.loads((REAL / "smollm2-gguf-metadata.json").read_text())["metadata"]
    template = meta["tokenizer.chat_template"]
    (part,) = model["components"]
    assert part["name"] == "smollm2-135m-instruct-q4_1.gguf#tokenizer.chat_template"
    assert part["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(template.encode()).hexdigest()}
    ]
    assert part["data"][0]["contents"]["attachment"]["content"] == template


def test_onnx_weights_in_constant_nodes_are_counted(real_bom: dict[str, Any]) -> None:
    model = components(real_bom)["model:silero-vad/silero_vad.onnx"]
    # 341 Constant nodes, no initializer: 545,597 elements (counted independently with the
    # onnx package when this fixture was added).
    assert props(model)["mlsec:parameter-count"] == ["545597"]
    assert "version" not in model  # model_version is not set in the file


def test_keras_parameter_counts_from_weight_shapes(real_bom: dict[str, Any]) -> None:
    every = components(real_bom)
    for path in ("keras/classifier.h5", "keras/classifier.keras"):
        # kernel 4x3 + bias 3 + kernel 3x2 + bias 2; the optimizer's 100 are not weights.
        assert props(every[f"model:{path}"])["mlsec:parameter-count"] == ["23"]


def test_whisper_assets_are_data_not_models(real_bom: dict[str, Any]) -> None:
    every = components(real_bom)
    assert not any(ref.startswith("model:whisper-assets") for ref in every)
    for name, role in (("mel_filters.npz", "data"), ("gpt2.tiktoken", "tokenizer")):
        data = every[f"file:whisper-assets/{name}"]
        assert data["type"] == "data"
        assert props(data)["mlsec:role"] == [role]
        digest = hashlib.sha256((REAL / "whisper-assets" / name).read_bytes()).hexdigest()
        assert data["hashes"] == [{"alg": "SHA-256", "content": digest}]


def test_diffusers_pipeline_is_one_model_with_every_folder(real_bom: dict[str, Any]) -> None:
    every = components(real_bom)
    model = every["model:diffusers-pipeline"]
    names = {c["name"].removeprefix("diffusers-pipeline/") for c in model["components"]}
    assert names == {
        "README.md",
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    }
    params = _card(model)["modelParameters"]
    assert params["inputs"] == [{"format": "string"}]
    assert params["outputs"] == [{"format": "image"}]
    assert "considerations" not in _card(model)  # the template's TODOs say nothing
    (base,) = model["pedigree"]["ancestors"]
    assert base["purl"] == "pkg:huggingface/stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert props(model)["mlsec:parameter-count"] == ["48"]  # three 4x4 tensors


def test_llama_style_bom(real_bom: dict[str, Any]) -> None:
    every = components(real_bom)
    model = every["model:llama-style"]
    assert model["licenses"] == [
        {"license": {"name": "llama3.2", "url": "https://www.llama.com/llama3_2/license/"}}
    ]
    card = _card(model)
    considerations = card["considerations"]
    assert considerations["useCases"] == [
        "Assistant-like chat and agentic retrieval and summarisation in the supported languages."
    ]
    assert considerations["technicalLimitations"][0].startswith("The model can produce")
    assert [e["name"][:14] for e in considerations["ethicalConsiderations"]] == [
        "The model can ",
        "Developers sho",
    ]
    cp = _card_props(model)
    assert cp["mlsec:out-of-scope-use"][0].startswith("Use that violates")
    assert cp["mlsec:evaluation"][0].startswith("Accuracy on MMLU")
    assert cp["mlsec:architecture:kv-heads"] == ["8"]
    assert cp["mlsec:architecture:context-length"] == ["131072"]
    template = json.loads((REAL / "llama-style" / "tokenizer_config.json").read_text())[
        "chat_template"
    ]
    part = every["model:llama-style#chat-template:llama-style/tokenizer_config.json:chat_template"]
    assert part["hashes"][0]["content"] == hashlib.sha256(template.encode()).hexdigest()
    assert part["data"][0]["contents"]["attachment"] == {
        "contentType": "text/x-jinja2",
        "content": template,
    }
    (base,) = model["pedigree"]["ancestors"]
    assert base["purl"] == "pkg:huggingface/meta-llama/Llama-3.2-1B"
