"""`--shard K/N` and `--jobs N` given hostile values, and shards of a tree made to split what
must stay together: signed folders (nested in each other, tampered), links, LFS pointers."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from tests.redteam13.conftest import benign_pickle, evil_pickle, finding_keys, load

_LFS = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 123456\n"


def _safetensors(path: Path, tail: bytes = b" ") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}     " + tail)


def build_tree(root: Path) -> Path:
    """Signed folders (flat; with nested subfolders; one signed inside another, both
    tampered under the inner one; one tampered), unsafe and benign pickles in 12 folders,
    LFS pointers, links (inside, out of the tree, dangling, to a signed folder)."""
    from mlsec.signatures.sign import sign_model
    from tests.signatures.helpers import key_policy, make_key, write_config

    repo = root / "repo"
    keys = make_key(root / "keys")
    models = repo / "models"
    for name in ("bert", "deep", "outer", "tampered"):
        _safetensors(models / name / "weights.safetensors")
        (models / name / "config.json").write_text('{"h": 8}')
    for i in range(4):
        _safetensors(models / "deep" / "a" / f"b{i}" / "c" / "w.safetensors")
        evil_pickle(models / "deep" / "a" / f"b{i}" / "p.pkl")
    _safetensors(models / "outer" / "inner" / "weights.safetensors")
    evil_pickle(models / "outer" / "inner" / "x.pkl")
    for name in ("bert", "deep", "tampered", "outer/inner", "outer"):
        sign_model(models / name, key=keys.private)
    (models / "tampered" / "config.json").write_text('{"h": 9}')
    (models / "tampered" / "extra.pkl").write_bytes(b"\x80\x04N.")
    _safetensors(models / "outer" / "inner" / "weights.safetensors", b"X")
    (models / "outer" / "inner" / "new.pkl").write_bytes(b"\x80\x04N.")
    (models / "outer" / "config.json").unlink()
    (models / "deep" / "a" / "b0" / "c" / "new.bin").write_bytes(b"\x80\x04N.")
    write_config(repo, key_policy(keys.public))
    for i in range(12):
        evil_pickle(repo / f"d{i}" / "w.pkl")
        benign_pickle(repo / f"d{i}" / "sub" / "ok.pkl")
    for i in range(3):
        (repo / f"lfs{i}").mkdir()
        (repo / f"lfs{i}" / "model.safetensors").write_text(_LFS)
        (repo / f"lfs{i}" / "pytorch_model.bin").write_text(_LFS)
    (repo / "links").mkdir()
    os.symlink("../d0/w.pkl", repo / "links" / "same.pkl")
    os.symlink("/etc/passwd", repo / "links" / "out.pkl")
    os.symlink("nowhere.pkl", repo / "links" / "dangling.pkl")
    os.symlink("../models/bert", repo / "links" / "bert-link")
    return repo


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import run_cli_in_process as cli

    root = tmp_path_factory.mktemp("tree")
    repo = build_tree(root)
    full = root / "full.json"
    proc = cli("scan", repo, "--no-git", "--no-cache", "--fail-on", "none", "-o", full)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "repo": repo, "full": full}


def _shards(cli: Any, tree: dict[str, Any], count: int, fmt: str) -> list[Path]:
    parts = []
    for k in range(1, count + 1):
        out = tree["root"] / f"s{k}of{count}.{fmt}"
        if not out.exists():
            proc = cli(
                "scan", tree["repo"], "--no-git", "--no-cache", "--fail-on", "none",
                "--shard", f"{k}/{count}", "-f", fmt, "-o", out,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        parts.append(out)
    return parts


def test_the_tree_has_what_the_shards_must_keep_together(tree: dict[str, Any]) -> None:
    """The full scan finds what each signed folder's check says, nested ones both."""
    rules = {(r, p) for r, _s, p, _m, _l, _f in finding_keys(load(tree["full"]))}
    for expected in [
        ("MLS405", "models/tampered/config.json"),
        ("MLS407", "models/tampered/extra.pkl"),
        ("MLS405", "models/outer/inner/weights.safetensors"),
        ("MLS407", "models/outer/inner/new.pkl"),
        ("MLS406", "models/outer/config.json"),
        ("MLS407", "models/deep/a/b0/c/new.bin"),
        ("MLS903", "lfs1/model.safetensors"),
        ("MLS905", "links/out.pkl"),
        ("MLS902", "links/dangling.pkl"),
        ("MLS101", "models/deep/a/b3/p.pkl"),
    ]:
        assert expected in rules, expected
    # One finding per signature that covers the file: the inner and the outer one.
    outer_inner = [
        f for f in load(tree["full"])["findings"]
        if f["path"] == "models/outer/inner/new.pkl" and f["rule_id"] == "MLS407"
    ]  # fmt: skip
    assert len(outer_inner) == 2


