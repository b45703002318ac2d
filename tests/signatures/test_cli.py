"""The CLI: `mlsec sign`, scans with signatures, the demo repository."""

from __future__ import annotations

import json

from tests.signatures.helpers import REPO, key_policy, write_config


def test_sign_then_scan_via_cli(tmp_path, cli, keypair):
    model = tmp_path / "repo" / "model"
    model.mkdir(parents=True)
    (model / "w.bin").write_bytes(b"weights")
    result = cli("sign", model, "--key", keypair.private)
    assert result.returncode == 0, result.stderr
    assert "signed 1 file(s) of model" in result.stdout
    assert (model / "model.sig").is_file()
    write_config(tmp_path / "repo", key_policy(keypair.public))
    scan = cli("scan", tmp_path / "repo", "--format", "json", "--no-git")
    assert scan.returncode == 0, scan.stderr
    data = json.loads(scan.stdout)
    assert data["findings"] == []
    (sig,) = data["facts"]["signatures"]["signatures"]
    assert sig["verified"] is True and sig["files"] == ["model/w.bin"]

    (model / "w.bin").write_bytes(b"tampered")
    scan = cli("scan", tmp_path / "repo", "--format", "sarif", "--no-git")
    assert scan.returncode == 1
    sarif = json.loads(scan.stdout)
    results = sarif["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["MLS405"]


def test_sign_password_protected_key(tmp_path, cli, keypair):
    from cryptography.hazmat.primitives import serialization

    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        keypair.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    bad = cli("sign", model, "--key", encrypted)
    assert bad.returncode == 2 and "password" in bad.stderr
    good = cli("sign", model, "--key", encrypted, "--password-env", "PW", env={"PW": "s3cret"})
    assert good.returncode == 0, good.stderr


def test_keyless_offline_is_a_clear_error(tmp_path, cli):
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    result = cli("sign", model, "--keyless", "--offline")
    assert result.returncode == 2
    assert "keyless signing needs the network" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (model / "model.sig").exists()


def test_sign_errors_exit_2(tmp_path, cli, keypair):
    assert cli("sign", tmp_path / "absent", "--key", keypair.private).returncode == 2
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    neither = cli("sign", model)
    assert neither.returncode == 2 and "--key" in neither.stderr
    (model / "link").symlink_to(model / "w.bin")
    link = cli("sign", model, "--key", keypair.private)
    assert link.returncode == 2 and "symlink" in link.stderr


def test_empty_policy_exits_2(tmp_path, cli):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / ".mlsec.toml").write_text("[signatures]\nrequired = ['**']\n")
    result = cli("scan", tmp_path, "--no-git")
    assert result.returncode == 2
    assert "no signers" in result.stderr and ".mlsec.toml" in result.stderr


def test_demo_repository_shows_modified_signed_file(cli):
    demo = REPO / "fixtures" / "demo-repo"
    result = cli("scan", demo, "--format", "json")
    data = json.loads(result.stdout)
    ours = [
        (f["rule_id"], f["severity"], f["path"])
        for f in data["findings"]
        if f["rule_id"].startswith("MLS4")
    ]
    # report paths are relative to the repository root (the fixtures are in this one)
    assert ours == [("MLS405", "high", "fixtures/demo-repo/signed-model/config.json")]
    (sig,) = [s for s in data["facts"]["signatures"]["signatures"] if s["path"] == "signed-model"]
    assert sig["verified"] is False
    assert sig["files"] == ["signed-model/model.safetensors"]
    assert result.returncode == 1


def test_demo_generator_is_deterministic(tmp_path):
    """The committed signature is what the generator writes (RFC 6979 signatures)."""
    import runpy
    import shutil

    fixtures = tmp_path / "fixtures"
    shutil.copytree(REPO / "fixtures" / "demo-repo", fixtures / "demo-repo")
    shutil.copy(REPO / "fixtures" / "generate_signatures.py", fixtures)
    runpy.run_path(str(fixtures / "generate_signatures.py"), run_name="__main__")
    for name in ("model.sig", "config.json", "model.safetensors"):
        committed = REPO / "fixtures" / "demo-repo" / "signed-model" / name
        assert (fixtures / "demo-repo" / "signed-model" / name).read_bytes() == (
            committed.read_bytes()
        ), name
    assert (fixtures / "signatures" / "demo-signing-key.pem").read_bytes() == (
        REPO / "fixtures" / "signatures" / "demo-signing-key.pem"
    ).read_bytes()


def test_rules_are_listed(cli):
    result = cli("rules", "--format", "json")
    ids = {r["id"] for r in json.loads(result.stdout)}
    assert {f"MLS40{i}" for i in range(10)} <= ids


def test_trusted_root_flag(tmp_path, cli):
    import shutil
    from importlib import resources

    from tests.signatures.helpers import KEYLESS_IDENTITY, KEYLESS_ISSUER, REAL

    root = tmp_path / "repo"
    shutil.copytree(REAL / "v1.1.0-sigstore", root / "m")
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    write_config(
        root,
        f'[signatures]\n[[signatures.signers]]\nidentity = "{KEYLESS_IDENTITY}"\n'
        f'issuer = "{KEYLESS_ISSUER}"\n',
    )
    ok = cli("scan", root, "--format", "json", "--no-git")
    assert ok.returncode == 0 and json.loads(ok.stdout)["findings"] == []
    staging = tmp_path / "staging.json"
    staging.write_bytes(
        (
            resources.files("sigstore")
            / "_store"
            / "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev"
            / "trusted_root.json"
        ).read_bytes()
    )
    result = cli("scan", root, "--format", "json", "--no-git", "--trusted-root", staging)
    data = json.loads(result.stdout)
    assert [(f["rule_id"], f["path"]) for f in data["findings"]] == [("MLS402", "m/model.sig")]
    assert data["facts"]["signatures"]["trusted_root"].startswith(f"file {staging} sha256:")
    assert result.returncode == 0  # medium: below the default fail-on
    missing = cli("scan", root, "--no-git", "--trusted-root", tmp_path / "absent.json")
    assert missing.returncode == 2 and "cannot read trusted root" in missing.stderr
