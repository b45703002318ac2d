"""Identity and honesty of the BOM: purls, versions only from the model, signatures as
external references, contained card parsing, XML that carries any scanned text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import git
import pytest

from mlsec.facts import SignatureFact, SignatureFacts
from tests.aibom.helpers import AIBOM_FIXTURES, bom_of, components, props, scan_report

REVISION = "0123456789abcdef0123456789abcdef01234567"
CARD = "---\nlicense: mit\npipeline_tag: text-classification\n---\n\n# m\n\nA classifier.\n"


def _model_folder(folder: Path, card: str = CARD) -> None:
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(card)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    shutil.copy(AIBOM_FIXTURES / "hf-model" / "model.safetensors", folder / "model.safetensors")


def test_hub_cache_snapshot_gives_hub_id_revision_and_purl(tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--acme--tiny-bert" / "snapshots" / REVISION
    _model_folder(snapshot)
    every = components(bom_of(scan_report(tmp_path)))
    (model,) = [c for ref, c in every.items() if ref.startswith("model:")]
    assert model["name"] == "acme/tiny-bert"  # not the commit-named folder
    assert model["version"] == REVISION
    assert props(model)["mlsec:version-source"] == ["hub-revision"]
    assert model["purl"] == f"pkg:huggingface/acme/tiny-bert@{REVISION}"
    assert {"type": "website", "url": "https://huggingface.co/acme/tiny-bert"} in model[
        "externalReferences"
    ]


def test_local_dir_download_metadata_gives_the_revision(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "tiny"
    _model_folder(folder)
    meta = folder / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "model.safetensors.metadata").write_text(f"{REVISION}\n{'ab' * 32}\n1700000000.0\n")
    model = components(bom_of(scan_report(tmp_path)))["model:models/tiny"]
    assert model["version"] == REVISION
    assert "purl" not in model  # the revision alone does not say which hub repository


def _repo(root: Path) -> git.Repo:
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.com")
    repo.index.add(files)
    repo.index.commit("models")
    repo.create_tag("v2.0")
    repo.create_remote("origin", "https://github.com/acme/app.git")
    return repo


def test_repository_tag_versions_only_the_model_the_repository_is(tmp_path: Path) -> None:
    """A third-party model kept in a sub-folder is not versioned by the app's tag; the
    repository component is (with its purl and commit)."""
    root = tmp_path / "app"
    _model_folder(root / "models" / "vendor-bert")
    (root / "app.py").write_text("print('app')\n")
    repo = _repo(root)
    bom = bom_of(scan_report(root, use_git=True))
    model = components(bom)["model:models/vendor-bert"]
    assert "version" not in model
    assert "mlsec:version-source" not in props(model)
    meta = bom["metadata"]["component"]
    assert meta["version"] == "v2.0"
    assert meta["purl"] == f"pkg:github/acme/app@{repo.head.commit.hexsha}"
    assert meta["pedigree"]["commits"] == [{"uid": repo.head.commit.hexsha}]
    ncompleteness = props(model)["mlsec:completeness:ntia-minimum-elements:missing"]
    assert "version" in ncompleteness[0]


def test_root_model_of_its_own_repository_takes_the_tag(tmp_path: Path) -> None:
    root = tmp_path / "tiny-bert"
    _model_folder(root)
    _repo(root)
    model = components(bom_of(scan_report(root, use_git=True)))["model:."]
    assert model["version"] == "v2.0"
    assert props(model)["mlsec:version-source"] == ["git-tag"]


def test_signatures_are_external_references_with_the_signer(tmp_path: Path) -> None:
    _model_folder(tmp_path / "m")
    sigs = SignatureFacts(
        (
            SignatureFact(
                path="m",
                kind="model-signing",
                bundle="m/model.sig",
                verified=True,
                signer="https://github.com/acme/m/.github/workflows/release.yml@refs/tags/v1",
                issuer="https://token.actions.githubusercontent.com",
                files=("m/model.safetensors", "m/config.json", "m/README.md"),
            ),
            SignatureFact(
                path="m/model.safetensors",
                kind="sigstore-bundle",
                bundle="m/model.safetensors.sigstore.json",
                verified=False,
            ),
        )
    )
    report = scan_report(tmp_path, extra_facts={"signatures": sigs})
    model = components(bom_of(report))["model:m"]
    refs = [r for r in model["externalReferences"] if r["type"] != "model-card"]
    assert refs == [
        {
            "type": "attestation",
            "url": "m/model.sig",
            "comment": "model-signing signature over m, verified; signer: "
            "https://github.com/acme/m/.github/workflows/release.yml@refs/tags/v1 "
            "(issuer https://token.actions.githubusercontent.com)",
        },
        {
            "type": "digital-signature",
            "url": "m/model.safetensors.sigstore.json",
            "comment": "sigstore-bundle signature over m/model.safetensors, NOT verified; "
            "signer: unknown signer",
        },
    ]
    old = components(bom_of(report, spec_version="1.5"))["model:m"]
    assert {r["type"] for r in old["externalReferences"]} == {"attestation", "model-card"}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("README.md", b"---\nlicense: mit\ndate: 2024-13-45\n---\n# t\n\nText.\n"),  # bad date
        ("README.md", b"---\n" + b"a: &a [" + b"*a, " * 1000 + b"]\n---\n"),  # recursive alias
        ("README.md", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4000),  # binary
        ("README.md", b"# t\n\n" + b"word " * 400_000),  # over the size bound
        ("config.json", b"{" * 200_000),  # deep
        ("config.json", b'{"architectures": ' + b'["x", ' * 50_000 + b"]}"),
        ("tokenizer_config.json", b'{"chat_template": ' + b"[" * 100_000 + b"]}"),
    ],
)
def test_hostile_card_or_config_never_drops_the_bom(
    tmp_path: Path, name: str, content: bytes
) -> None:
    _model_folder(tmp_path / "m")
    (tmp_path / "m" / name).write_bytes(content)
    report = scan_report(tmp_path)
    assert not [e for e in report.errors if e.analyzer == "aibom" and "internal" in e.message]
    every = components(bom_of(report))
    assert "model:m" in every
    assert "file:m/model.safetensors" in every


def test_xml_carries_control_characters_escaped(tmp_path: Path) -> None:
    card = (
        "---\nlicense: mit\npipeline_tag: text-classification\n---\n\n# m\n\n"
        "A model \x01 with \x1b[31m controls \x0b.\n\n## Limitations\n\nSlow\x00.\n"
    )
    _model_folder(tmp_path / "m", card)
    report = scan_report(tmp_path)
    from mlsec.render.cyclonedx import render_bom

    xml = render_bom(report, fmt="xml")  # validated against the XSD inside
    # (\x0b is whitespace: folded like any in a paragraph)
    assert "<description>A model \\x01 with \\x1b[31m controls .</description>" in xml
    assert "<technicalLimitation>Slow\\x00.</technicalLimitation>" in xml
    assert "\x01" not in xml and "\x1b" not in xml and "\x00" not in xml
    data: dict[str, Any] = json.loads(render_bom(report))  # JSON keeps them, escaped
    assert components(data)["model:m"]["description"] == "A model \x01 with \x1b[31m controls ."


def test_onnx_without_weights_has_no_parameter_count(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "Y"], ["Z"])],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, [2])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "add.onnx"))
    model = components(bom_of(scan_report(tmp_path)))["model:add.onnx"]
    assert "mlsec:parameter-count" not in props(model)  # unknown, not 0


def test_a_root_config_json_alone_does_not_make_the_repository_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"port": 8080}))  # an app's settings
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print('app')\n")
    shutil.copy(AIBOM_FIXTURES / "tiny-llama.gguf", tmp_path / "src" / "model.gguf")
    every = components(bom_of(scan_report(tmp_path)))
    assert "model:." not in every
    model = every["model:src/model.gguf"]
    assert model.get("components", []) == [] or all(
        c["name"] != "src/app.py" for c in model["components"]
    )


def test_adapter_base_model_and_config_version(tmp_path: Path) -> None:
    folder = tmp_path / "lora"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "meta-llama/Llama-3.2-1B", "peft_type": "LORA"})
    )
    shutil.copy(
        AIBOM_FIXTURES / "hf-model" / "model.safetensors", folder / "adapter_model.safetensors"
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "model_version": "3.1"}))
    model = components(bom_of(scan_report(tmp_path)))["model:lora"]
    (base,) = model["pedigree"]["ancestors"]
    assert base["purl"] == "pkg:huggingface/meta-llama/Llama-3.2-1B"
    assert model["version"] == "3.1"
    assert props(model)["mlsec:version-source"] == ["config"]