@pytest.mark.parametrize("count", [2, 4, 7])
def test_shards_merged_are_the_full_scan(tree: dict[str, Any], cli: Any, count: int) -> None:
    parts = _shards(cli, tree, count, "json")
    full = load(tree["full"])
    sizes = [load(p)["summary"]["files_scanned"] for p in parts]
    assert sum(sizes) == full["summary"]["files_scanned"]  # each file in one shard
    assert sum(1 for n in sizes if n) >= 2  # the work was shared
    proc = cli("merge", *parts)
    assert proc.returncode == 0, proc.stderr
    merged = json.loads(proc.stdout)
    assert finding_keys(merged) == finding_keys(full)
    for part in ("errors", "skipped"):
        assert sorted(map(str, merged[part])) == sorted(map(str, full[part])), part
    for key in ("files_scanned", "findings", "by_severity", "suppressed", "errors", "skipped"):
        assert merged["summary"][key] == full["summary"][key], key


def test_sarif_shards_merged_are_the_full_scan(tree: dict[str, Any], cli: Any) -> None:
    parts = _shards(cli, tree, 4, "sarif")
    full = tree["root"] / "full.sarif"
    proc = cli("scan", tree["repo"], "--no-git", "--no-cache", "--fail-on", "none", "-o", full)
    assert proc.returncode == 0, proc.stderr
    proc = cli("merge", *parts)
    assert proc.returncode == 0, proc.stderr

    def results(data: dict[str, Any]) -> list[tuple[str, str, str]]:
        [run] = data["runs"]
        return sorted(
            (
                r["ruleId"],
                r["partialFingerprints"]["mlsecFingerprint/v1"],
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            )
            for r in run["results"]
        )

    whole = results(load(full))
    assert len(whole) > 40 and results(json.loads(proc.stdout)) == whole


def test_a_signed_folder_is_in_one_shard_with_every_signed_folder_inside_it() -> None:
    from mlsec.selection import in_shard, shard_key

    signed = {"models/outer", "models/outer/inner", "models/outer/inner/deeper", "x"}
    paths = [
        "models/outer/a.bin", "models/outer/model.sig", "models/outer/inner/model.sig",
        "models/outer/inner/w.bin", "models/outer/inner/deeper/w.bin",
        "models/outer/sub/w.bin",
    ]  # fmt: skip
    assert {shard_key(p, signed) for p in paths} == {"models/outer"}
    for count in (2, 3, 4, 16, 97):
        homes = {
            k
            for p in paths
            for k in range(1, count + 1)
            if in_shard(shard_key(p, signed), (k, count))
        }
        assert len(homes) == 1, count


def _git(repo: Path, *args: str) -> None:
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)


