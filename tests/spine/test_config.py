"""Configuration files: precedence, validation, clear errors naming file and key."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mlsec.config import Limits, build_options, parse_size
from mlsec.errors import ConfigError
from mlsec.findings import Severity
from mlsec.scan import scan


def test_mlsec_toml_is_read(tmp_path: Path) -> None:
    (tmp_path / ".mlsec.toml").write_text(
        'fail-on = "medium"\nexclude = ["data/**"]\nignore = ["MLS903"]\n'
        '[severity]\nMLS902 = "low"\n[limits]\nmax-file-size = "1MiB"\nmax-archive-depth = 3\n'
    )
    options = build_options(tmp_path)
    assert options.fail_on is Severity.MEDIUM
    # The tree's own file: what it removes is kept as suppressed, not filtered out.
    assert (options.exclude, options.ignore, options.severity_overrides) == ((), (), {})
    tuning = options.repo_tuning
    assert tuning is not None
    assert tuning.exclude == ("data/**",)
    assert tuning.ignore == ("MLS903",)
    assert tuning.severity == {"MLS902": Severity.LOW}
    assert tuning.said["ignore"] == ".mlsec.toml: ignore = ['MLS903']"
    assert options.limits.max_file_size == 1024**2
    assert options.limits.max_archive_depth == 3
    assert options.config_file == (tmp_path / ".mlsec.toml").resolve()


def test_pyproject_tool_section_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="x"\n[tool.mlsec]\nfail-on = "none"\n'
    )
    assert build_options(tmp_path).fail_on is None


def test_dedicated_file_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mlsec]\nfail-on = "low"\n')
    (tmp_path / ".mlsec.toml").write_text('fail-on = "critical"\n')
    assert build_options(tmp_path).fail_on is Severity.CRITICAL


def test_flags_override_file(tmp_path: Path) -> None:
    (tmp_path / ".mlsec.toml").write_text('offline = false\nselect = ["MLS1"]\n')
    options = build_options(tmp_path, offline=True, select=("MLS9",))
    assert options.offline is True
    assert options.select == ("MLS9",)
    assert options.repo_tuning is not None and options.repo_tuning.select == ()


def test_config_outside_the_tree_is_the_operators(tmp_path: Path) -> None:
    repo, elsewhere = tmp_path / "repo", tmp_path / "ops"
    repo.mkdir()
    elsewhere.mkdir()
    (elsewhere / "mlsec.toml").write_text('ignore = ["MLS903"]\n[severity]\nMLS902 = "low"\n')
    options = build_options(repo, config_file=elsewhere / "mlsec.toml")
    assert options.ignore == ("MLS903",)
    assert options.severity_overrides == {"MLS902": Severity.LOW}
    assert options.repo_tuning is None


def test_relative_paths_resolve_from_config_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "mlsec.toml"
    config.write_text('vuln-db = "db"\n')
    options = build_options(tmp_path, config_file=config)
    assert options.vuln_db == (tmp_path / "conf" / "db").resolve()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('fail-on = "sometimes"', "fail-on: unknown severity 'sometimes'"),
        ('colour = "red"', "colour: unknown key"),
        ('select = ["FOO1"]', "select: 'FOO1' is not a rule id"),
        ("[severity]\nMLS101 = 3", "severity.MLS101: unknown severity"),
        ('[limits]\nmax-file-size = "lots"', "limits.max-file-size: expected a size"),
        ("[limits]\nmax-depth = 3", "limits.max-depth: unknown limit"),
        ("offline = 1", "offline: expected true or false"),
        ("fail-on = ", "invalid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "mlsec.toml").write_text(text + "\n")
    with pytest.raises(ConfigError) as excinfo:
        build_options(tmp_path, config_file=tmp_path / "mlsec.toml")
    assert needle in excinfo.value.message
    assert "mlsec.toml" in excinfo.value.message
    # The same file inside the tree: reported, and the scan goes on with the defaults.
    (tmp_path / ".mlsec.toml").write_text(text + "\n")
    [problem] = build_options(tmp_path).config_problems
    assert needle in problem and ".mlsec.toml" in problem


def test_bad_config_exits_2_via_cli(tmp_path: Path, cli) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mlsec]\nfial-on = "high"\n')
    proc = cli("scan", tmp_path)
    assert proc.returncode == 2
    assert "pyproject.toml: [tool.mlsec] fial-on: unknown key" in proc.stderr
    assert "known keys:" in proc.stderr


def test_broken_pyproject_does_not_block_scan(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    options = build_options(tmp_path)
    assert (options.config_file, options.config_problems) == (None, ())


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo never-run",))


def test_severity_override_changes_gate(tmp_path: Path) -> None:
    repo, ops = tmp_path / "repo", tmp_path / "ops.toml"
    repo.mkdir()
    (repo / "m.pkl").write_bytes(pickle.dumps(_Evil()))
    ops.write_text('[severity]\nMLS101 = "low"\n')
    report = scan(build_options(repo, config_file=ops))
    assert [
        (f.rule_id, f.severity, f.suppressed) for f in report.findings if f.rule_id == "MLS101"
    ] == [("MLS101", Severity.LOW, False)]
    assert report.exit_code == 0


def test_in_tree_downgrade_is_a_visible_suppression(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(_Evil()))
    (tmp_path / ".mlsec.toml").write_text('[severity]\nMLS101 = "low"\n')
    report = scan(build_options(tmp_path))
    [finding] = [f for f in report.findings if f.rule_id == "MLS101"]
    assert finding.severity is Severity.CRITICAL
    [said] = finding.suppressions
    assert said.kind == "inSource"
    assert said.justification == (
        "severity lowered from critical to low by .mlsec.toml: severity = { MLS101 = 'low' }"
    )
    assert report.exit_code == 0


def test_unknown_rule_in_severity_override(tmp_path: Path) -> None:
    (tmp_path / "ops.toml").write_text('[severity]\nMLS999 = "low"\n')
    with pytest.raises(ConfigError, match="MLS999"):
        scan(build_options(tmp_path, config_file=tmp_path / "ops.toml"))


def test_parse_size() -> None:
    assert parse_size(10) == 10
    assert parse_size("2GB") == 2 * 1000**3
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size("1.5k") == 1500
    with pytest.raises(ValueError):
        parse_size("-3")
    with pytest.raises(ValueError):
        parse_size(True)


def test_defaults() -> None:
    assert Limits().max_archive_depth >= 1
