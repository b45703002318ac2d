"""A model repository with requirements and git history, made with gitpython."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import git
import pytest

from tests.aibom.helpers import AIBOM_FIXTURES, bom_of, components, props, scan_report
from tests.conftest import FIXTURES

CARD = """\
---
license: mit
pipeline_tag: text-classification
datasets:
- acme/reviews
---

# sentiment-model

Classifies reviews.
"""
LFS_CARD = """\
---
license: apache-2.0
base_model: acme/sentiment-model
---
"""
TRAIN = """\
from datasets import load_dataset

train = load_dataset("acme/train-data", split="train")
local = load_dataset("json", data_files="extra.jsonl")
"""
SECRET = "s3cretT0ken"
OSV = str((FIXTURES / "osv-mini").resolve())
REMOTE = f"https://user:{SECRET}@huggingface.co/acme/sentiment-model"


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    root = tmp_path / "sentiment-model"
    root.mkdir()
    (root / "README.md").write_text(CARD)
    (root / "config.json").write_text(
        json.dumps({"model_type": "distilbert", "architectures": ["DistilBertModel"]})
    )
    (root / "model.safetensors").write_bytes(
        (AIBOM_FIXTURES / "hf-model" / "model.safetensors").read_bytes()
    )
    (root / "requirements.txt").write_text("torch==1.13.0\nnumpy==1.26.4\n")
    (root / "train.py").write_text(TRAIN)
    (root / "lfs-model").mkdir()
    (root / "lfs-model" / "README.md").write_text(LFS_CARD)
    (root / "lfs-model" / "model.safetensors").write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{'ab' * 32}\nsize 123456789\n"
    )
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.com")
    repo.index.add(
        [
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if ".git" not in p.parts and p.is_file()
        ]
    )
    repo.index.commit("first model")
    repo.create_tag("v1.0")
    repo.create_remote("origin", REMOTE)
    return repo


def _scan(repo: git.Repo, **flags: object) -> object:
    return scan_report(
        Path(repo.working_tree_dir or "."),
        use_git=True,
        offline=True,
        vuln_db=(FIXTURES / "osv-mini").resolve(),
        **flags,
    )


def test_git_provenance_on_the_repository_component(repo: git.Repo) -> None:
    from mlsec.render.cyclonedx import render_bom

    text = render_bom(_scan(repo))
    assert SECRET not in text and "user:" not in text  # credentials never reach the BOM
    bom = json.loads(text)
    meta = bom["metadata"]["component"]
    assert meta["name"] == "sentiment-model"
    assert meta["version"] == "v1.0"
    commit = repo.head.commit.hexsha
    assert meta["purl"] == f"pkg:huggingface/acme/sentiment-model@{commit}"
    assert meta["pedigree"] == {"commits": [{"uid": commit}]}
    assert meta["externalReferences"] == [
        {
            "type": "vcs",
            "url": "https://huggingface.co/acme/sentiment-model",
            "comment": f"commit {repo.head.commit.hexsha}",
        }
    ]
    p = props(meta)
    assert p["mlsec:git:commit"] == [repo.head.commit.hexsha]
    assert p["mlsec:git:branch"] == ["main"]
    assert p["mlsec:git:tag"] == ["v1.0"]
    assert p["mlsec:git:dirty"] == ["false"]
    assert p["mlsec:git:remote"] == ["https://huggingface.co/acme/sentiment-model"]


def test_root_model_from_card_git_and_code(repo: git.Repo) -> None:
    report = _scan(repo)
    every = components(bom_of(report))
    model = every["model:."]
    assert model["name"] == "sentiment-model"  # the repository's name (no model_name)
    assert model["version"] == "v1.0"
    assert props(model)["mlsec:version-source"] == ["git-tag"]
    assert model["supplier"] == {"name": "acme"}
    assert {"type": "website", "url": "https://huggingface.co/acme/sentiment-model"} in model[
        "externalReferences"
    ]
    assert props(model)["mlsec:git:last-commit"] == [repo.head.commit.hexsha]
    assert props(model)["mlsec:git:committed"] == ["true"]
    nested = {c["name"] for c in model["components"]}
    # Every file a signature of the folder covers, its code too (train.py), but not the
    # repository's manifests; the LFS model is a model of its own.
    assert nested == {"README.md", "config.json", "model.safetensors", "train.py"}
    roles = {c["name"]: props(c)["mlsec:role"] for c in model["components"]}
    assert roles["train.py"] == ["code"]
    # A hub clone: the model's purl is its hub id at the checked-out commit.
    assert model["purl"] == f"pkg:huggingface/acme/sentiment-model@{repo.head.commit.hexsha}"
    refs = [d["ref"] for d in model["modelCard"]["modelParameters"]["datasets"]]
    assert refs == ["dataset:acme/reviews", "dataset:acme/train-data"]
    code = every["dataset:acme/train-data"]
    assert props(code)["mlsec:dataset:source"] == ["train.py:3"]
    assert "dataset:json" not in every  # a file loader, not a dataset
    root_findings = {f.rule_id for f in report.findings if f.path == "."}
    assert not root_findings & {"MLS301", "MLS302", "MLS303", "MLS304", "MLS308"}


def test_lfs_pointer_gives_the_weights_hash(repo: git.Repo) -> None:
    report = _scan(repo)
    every = components(bom_of(report))
    lfs = every["model:lfs-model"]
    weights = every["file:lfs-model/model.safetensors"]
    assert weights["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    p = props(weights)
    assert p["mlsec:file:hash-source"] == ["git-lfs-pointer"]
    assert p["mlsec:file:size"] == ["123456789"]
    assert lfs["pedigree"]["ancestors"][0]["name"] == "acme/sentiment-model"
    assert not any(f.rule_id == "MLS304" for f in report.findings)


def test_dependencies_graph_and_vulnerabilities(repo: git.Repo) -> None:
    bom = bom_of(_scan(repo))
    every = components(bom)
    torch = every["pkg:pypi/torch@1.13.0"]
    assert torch["type"] == "library" and torch["purl"] == "pkg:pypi/torch@1.13.0"
    assert props(torch)["mlsec:dependency:source"] == ["requirements.txt"]
    assert every["pkg:pypi/numpy@1.26.4"]["version"] == "1.26.4"
    graph = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert {"pkg:pypi/torch@1.13.0", "pkg:pypi/numpy@1.26.4", "model:."} <= set(graph["repository"])
    torch_vulns = [
        v
        for v in bom["vulnerabilities"]
        if any(a["ref"] == "pkg:pypi/torch@1.13.0" for a in v["affects"])
    ]
    assert torch_vulns, "osv-mini has advisories for torch 1.13.0"
    assert all(v["id"] and v["source"]["url"] for v in torch_vulns)


def test_uncommitted_model_is_reported_and_dirty(repo: git.Repo) -> None:
    root = Path(repo.working_tree_dir or ".")
    (root / "config.json").write_text("{}")
    report = _scan(repo)
    bom = bom_of(report)
    assert props(bom["metadata"]["component"])["mlsec:git:dirty"] == ["true"]
    found = [
        (f.rule_id, f.path, f.severity.value) for f in report.findings if f.rule_id == "MLS308"
    ]
    assert found == [("MLS308", ".", "low")]
    assert props(components(bom)["model:."])["mlsec:git:committed"] == ["false"]


def test_reproducible_bom_is_byte_identical(repo: git.Repo, cli, tmp_path: Path) -> None:
    root = repo.working_tree_dir
    env = {"SOURCE_DATE_EPOCH": "1700000000", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = cli("bom", root, "-o", tmp_path / "a.json", "--offline", "--vuln-db", OSV, env=env)
    second = cli("bom", root, "-o", tmp_path / "b.json", "--offline", "--vuln-db", OSV, env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a, b = (tmp_path / "a.json").read_bytes(), (tmp_path / "b.json").read_bytes()
    assert a == b
    bom = json.loads(a)
    assert bom["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert bom["serialNumber"].startswith("urn:uuid:")


def test_reproducible_without_source_date_epoch_uses_the_commit_time(repo: git.Repo) -> None:
    from datetime import datetime, timezone

    one, two = (bom_of(_scan(repo, reproducible=True)) for _ in range(2))
    assert one == two
    stamp = datetime.fromisoformat(one["metadata"]["timestamp"])
    assert stamp == datetime.fromtimestamp(repo.head.commit.committed_date, tz=timezone.utc)


def test_default_runs_get_fresh_serial_numbers(repo: git.Repo) -> None:
    one, two = (bom_of(_scan(repo)) for _ in range(2))
    assert one["serialNumber"] != two["serialNumber"]
    assert one["serialNumber"].startswith("urn:uuid:")


def test_hash_cache_is_used_on_the_second_run(
    repo: git.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec import hashing

    _scan(repo)
    from mlsec.config import default_cache_dir

    cache_file = default_cache_dir() / "hashes.json"
    entries = json.loads(cache_file.read_text())["entries"]
    weights = str(Path(repo.working_tree_dir or ".").resolve() / "model.safetensors")
    assert entries[weights][1] == hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    hashing._MEMO.clear()

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(hashing, "sha256_file", no_hashing)
    _scan(repo)  # every file comes from the cache


def test_git_provenance_costs_a_constant_number_of_git_calls(tmp_path: Path) -> None:
    """Provenance for 1 or 40 model files runs the same git calls; a touched file (same
    content, new mtime) is not a change, an edited one is, and so is a staged one."""
    import os

    from mlsec.aibom.gitinfo import GitRepo

    def make(count: int) -> tuple[git.Repo, Path]:
        root = tmp_path / f"r{count}"
        (root / "models").mkdir(parents=True)
        for index in range(count):
            (root / "models" / f"m{index}.pt").write_bytes(b"weights %d" % index)
        repo = git.Repo.init(root, initial_branch="main")
        with repo.config_writer() as config:
            config.set_value("user", "name", "Test")
            config.set_value("user", "email", "test@example.com")
        repo.index.add([f"models/m{i}.pt" for i in range(count)])
        repo.index.commit("models")
        return repo, root

    calls = []
    for count in (1, 40):
        repo, root = make(count)
        files = {f"models/m{i}.pt": [f"models/m{i}.pt"] for i in range(count)}
        touched = root / "models" / "m0.pt"
        os.utime(touched, (1_000_000_000, 1_000_000_000))  # stat-dirty, content unchanged
        if count > 1:
            (root / "models" / "m1.pt").write_bytes(b"edited")
        git_repo = GitRepo(root)
        states = git_repo.model_states(files)
        provenance = git_repo.provenance()
        calls.append(git_repo.calls)
        head = repo.head.commit.hexsha
        assert states["models/m0.pt"] == (head, True)
        if count > 1:
            assert states["models/m1.pt"] == (head, False)
            assert states["models/m39.pt"] == (head, True)
            assert provenance is not None and provenance.dirty
    # rev-parse, show, tag, config; ls-files, diff-files, hash-object, diff-index, ls-files
    # --others; one log. (Before, gitpython found the repository with three git processes
    # of its own that this count did not see.)
    assert calls[0] == calls[1] <= 10


def test_provenance_from_plumbing_branch_detached_remotes_and_no_commit(tmp_path: Path) -> None:
    import os
    import subprocess

    from mlsec.aibom.gitinfo import GitRepo

    def run(*args: str) -> str:
        env = {"GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000"}
        done = subprocess.run(
            ["git", "-C", str(root), "-c", "user.name=T", "-c", "user.email=t@e", *args],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **env},
        )
        return done.stdout.strip()

    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    run("init", "-q", "-b", "main")
    assert not GitRepo(root).available  # no commit yet: no provenance
    assert GitRepo(root).provenance() is None
    (root / "sub" / "w.bin").write_bytes(b"w")
    run("add", "sub/w.bin")
    run("commit", "-q", "-m", "w")
    run("remote", "add", "zeta", "https://z.example/x.git")
    run("remote", "add", "my.fork", "https://user:token@example.com/fork.git")
    head = run("rev-parse", "HEAD")

    git_repo = GitRepo(root / "sub")  # found from a folder inside the work tree
    provenance = git_repo.provenance()
    assert provenance is not None
    assert (provenance.commit, provenance.branch) == (head, "main")
    assert provenance.commit_time == 1700000000
    assert provenance.remote_url == "https://example.com/fork.git"  # first by name, no token
    assert not provenance.dirty
    run("remote", "add", "origin", "git@github.com:org/model.git")
    run("tag", "-a", "v1", "-m", "v1")
    run("checkout", "-q", "--detach")
    provenance = GitRepo(root).provenance()
    assert provenance is not None
    assert provenance.remote_url == "github.com:org/model.git"  # origin first
    assert (provenance.branch, provenance.tag) == (None, "v1")  # detached, annotated tag
    assert not GitRepo(tmp_path).available  # not a repository