def test_diff_in_a_signed_folder_inside_another_rechecks_the_outer_one(
    tmp_path: Path, cli: Any
) -> None:
    """--diff: a change under the inner signed folder is checked against the outer
    signature too (its MLS405), as in a full scan."""
    from mlsec.signatures.sign import sign_model
    from tests.signatures.helpers import key_policy, make_key, write_config

    repo = tmp_path / "repo"
    keys = make_key(tmp_path / "keys")
    _safetensors(repo / "outer" / "w.safetensors")
    _safetensors(repo / "outer" / "inner" / "w.safetensors")
    sign_model(repo / "outer" / "inner", key=keys.private)
    sign_model(repo / "outer", key=keys.private)
    write_config(repo, key_policy(keys.public))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "signed")
    _safetensors(repo / "outer" / "inner" / "w.safetensors", b"X")
    full = cli("scan", repo, "-f", "json", "--fail-on", "none")
    diff = cli("scan", repo, "-f", "json", "--fail-on", "none", "--diff", "HEAD")
    assert full.returncode == diff.returncode == 0, (full.stderr, diff.stderr)
    keys_full = finding_keys(json.loads(full.stdout))
    assert sum(1 for k in keys_full if k[0] == "MLS405") == 2  # the inner and the outer
    assert finding_keys(json.loads(diff.stdout)) == keys_full


# -- hostile values ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    ["0/4", "5/4", "1/0", "0/0", "-1/4", "1/-4", "a/b", "1/4/2", "", "/", "1/", "/4", "14",
     "1.0/4", "9" * 5000 + "/1", "1/" + "9" * 5000, "1/4\x00"],
)  # fmt: skip
def test_a_bad_shard_is_exit_2(tmp_path: Path, cli: Any, value: str) -> None:
    evil_pickle(tmp_path / "w.pkl")
    proc = cli("scan", tmp_path, "--no-git", f"--shard={value}")
    assert proc.returncode == 2, (value, proc.stderr)
    assert "--shard" in proc.stderr and "expected K/N" in proc.stderr
    assert "internal error" not in proc.stderr


def test_a_bad_shard_from_the_environment_is_exit_2(tmp_path: Path, cli: Any) -> None:
    proc = cli("scan", tmp_path, "--no-git", env={"MLSEC_SHARD": "0/4"})
    assert proc.returncode == 2 and "expected K/N" in proc.stderr


def test_a_shard_count_beyond_the_files_leaves_shards_empty_not_wrong(
    tmp_path: Path, cli: Any
) -> None:
    for i in range(3):
        evil_pickle(tmp_path / f"d{i}" / "w.pkl")
    count = 10**9 - 1  # the most a shard count may be: nine digits
    seen = 0
    for k in (1, 2, count):
        proc = cli("scan", tmp_path, "--no-git", "-f", "json", "--shard", f"{k}/{count}")
        assert proc.returncode in (0, 1), proc.stderr
        seen += json.loads(proc.stdout)["summary"]["files_scanned"]
    assert seen <= 3


@pytest.mark.parametrize("value", ["1_0/20", "\uff11/\uff14", "+1/+4", " 1/4", "1/4 ", "1\n/4"])
def test_a_shard_is_plain_digits(tmp_path: Path, cli: Any, value: str) -> None:
    proc = cli("scan", tmp_path, "--no-git", f"--shard={value}")
    assert proc.returncode == 2, proc.stderr


@pytest.mark.parametrize("value", ["0", "-1", "-99999999999", "abc", "1.5", ""])
def test_a_bad_jobs_value_is_exit_2(tmp_path: Path, cli: Any, value: str) -> None:
    proc = cli("scan", tmp_path, "--no-git", f"--jobs={value}")
    assert proc.returncode == 2, (value, proc.stderr)
    assert "--jobs" in proc.stderr and "internal error" not in proc.stderr


def test_huge_jobs_are_capped_at_the_machine(tmp_path: Path, forked: list[int]) -> None:
    from mlsec.config import ScanOptions
    from mlsec.pool import machine_jobs
    from mlsec.scan import scan

    for i in range(130):
        (tmp_path / f"m{i}.pkl").write_bytes(pickle.dumps({"w": i}))
    report = scan(ScanOptions(path=tmp_path, jobs=10**6, use_cache=False))
    assert report.files_scanned == 130
    assert len(forked) <= machine_jobs()


