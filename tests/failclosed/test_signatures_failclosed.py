"""Signatures that should stop a file do: an unsigned file in a required-signed folder and
a symlink out of a signed folder are high (exit 1); a signer entry that names nobody is a
configuration error (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.failclosed.helpers import evil_pickle, findings_of
from tests.signatures.helpers import KeyPair, key_policy, make_key, write_config


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys")


def _signed(tmp_path: Path, keypair: KeyPair, extra: str = "") -> tuple[Path, Path]:
    from mlsec.signatures.sign import sign_model

    root = tmp_path / "repo"
    model = root / "models" / "bert"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"hidden": 8}')
    sign_model(model, key=keypair.private)
    write_config(root, key_policy(keypair.public, extra))
    (root / "other.pkl").write_bytes(evil_pickle())  # a finding of the same scan
    return root, model


def test_unsigned_file_in_required_folder_is_high(tmp_path: Path, keypair: KeyPair, cli) -> None:
    root, model = _signed(tmp_path, keypair, 'required = ["models/**"]\n')
    (model / "modeling_x.py").write_text("import os\n")
    proc = cli("scan", root, "--format", "json", "--no-git", "--fail-on", "high")
    assert proc.returncode == 1, proc.stderr
    found = findings_of(proc.stdout)
    assert ("MLS410", "high", "models/bert/modeling_x.py") in found
    assert ("MLS101", "critical", "other.pkl") in found
    assert not any(r == "MLS407" for r, _, _ in found)


def test_unsigned_file_outside_required_folders_stays_medium(
    tmp_path: Path, keypair: KeyPair, cli
) -> None:
    root, model = _signed(tmp_path, keypair)
    (model / "extra.txt").write_text("x")
    (root / "other.pkl").unlink()
    proc = cli("scan", root, "--format", "json", "--no-git")
    assert proc.returncode == 0, proc.stderr
    assert findings_of(proc.stdout) == {("MLS407", "medium", "models/bert/extra.txt")}


def test_symlink_out_of_signed_folder_is_high(tmp_path: Path, keypair: KeyPair, cli) -> None:
    root, model = _signed(tmp_path, keypair)
    outside = tmp_path / "elsewhere.py"
    outside.write_text("import os\n")
    (model / "modeling_x.py").symlink_to(outside)
    (root / "other.pkl").unlink()
    proc = cli("scan", root, "--format", "json", "--no-git")
    assert proc.returncode == 1, proc.stderr
    found = findings_of(proc.stdout)
    assert ("MLS411", "high", "models/bert/modeling_x.py") in found
    assert ("MLS902", "medium", "models/bert/modeling_x.py") in found


def test_in_tree_link_in_signed_folder_is_not_covered(
    tmp_path: Path, keypair: KeyPair, cli
) -> None:
    root, model = _signed(tmp_path, keypair, 'required = ["models/**"]\n')
    (model / "tokenizer.json").write_text("{}")
    (model / "alias.json").symlink_to("tokenizer.json")
    (root / "other.pkl").unlink()
    proc = cli("scan", root, "--format", "json", "--no-git")
    assert proc.returncode == 1, proc.stderr
    assert findings_of(proc.stdout) == {
        ("MLS410", "high", "models/bert/tokenizer.json"),
        ("MLS410", "high", "models/bert/alias.json"),
    }


@pytest.mark.parametrize(
    ("entry", "given"),
    [
        ('issuer = "https://token.actions.githubusercontent.com"', "issuer alone"),
        ('github-ref = "refs/heads/main"', "github-ref alone"),
        (
            'issuer = "https://accounts.google.com"\ngithub-ref = "refs/heads/main"',
            "github-ref alone",
        ),
    ],
)
def test_signer_that_names_nobody_is_exit_2(tmp_path: Path, cli, entry: str, given: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "other.pkl").write_bytes(evil_pickle())
    write_config(root, f"[signatures]\n[[signatures.signers]]\n{entry}\n")
    proc = cli("scan", root, "--format", "json", "--no-git")
    assert proc.returncode == 2, proc.stdout
    assert f"signers[0]: {given} does not say who may sign" in proc.stderr
    assert "identity" in proc.stderr and "github-repository" in proc.stderr


def test_repository_or_identity_is_enough(tmp_path: Path) -> None:
    from mlsec.signatures.policy import parse_policy

    for entry in (
        {"github-repository": "org/repo"},
        {"github-repository": "org/repo", "github-ref": "refs/heads/main"},
        {"identity": "a@example.com", "issuer": "https://accounts.google.com"},
        {"all-of": [{"github-repository": "org/repo"}, {"github-ref": "refs/heads/main"}]},
    ):
        policy = parse_policy({"signers": [entry]}, config_file=None, base=tmp_path, present=True)
        assert policy.signers is not None
