"""Hostile signatures, bundles, baselines and policies cost only their own file (a finding)
or are a clear configuration error (exit 2); the analyzer goes on with the others."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlsec import boundedjson
from tests.failclosed.helpers import evil_pickle, findings_of
from tests.signatures.helpers import (
    KeyPair,
    key_policy,
    make_key,
    model_statement,
    signed_statement_bundle,
    write_config,
)

DEEP = "[" * 200_000 + "]" * 200_000


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys")


def _two_signed_folders(tmp_path: Path, keypair: KeyPair) -> Path:
    from mlsec.signatures.sign import sign_model

    root = tmp_path / "repo"
    for name in ("good", "bad"):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"a": 1}')
        sign_model(folder, key=keypair.private)
    write_config(root, key_policy(keypair.public))
    (root / "other.pkl").write_bytes(evil_pickle())
    return root


@pytest.mark.parametrize(
    "content",
    [DEEP, '{"mediaType": ' * 50_000, "\x00" * 1000, '{"mediaType": 5}', "[]"],
    ids=["deep", "deep-object", "nul", "wrong-type", "array"],
)
def test_hostile_model_sig_costs_only_its_folder(
    tmp_path: Path, keypair: KeyPair, cli, content: str
) -> None:
    root = _two_signed_folders(tmp_path, keypair)
    (root / "bad" / "model.sig").write_text(content)
    proc = cli("scan", root, "--format", "json", "--no-git")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["errors"] == []
    found = findings_of(proc.stdout)
    assert ("MLS400", "high", "bad/model.sig") in found
    assert ("MLS101", "critical", "other.pkl") in found
    signatures = {s["path"]: s["verified"] for s in report["facts"]["signatures"]["signatures"]}
    assert signatures == {"good": True, "bad": False}


def test_deep_detached_bundle_is_malformed(tmp_path: Path, keypair: KeyPair, cli) -> None:
    root = _two_signed_folders(tmp_path, keypair)
    (root / "w.onnx").write_bytes(b"x")
    (root / "w.onnx.sigstore.json").write_text(DEEP)
    proc = cli("scan", root, "--format", "json", "--no-git")
    assert proc.returncode == 1, proc.stderr
    found = findings_of(proc.stdout)
    assert ("MLS400", "high", "w.onnx.sigstore.json") in found
    assert ("MLS101", "critical", "other.pkl") in found


@pytest.mark.parametrize(
    "name", ["a\x00b", "x" * 100_000, "../escape"], ids=["nul", "long", "traversal"]
)
def test_hostile_signed_names_are_rejected_not_crashed(
    tmp_path: Path, keypair: KeyPair, cli, name: str
) -> None:
    root = tmp_path / "repo"
    folder = root / "m"
    folder.mkdir(parents=True)
    (folder / "w.bin").write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    statement = model_statement(
        [
            {"name": "w.bin", "digest": digest, "algorithm": "sha256"},
            {"name": name, "digest": digest, "algorithm": "sha256"},
        ]
    )
    (folder / "model.sig").write_text(signed_statement_bundle(statement, keypair.key))
    write_config(root, key_policy(keypair.public))
    proc = cli("scan", root, "--format", "json", "--no-git")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    [rejected] = [f for f in report["findings"] if f["rule_id"] == "MLS408"]
    assert (rejected["severity"], rejected["path"]) == ("high", "m/model.sig")
    assert len(rejected["message"]) < 1000


@pytest.mark.parametrize("kind", ["dev-zero", "deep", "fifo"])
def test_hostile_baseline_is_a_clear_error(tmp_path: Path, cli, kind: str) -> None:
    import os

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "other.pkl").write_bytes(evil_pickle())
    baseline = tmp_path / "baseline.json"
    if kind == "dev-zero":
        baseline = Path("/dev/zero")
    elif kind == "deep":
        baseline.write_text('{"findings": ' + DEEP + "}")
    else:
        os.mkfifo(baseline)  # no writer: a blocking open would hang
    proc = cli("scan", tmp_path / "repo", "--baseline", baseline, "--format", "json", timeout=60)
    assert proc.returncode == 2, proc.stderr
    expected = "nested deeper" if kind == "deep" else "not a regular file"
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_baseline_over_the_size_cap(tmp_path: Path, monkeypatch) -> None:
    from mlsec import baseline as baseline_module
    from mlsec.errors import ConfigError

    baseline = tmp_path / "b.json"
    baseline.write_text(json.dumps({"findings": [{"fingerprint": "x" * 64}] * 100}))
    monkeypatch.setattr(baseline_module, "MAX_BASELINE_BYTES", 1000)
    with pytest.raises(ConfigError, match="larger than 1000 bytes"):
        baseline_module.load_baseline(baseline)


def test_baseline_with_wrong_types_is_read_not_crashed(tmp_path: Path, cli) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "other.pkl").write_bytes(evil_pickle())
    baseline = tmp_path / "b.json"
    baseline.write_text(json.dumps({"runs": [1, {"results": [2, {"partialFingerprints": 3}]}]}))
    proc = cli("scan", tmp_path / "repo", "--baseline", baseline, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    assert ("MLS101", "critical", "other.pkl") in findings_of(proc.stdout)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('public-key = "/dev/zero"', "not a regular file"),
        ('public-key = "a\\u0000b.pub"', "NUL or control character"),
        ('public-key = "' + "x" * 5000 + '"', "at most 4096"),
        ('identity = "a\\u0000b"\nissuer = "https://accounts.google.com"', "NUL or control"),
        ("public-key = 5", "expected a path"),
    ],
    ids=["dev-zero", "nul-path", "long-path", "nul-identity", "wrong-type"],
)
def test_hostile_policy_entries_are_config_errors(
    tmp_path: Path, cli, entry: str, message: str
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "other.pkl").write_bytes(evil_pickle())
    write_config(root, f"[signatures]\n[[signatures.signers]]\n{entry}\n")
    proc = cli("scan", root, "--format", "json", "--no-git", timeout=60)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_deeply_nested_policy_is_a_config_error(tmp_path: Path) -> None:
    from mlsec.errors import ConfigError
    from mlsec.signatures.policy import parse_policy

    signer: dict[str, object] = {"github-repository": "org/repo"}
    for _ in range(40):
        signer = {"any-of": [signer]}
    with pytest.raises(ConfigError, match="nested deeper than 16"):
        parse_policy({"signers": [signer]}, config_file=None, base=tmp_path, present=True)


def test_bounded_json_api(tmp_path: Path) -> None:
    assert boundedjson.loads('{"a": [1, 2]}') == {"a": [1, 2]}
    for bad, why in [
        (DEEP, "nested deeper"),
        ("[" * 70 + "]" * 70, "nested deeper than 64"),
        (b"\xff\xfe", "not"),
        ("1" * 5000, "not valid JSON"),
        ("{", "not valid JSON"),
    ]:
        with pytest.raises(boundedjson.JsonLimitError, match=why):
            boundedjson.loads(bad)
    with pytest.raises(boundedjson.JsonLimitError, match="larger than 10 bytes"):
        boundedjson.loads("[" + "1," * 10 + "1]", max_bytes=10)
    with pytest.raises(OSError, match="not a regular file"):
        boundedjson.read_file("/dev/zero")
    (tmp_path / "ok.json").write_text("[1]")
    assert boundedjson.read_file(tmp_path / "ok.json", max_depth=1) == [1]


def test_sign_with_a_device_as_key_is_a_clear_error(tmp_path: Path, cli) -> None:
    (tmp_path / "w.bin").write_bytes(b"w")
    proc = cli("sign", tmp_path, "--key", "/dev/zero", timeout=60)
    assert proc.returncode == 2
    assert "cannot read key /dev/zero: not a regular file" in proc.stderr
    assert not (tmp_path / "model.sig").exists()
