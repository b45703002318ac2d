"""The [signatures] policy: validation, empty policies, composition."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.errors import ConfigError
from tests.signatures.helpers import (
    KEYLESS_IDENTITY,
    KEYLESS_ISSUER,
    findings,
    write_config,
)


def _repo_with(tmp_path: Path, body: str) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_text("x")
    write_config(root, body)
    return root


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[signatures]\n", "no signers"),
        ('[signatures]\nrequired = ["m/**"]\n', "no signers"),
        ("[signatures]\nsigners = []\n", "no signers"),
        ("[signatures]\n[[signatures.signers]]\n", "empty signer"),
        ("[signatures]\n[[signatures.signers]]\nany-of = []\n", "any-of"),
        ("[signatures]\n[[signatures.signers]]\nall-of = []\n", "all-of"),
    ],
)
def test_empty_policy_is_an_error(tmp_path, scan_repo, body, message):
    root = _repo_with(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        scan_repo(root)
    assert str(root / ".mlsec.toml") in info.value.message
    assert "signers" in info.value.message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[signatures]\nrequire = []\n", "require"),
        ('[signatures]\n[[signatures.signers]]\nidentity = "a"\nissuer = "b"\nfoo = 1\n', "foo"),
        ('[signatures]\n[[signatures.signers]]\nidentity = "a"\n', "identity without issuer"),
        ("[signatures]\nrequired = [1]\n", "required"),
        ('[signatures]\nrequired = "m/**"\n', "required"),
        ("[signatures]\ntrusted-root = 3\n", "trusted-root"),
        ('[signatures]\n[[signatures.signers]]\npublic-key = "nope.pub"\n', "public-key"),
        ('[signatures]\n[[signatures.signers]]\npublic-key = "a.txt"\n', "not a PEM"),
        (
            '[signatures]\n[[signatures.signers]]\npublic-key = "a.txt"\nissuer = "x"\n',
            "mixes",
        ),
        ('[signatures]\n[[signatures.signers]]\ncertificate-chain = ["a.txt"]\n', "certificate"),
        ("[signatures]\nsigners = 3\n", "signers"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, scan_repo, body, key):
    root = _repo_with(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        scan_repo(root)
    assert str(root / ".mlsec.toml") in info.value.message
    assert key in info.value.message


def test_pyproject_section_is_named(tmp_path, scan_repo):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.mlsec.signatures]\nbogus = 1\n")
    with pytest.raises(ConfigError, match=r"\[tool\.mlsec\.signatures\] bogus"):
        scan_repo(root)


def test_relative_paths_resolve_from_the_config_folder(tmp_path, scan_repo, keypair):
    from mlsec.signatures.sign import sign_model

    root = tmp_path / "repo"
    (root / "m").mkdir(parents=True)
    (root / "m" / "w.bin").write_bytes(b"w")
    (root / "keys").mkdir()
    (root / "keys" / "model.pub").write_bytes(keypair.public.read_bytes())
    sign_model(root / "m", key=keypair.private)
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "model.pub").write_bytes(keypair.public.read_bytes())
    config = cfg_dir / "mlsec.toml"
    config.write_text('[signatures]\n[[signatures.signers]]\npublic-key = "model.pub"\n')
    assert findings(scan_repo(root, config_file=config)) == []


def _keyless_repo(tmp_path: Path, signers: str) -> Path:
    import shutil

    from tests.signatures.helpers import REAL

    root = tmp_path / "repo"
    shutil.copytree(REAL / "v1.0.0-sigstore", root / "m")
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    write_config(root, "[signatures]\n" + signers)
    return root


def test_any_of_and_all_of_compose(tmp_path, scan_repo, keypair):
    ident = f'identity = "{KEYLESS_IDENTITY}"\nissuer = "{KEYLESS_ISSUER}"\n'
    # any-of: the key does not match, the identity does
    root = _keyless_repo(
        tmp_path / "a",
        f'[[signatures.signers]]\npublic-key = "{keypair.public}"\n[[signatures.signers]]\n'
        + ident,
    )
    assert findings(scan_repo(root)) == []
    # all-of: identity and issuer as separate parts, both hold
    root = _keyless_repo(
        tmp_path / "b",
        "[[signatures.signers]]\nall-of = [\n"
        f'  {{ identity = "{KEYLESS_IDENTITY}", issuer = "{KEYLESS_ISSUER}" }},\n'
        f'  {{ issuer = "{KEYLESS_ISSUER}" }},\n]\n',
    )
    assert findings(scan_repo(root)) == []
    # all-of with a part that fails: not allowed
    root = _keyless_repo(
        tmp_path / "c",
        "[[signatures.signers]]\nall-of = [\n"
        f'  {{ identity = "{KEYLESS_IDENTITY}", issuer = "{KEYLESS_ISSUER}" }},\n'
        '  { github-repository = "org/repo" },\n]\n',
    )
    assert findings(scan_repo(root)) == [("MLS404", "high", "m/model.sig")]
    # nested any-of inside all-of
    root = _keyless_repo(
        tmp_path / "d",
        "[[signatures.signers]]\nall-of = [\n"
        f'  {{ any-of = [{{ public-key = "{keypair.public}" }}, {{ identity = "{KEYLESS_IDENTITY}"'
        f', issuer = "{KEYLESS_ISSUER}" }}] }},\n'
        f'  {{ issuer = "{KEYLESS_ISSUER}" }},\n]\n',
    )
    assert findings(scan_repo(root)) == []
    # ... but an alternative naming only a ref admits anyone: a configuration error
    root = _keyless_repo(
        tmp_path / "e",
        "[[signatures.signers]]\nall-of = [\n"
        f'  {{ any-of = [{{ github-ref = "refs/heads/main" }}, {{ identity = "{KEYLESS_IDENTITY}"'
        f', issuer = "{KEYLESS_ISSUER}" }}] }},\n'
        f'  {{ issuer = "{KEYLESS_ISSUER}" }},\n]\n',
    )
    with pytest.raises(ConfigError, match=r"signers\[0\]: this signer entry does not say who"):
        scan_repo(root)


def test_github_claims_imply_github_issuer():
    from mlsec.signatures.policy import GITHUB_ISSUER, KeylessSigner, parse_policy

    policy = parse_policy(
        {"signers": [{"github-repository": "org/repo", "github-ref": "refs/tags/v1"}]},
        config_file=None,
        base=Path("."),
        present=True,
    )
    assert policy.signers == KeylessSigner(
        issuer=GITHUB_ISSUER, github_repository="org/repo", github_ref="refs/tags/v1"
    )


def test_no_section_means_no_policy():
    from mlsec.signatures.policy import parse_policy

    assert parse_policy({}, config_file=None, base=Path("."), present=False).signers is None
