"""Units of the AIBOM: credentials, cards, code datasets, grouping, hostile inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.aibom.card import parse_card, parse_config
from mlsec.aibom.code_datasets import find_datasets
from mlsec.aibom.gitinfo import strip_credentials, web_url
from tests.aibom.helpers import bom_of, components, props, scan_report


@pytest.mark.parametrize(
    ("remote", "stripped"),
    [
        ("https://user:ghp_secret@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://oauth2:tok@gitlab.example.com:8443/g/r", "https://gitlab.example.com:8443/g/r"),
        ("ssh://git:pw@host.example/org/repo.git", "ssh://host.example/org/repo.git"),
        ("git@github.com:org/repo.git", "github.com:org/repo.git"),
        ("https://huggingface.co/org/model", "https://huggingface.co/org/model"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
    ],
)
def test_strip_credentials(remote: str, stripped: str) -> None:
    assert strip_credentials(remote) == stripped


def test_web_url() -> None:
    assert web_url("github.com:org/repo.git") == "https://github.com/org/repo"
    assert web_url("https://huggingface.co/org/model") == "https://huggingface.co/org/model"
    assert web_url("/srv/git/repo.git") is None


def test_placeholders_count_as_missing(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text(
        "---\nlicense: '[More Information Needed]'\ndatasets:\n- '[More Information Needed]'\n"
        "pipeline_tag: ''\nbase_model: []\n---\n\n[More Information Needed]\n\n"
        "## Bias, Risks, and Limitations\n\n[More Information Needed]\n\n"
        "## Direct Use\n\n<!-- Explain the use -->\n[More Information Needed]\n"
    )
    parsed = parse_card(card, "README.md")
    assert parsed.front_matter
    assert parsed.license is None and parsed.datasets == () and parsed.pipeline_tag is None
    assert parsed.base_models == () and parsed.description is None
    assert parsed.limitations == () and parsed.use_cases == ()


@pytest.mark.parametrize(
    "text",
    [
        "---\nlicense: [unclosed\n---\nbody\n",  # broken YAML
        "---\n- just\n- a list\n---\n",  # not a mapping
        "---\n!!python/object/apply:os.system ['echo hi']\n---\n",  # unsafe tag: refused
        "no front matter at all",
        "\x00\xff\xfe garbage",
    ],
)
def test_hostile_cards_do_not_raise(tmp_path: Path, text: str) -> None:
    card = tmp_path / "README.md"
    card.write_bytes(text.encode("utf-8", "surrogateescape"))
    parsed = parse_card(card, "README.md")
    assert parsed.license is None and not parsed.declares_model


def test_config_that_is_not_an_object(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("[1, 2]")
    assert parse_config(config, "config.json") is None
    config.write_text("{not json")
    assert parse_config(config, "config.json") is None


def test_code_datasets_ast_and_regex_fallback(tmp_path: Path) -> None:
    good = tmp_path / "train.py"
    good.write_text(
        "import datasets\nimport tensorflow_datasets as tfds\n"
        "a = datasets.load_dataset('org/a')\n"
        "b = load_dataset(path='org/b', split='train')\n"
        "c = tfds.load('mnist')\n"
        "d = load_dataset(name_variable)\n"
    )
    assert [(d.name, d.line) for d in find_datasets(good, "train.py")] == [
        ("org/a", 3),
        ("org/b", 4),
        ("mnist", 5),
    ]
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n  x = load_dataset('org/c')\n")
    assert [(d.name, d.line) for d in find_datasets(broken, "broken.py")] == [("org/c", 2)]


def test_sharded_weights_and_card_only_folder(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    header = b'{"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}'
    header += b" " * (-len(header) % 8)
    for i in (1, 2):
        (shards / f"model-0000{i}-of-00002.safetensors").write_bytes(
            len(header).to_bytes(8, "little") + header + bytes(8)
        )
    card_only = tmp_path / "card-only"
    card_only.mkdir()
    (card_only / "README.md").write_text("---\nlicense: mit\npipeline_tag: fill-mask\n---\n")
    report = scan_report(tmp_path)
    every = components(bom_of(report))
    shard_model = every["model:shards/model.safetensors"]
    assert {c["name"] for c in shard_model["components"]} == {
        "shards/model-00001-of-00002.safetensors",
        "shards/model-00002-of-00002.safetensors",
    }
    assert "model:card-only" in every
    no_weights = [(f.rule_id, f.path, f.key) for f in report.findings if f.rule_id == "MLS304"]
    assert no_weights == [("MLS304", "card-only", "no-weights")]


def test_space_card_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(
        "---\ntitle: Demo\nsdk: gradio\nlicense: mit\nlibrary_name: gradio\n---\n"
    )
    (tmp_path / "app.py").write_text("print('hi')\n")
    bom = bom_of(scan_report(tmp_path))
    assert not [c for c in bom.get("components", []) if c["type"] == "machine-learning-model"]


def test_yaml_alias_bomb_in_card_is_bounded(tmp_path: Path) -> None:
    import time

    metrics = "m: &m [" + ", ".join(["{type: acc, value: 1}"] * 1000) + "]\n"
    results = "r: &r [" + ", ".join(["{metrics: *m}"] * 1000) + "]\n"
    index = "model-index: [" + ", ".join(["{results: *r}"] * 1000) + "]\n"
    tags = "tags: [" + ", ".join(["*t"] * 50000) + "]\n"
    card = tmp_path / "README.md"
    card.write_text("---\nt: &t tag\n" + metrics + results + index + tags + "---\n")
    start = time.perf_counter()
    parsed = parse_card(card, "README.md")
    assert time.perf_counter() - start < 10
    assert len(parsed.metrics) == 256 and parsed.tags == ("tag",)


def test_config_with_several_analyzer_sections_keeps_them_all(tmp_path: Path) -> None:
    from mlsec.config import build_options

    (tmp_path / ".mlsec.toml").write_text("[bom]\nfindings = true\n\n[signatures]\nrequired = []\n")
    options = build_options(tmp_path)
    assert options.section("bom") == {"findings": True}
    assert options.section("signatures") == {"required": []}


def test_savedmodel_folder_is_one_model_with_its_variables(tmp_path: Path) -> None:
    saved = tmp_path / "export" / "1"
    (saved / "variables").mkdir(parents=True)
    (saved / "assets").mkdir()
    saved_pb = Path(__file__).resolve().parents[2] / "fixtures" / "formats" / "saved_model"
    (saved / "saved_model.pb").write_bytes((saved_pb / "saved_model.pb").read_bytes())
    (saved / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(range(256)) * 4)
    (saved / "variables" / "variables.index").write_bytes(b"\x00\x01index")
    (saved / "assets" / "vocab.txt").write_text("a\nb\n")
    (saved / "fingerprint.pb").write_bytes(b"\x08\x01fp")
    every = components(bom_of(scan_report(tmp_path)))
    model = every["model:export/1"]
    assert {c["name"] for c in model["components"]} == {
        "export/1/saved_model.pb",
        "export/1/variables/variables.data-00000-of-00001",
        "export/1/variables/variables.index",
        "export/1/assets/vocab.txt",
        "export/1/fingerprint.pb",
    }
    roles = {c["name"]: props(c)["mlsec:role"][0] for c in model["components"]}
    assert roles["export/1/variables/variables.data-00000-of-00001"] == "weights"


def test_diffusers_pipeline_is_one_model(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(
        "---\nlicense: openrail++\npipeline_tag: text-to-image\nlibrary_name: diffusers\n---\n"
    )
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    weights = Path(__file__).resolve().parents[2] / "fixtures" / "aibom" / "hf-model"
    for part in ("unet", "vae", "text_encoder"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "config.json").write_text('{"_class_name": "X"}')
        (tmp_path / part / "diffusion_pytorch_model.safetensors").write_bytes(
            (weights / "model.safetensors").read_bytes()
        )
    report = scan_report(tmp_path)
    bom = bom_of(report)
    models = [c["bom-ref"] for c in bom["components"] if c["type"] == "machine-learning-model"]
    assert models == ["model:."]
    names = {c["name"] for c in components(bom)["model:."]["components"]}
    assert "unet/diffusion_pytorch_model.safetensors" in names
    assert "vae/config.json" in names and "model_index.json" in names
    assert not [f for f in report.findings if f.rule_id == "MLS304"]
    assert components(bom)["model:."]["licenses"] == [{"license": {"name": "openrail++"}}]


def test_missing_shard_named_by_index(tmp_path: Path) -> None:
    model = tmp_path / "big"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama", "architectures": ["Llama"]}')
    source = Path(__file__).resolve().parents[2] / "fixtures" / "aibom" / "hf-model"
    (model / "model-00001-of-00002.safetensors").write_bytes(
        (source / "model.safetensors").read_bytes()
    )
    (model / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "model-00001-of-00002.safetensors",'
        ' "b": "model-00002-of-00002.safetensors", "c": "../../etc/passwd"}}'
    )
    report = scan_report(tmp_path)
    found = [(f.rule_id, f.path, f.key) for f in report.findings if f.rule_id == "MLS304"]
    assert found == [("MLS304", "big", "missing:big/model-00002-of-00002.safetensors")]
    model_props = props(components(bom_of(report))["model:big"])
    assert model_props["mlsec:missing-file"] == ["big/model-00002-of-00002.safetensors"]
    assert "integrity" in model_props["mlsec:completeness:eu-ai-act-annex-iv:missing"][0]


def test_hostile_model_folder_scans_without_errors(tmp_path: Path) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)  # deep nesting
    (folder / "README.md").write_bytes(b"---\nlicense: mit\n" + b"x" * (3 * 1024 * 1024))
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)  # not a valid header
    (folder / "tokenizer_config.json").write_bytes(b"\x00\x01\x02")
    (tmp_path / "train.py").write_text("load_dataset(" * 50_000)  # does not parse
    report = scan_report(tmp_path)
    assert not [e for e in report.errors if e.analyzer == "aibom"]
    bom = bom_of(report)
    assert "model:evil" in components(bom) or "model:evil/model.safetensors" in components(bom)


@given(st.binary(max_size=2048))
@settings(max_examples=150, deadline=None)
def test_card_parser_never_raises(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    card = tmp_path_factory.mktemp("card") / "README.md"
    card.write_bytes(b"---\n" + data + b"\n---\nbody\n")
    parse_card(card, "README.md")
    card.write_bytes(data)
    parse_card(card, "README.md")
    find_datasets(card, "README.md")


def test_deeply_nested_front_matter(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("---\nx: " + "[" * 50_000 + "]" * 50_000 + "\n---\nbody\n")
    assert parse_card(card, "README.md").front_matter is False


@pytest.mark.parametrize(
    "body",
    [
        "# x" + " " * 200_000 + "y\n",  # heading regexes used to backtrack quadratically
        "<!--" * 200_000,  # unclosed comments
        "## Limitations\n" + "<!--" * 100_000,
    ],
)
def test_card_text_is_parsed_in_linear_time(tmp_path: Path, body: str) -> None:
    import time

    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\n" + body)
    start = time.perf_counter()
    assert parse_card(card, "README.md").license == "mit"
    assert time.perf_counter() - start < 2


def test_plain_scan_builds_no_bom_and_hashes_nothing(tmp_path: Path, monkeypatch) -> None:
    """A security scan that outputs no BOM must not pay for one (hashing every weight file)."""
    from mlsec import hashing
    from mlsec.config import build_options
    from mlsec.scan import scan

    (tmp_path / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    calls: list[object] = []
    monkeypatch.setattr(
        hashing, "sha256_file_keyed", lambda path: (calls.append(path) or "0" * 64, "key")
    )
    report = scan(build_options(tmp_path, use_git=False))
    assert "aibom" not in report.facts
    assert calls == []
    with_bom = scan(build_options(tmp_path, use_git=False, build_bom=True))
    assert "aibom" in with_bom.facts
    assert calls == [tmp_path / "model.safetensors"]


def test_hash_cache_forgets_deleted_files_and_keeps_the_most_recent(tmp_path: Path) -> None:
    from mlsec.hashing import HashCache, hash_files

    files = []
    for i in range(7):
        f = tmp_path / f"w{i}.bin"
        f.write_bytes(bytes([i]) * 100)
        files.append(f)
    store = tmp_path / "cache" / "hashes.json"
    first = hash_files(files[:5], cache=HashCache(store, max_entries=3))
    assert len(first) == 5
    kept = json.loads(store.read_text())["entries"]
    assert sorted(kept) == sorted(str(f) for f in files[2:5])  # the three hashed last

    cache = HashCache(store, max_entries=3)
    assert cache.get(files[2]) == first[files[2]]  # a hit makes w2 the most recent
    files[4].unlink()
    hash_files(files[5:], cache=cache)  # new digests: the cache is pruned and rewritten
    kept = json.loads(store.read_text())["entries"]
    # w4 is gone from disk, w3 is the least recently used; w2 was just used.
    assert sorted(kept) == sorted(str(files[i]) for i in (2, 5, 6))


def test_facts_json_keeps_nested_records_as_objects() -> None:
    from mlsec.facts import Dependency, DependencyFacts, ModelFacts, ModelFileFact

    dep = Dependency("torch", "2.0.0", "==2.0.0", "requirements.txt", line=3)
    nested = ModelFileFact("m.pt", "pytorch-zip", 10, metadata={"first": dep})
    [as_json] = ModelFacts(files=(nested,)).to_json()
    assert as_json["metadata"]["first"]["name"] == "torch"  # not a bare list of values
    assert DependencyFacts(dependencies=(dep,)).to_json()["dependencies"][0]["line"] == 3


@pytest.mark.parametrize(
    ("heading", "field"),
    [
        ("## Intended uses", "use_cases"),
        ("## Intended Use Cases", "use_cases"),
        ("### Direct Use", "use_cases"),
        ("### Downstream Use [optional]", "use_cases"),
        ("### Out-of-Scope Use", "out_of_scope"),
        ("## Misuse and Out-of-scope Use", "out_of_scope"),
        ("## Limitations", "limitations"),
        ("## Known limitations", "limitations"),
        ("## Ethical Considerations", "ethical"),
        ("## Safety", "ethical"),
        ("## Explanation of quantisation methods", "tradeoffs"),
        ("## Performance trade-offs", "tradeoffs"),
        ("#### Training data", "training_data"),
        ("### Training Dataset", "training_data"),
        ("## Evaluation", "evaluation"),
        ("## Evaluation results", "evaluation"),
        ("## Benchmarks", "evaluation"),
    ],
)
def test_headings_are_matched_by_meaning(heading: str, field: str) -> None:
    from mlsec.aibom.card import parse_card_text

    card = parse_card_text(f"# Title\n\nA model.\n\n{heading}\n\nSection text.\n", "README.md")
    fields = ("use_cases", "out_of_scope", "limitations", "ethical", "tradeoffs")
    fields += ("training_data", "evaluation")
    assert {f: getattr(card, f) for f in fields if getattr(card, f)} == {field: ("Section text.",)}


@pytest.mark.parametrize(
    "heading",
    ["## Usage", "## How to use", "## How to Get Started with the Model", "## Citation"],
)
def test_usage_and_citation_sections_are_no_model_card_field(heading: str) -> None:
    from mlsec.aibom.card import parse_card_text

    card = parse_card_text(f"# T\n\n{heading}\n\nSome text here.\n", "README.md")
    assert card.use_cases == () and card.limitations == () and card.description is None


def test_gguf_repository_card_description_is_under_its_heading() -> None:
    from mlsec.aibom.card import parse_card_text

    card = parse_card_text(
        "<!-- header start -->\n<div><img src='x.png'></div>\n<!-- header end -->\n"
        "# Llama 2 7B Chat - GGUF\n- Model creator: [Meta](https://huggingface.co/meta-llama)\n"
        "- Original model: [Llama 2 7B Chat](https://huggingface.co/meta-llama/Llama-2-7b-chat-hf)\n"
        "\n## Description\n\nThis repo contains GGUF format model files for "
        "[Meta Llama 2's Llama 2 7B Chat](https://huggingface.co/meta-llama/Llama-2-7b-chat-hf).\n",
        "README.md",
    )
    assert card.description == (
        "This repo contains GGUF format model files for Meta Llama 2's Llama 2 7B Chat."
    )


def test_a_card_opening_with_usage_has_no_description() -> None:
    from mlsec.aibom.card import parse_card_text

    card = parse_card_text(
        "## Usage (Sentence-Transformers)\n\nUsing this model becomes easy when you have it.\n",
        "README.md",
    )
    assert card.description is None