def test_shards_of_many_manifests_merged_are_the_full_scan(tmp_path: Path, cli: Any) -> None:
    """The dependency audit is one for the repository: a pin vulnerable in ten manifests is
    one finding (at the first), a first-party name and -r/-c includes cross folders. Split
    over shards by folder, the merge had a finding per shard instead."""
    from tests.conftest import FIXTURES

    repo = tmp_path / "repo"
    for i in range(10):
        folder = repo / f"svc{i}"
        folder.mkdir(parents=True)
        (folder / "requirements.txt").write_text(
            f"-r ../common/requirements-base.txt\n-c ../constraints/c{i % 2}.txt\n"
            "gradio==3.10.0\nmypkg\n"
        )
        evil_pickle(folder / "model.pkl")
    (repo / "common").mkdir()
    (repo / "common" / "requirements-base.txt").write_text("mlflow==2.9.0\ntorch>=1.0\n")
    (repo / "constraints").mkdir()
    for i in range(2):
        (repo / "constraints" / f"c{i}.txt").write_text("torch==1.13.0\n")
    (repo / "mypkg").mkdir()
    (repo / "mypkg" / "pyproject.toml").write_text(
        '[project]\nname = "mypkg"\nversion = "1"\ndependencies = ["langchain==0.0.150"]\n'
    )
    flags = ("--no-git", "--no-cache", "--offline", "--vuln-db", FIXTURES / "osv-mini",
             "--fail-on", "none")  # fmt: skip
    full = tmp_path / "full.json"
    assert cli("scan", repo, *flags, "-o", full).returncode == 0
    parts = []
    for k in (1, 2, 3, 4):
        out = tmp_path / f"s{k}.json"
        proc = cli("scan", repo, *flags, "--shard", f"{k}/4", "-o", out)
        assert proc.returncode == 0, proc.stderr
        parts.append(out)
    assert sum(1 for p in parts if load(p)["summary"]["files_scanned"]) >= 2
    proc = cli("merge", *parts)
    assert proc.returncode == 0, proc.stderr
    whole = finding_keys(load(full))
    rules = [k[0] for k in whole]
    assert rules.count("MLS201") >= 2 and "MLS101" in rules
    assert finding_keys(json.loads(proc.stdout)) == whole


def test_shards_of_signed_folders_holding_manifests_merged_are_the_full_scan(
    tmp_path: Path, cli: Any
) -> None:
    """A signed folder with a requirements file goes whole with the other manifests: the
    pin vulnerable in all six folders is still one finding."""
    from mlsec.signatures.sign import sign_model
    from tests.conftest import FIXTURES
    from tests.signatures.helpers import key_policy, make_key, write_config

    repo = tmp_path / "repo"
    keys = make_key(tmp_path / "keys")
    for i in range(6):
        folder = repo / f"m{i}"
        folder.mkdir(parents=True)
        (folder / "requirements.txt").write_text("gradio==3.10.0\n")
        _safetensors(folder / "w.safetensors")
        evil_pickle(folder / "sub" / "p.pkl")
        if i < 3:
            sign_model(folder, key=keys.private)
    write_config(repo, key_policy(keys.public))
    flags = ("--no-git", "--no-cache", "--offline", "--vuln-db", FIXTURES / "osv-mini",
             "--fail-on", "none")  # fmt: skip
    full = tmp_path / "full.json"
    assert cli("scan", repo, *flags, "-o", full).returncode == 0
    parts = [tmp_path / f"s{k}.json" for k in (1, 2, 3, 4)]
    for k, out in enumerate(parts, 1):
        proc = cli("scan", repo, *flags, "--shard", f"{k}/4", "-o", out)
        assert proc.returncode == 0, proc.stderr
    proc = cli("merge", *parts)
    assert proc.returncode == 0, proc.stderr
    whole = finding_keys(load(full))
    assert [k[0] for k in whole].count("MLS201") == 1
    assert finding_keys(json.loads(proc.stdout)) == whole
