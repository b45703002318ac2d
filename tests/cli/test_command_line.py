"""The command line of DESIGN.md: several PATHs, outputs, environment, configuration
discovery, unknown rule ids, containment of configuration, --min-severity, --category."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsec.cli import scan_args
from mlsec.cli.outputs import EXTENSIONS, Format, Output, format_of, plan_outputs
from mlsec.errors import MlsecError
from mlsec.render import RENDERERS

from .conftest import evil_pickle, git, ours, report, write


def test_every_format_is_handled_everywhere() -> None:
    names = {f.value for f in Format}
    assert set(RENDERERS) == names
    assert set(scan_args.CHOICES["fmt"]) == names
    assert {fmt.value for _, fmt in EXTENSIONS} == names


@pytest.mark.parametrize(
    ("fmt", "outputs", "planned"),
    [
        (None, [], [Output(Format.table, None)]),
        (Format.json, [], [Output(Format.json, None)]),
        (None, ["r.sarif"], [Output(Format.sarif, Path("r.sarif"))]),
        (None, ["bom.cdx.json", "r.md"],
         [Output(Format.cyclonedx, Path("bom.cdx.json")), Output(Format.markdown, Path("r.md"))]),
        # one file with an explicit --format: that format, whatever the extension
        (Format.cyclonedx, ["bom.json"], [Output(Format.cyclonedx, Path("bom.json"))]),
        (Format.table, ["r.sarif", "r.md"],
         [Output(Format.sarif, Path("r.sarif")), Output(Format.markdown, Path("r.md")),
          Output(Format.table, None)]),
        (Format.json, ["out/report.json"], [Output(Format.json, Path("out/report.json"))]),
        (Format.sarif, ["report"], [Output(Format.sarif, Path("report"))]),
        (None, ["sarif=x.txt", "x=y.json"],
         [Output(Format.sarif, Path("x.txt")), Output(Format.json, Path("x=y.json"))]),
        (None, ["sarif=-", "r.md"],
         [Output(Format.sarif, None), Output(Format.markdown, Path("r.md"))]),
    ],
)  # fmt: skip
def test_output_formats_come_from_format_prefix_or_extension(
    fmt: Format | None, outputs: list[str], planned: list[Output]
) -> None:
    assert plan_outputs(fmt, outputs) == planned


def test_one_report_on_standard_output() -> None:
    with pytest.raises(MlsecError, match="only one report can go to standard output"):
        plan_outputs(None, ["sarif=-", "json=-"])


def test_format_of_needs_a_name_before_the_extension() -> None:
    assert format_of(".json") is None
    assert format_of("a.SARIF") is Format.sarif


def test_several_outputs_in_one_run(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    evil_pickle(repo / "w.pkl")
    out = tmp_path / "out"
    proc = cli("scan", repo, "-o", out / "r.sarif", "-o", out / "r.json", "-o", out / "r.md")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert json.loads((out / "r.sarif").read_text())["version"] == "2.1.0"
    assert ("MLS101", "critical", "w.pkl", False) in ours(json.loads((out / "r.json").read_text()))
    assert "## mlsec scan" in (out / "r.md").read_text()
    # --format given and taken by none of several files: standard output gets it as well.
    proc = cli("scan", repo, "-f", "table", "-o", out / "r2.sarif", "-o", out / "r2.md")
    assert "CRITICAL" in proc.stdout and (out / "r2.sarif").is_file()
    # one file with --format: that file gets the format, whatever its extension
    proc = cli("scan", repo, "-f", "sarif", "-o", out / "r3.json")
    assert proc.stdout == ""
    assert json.loads((out / "r3.json").read_text())["version"] == "2.1.0"


def test_several_paths_report_repository_paths(repo: Path, cli) -> None:
    evil_pickle(repo / "ml" / "a.pkl")
    evil_pickle(repo / "other" / "b.pkl")
    proc = cli("scan", repo / "ml", repo / "other" / "b.pkl", "-f", "json", "--min-severity", "low")
    assert proc.returncode == 1
    assert ours(report(proc)) == [
        ("MLS101", "critical", "ml/a.pkl", False),
        ("MLS101", "critical", "other/b.pkl", False),
    ]
    assert report(proc)["summary"]["files_scanned"] == 2


def test_subfolder_scan_finds_the_root_configuration(repo: Path, cli) -> None:
    """`cd ml && mlsec scan .` uses the repository root's .mlsec.toml; paths stay rooted."""
    evil_pickle(repo / "ml" / "w.pkl")
    write(repo / ".mlsec.toml", '[[suppress]]\npath = "ml/*.pkl"\nreason = "samples"\n')
    proc = cli("scan", ".", "-f", "sarif", cwd=repo / "ml")
    assert proc.returncode == 0, proc.stderr
    [result] = [r for r in report(proc)["runs"][0]["results"] if r["ruleId"] == "MLS101"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "ml/w.pkl"
    [suppression] = result["suppressions"]
    assert (suppression["kind"], suppression["justification"]) == ("inSource", "samples")


def test_nearest_configuration_wins(repo: Path, cli) -> None:
    evil_pickle(repo / "ml" / "w.pkl")
    write(repo / ".mlsec.toml", 'fail-on = "none"\n')
    write(repo / "ml" / "pyproject.toml", '[tool.mlsec]\nfail-on = "critical"\n')
    assert cli("scan", repo / "ml", "-f", "json").returncode == 1
    assert cli("scan", repo, "-f", "json").returncode == 0


def test_environment_variables_set_options_and_flags_win(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "w.pkl")
    env = {"MLSEC_FAIL_ON": "none", "MLSEC_FORMAT": "json"}
    proc = cli("scan", tmp_path, env=env)
    assert proc.returncode == 0
    assert report(proc)["summary"]["fail_on"] == "none"
    assert cli("scan", tmp_path, "--fail-on", "critical", env=env).returncode == 1
    proc = cli("scan", tmp_path, env={"MLSEC_FAIL_ON": "sometimes"})
    assert proc.returncode == 2
    assert "MLSEC_FAIL_ON='sometimes': expected one of critical, high" in proc.stderr
    proc = cli(
        "scan", tmp_path, "-f", "json", env={"MLSEC_SELECT": "MLS9", "MLSEC_NO_PROGRESS": "1"}
    )
    assert not [f for f in report(proc)["findings"] if f["rule_id"] == "MLS101"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--select", "MLS999"],
        ["--ignore", "MLS1,MLS777"],
        ["--select", "MLS5"],
    ],
)
def test_unknown_rule_ids_are_exit_2(tmp_path: Path, cli, argv: list[str]) -> None:
    proc = cli("scan", tmp_path, *argv)
    assert proc.returncode == 2
    assert "unknown rule id" in proc.stderr
    assert "`mlsec rules` lists every rule id" in proc.stderr


@pytest.mark.parametrize(
    "text",
    [
        'select = ["MLS999"]\n',
        'ignore = ["MLS998"]\n',
        '[severity]\nMLS997 = "low"\n',
        '[[suppress]]\nrule = "MLS996"\nreason = "x"\n',
    ],
)
def test_unknown_rule_ids_in_configuration(tmp_path: Path, cli, text: str) -> None:
    repo = tmp_path / "repo"
    evil_pickle(repo / "w.pkl")
    write(tmp_path / "ops.toml", text)
    proc = cli("scan", repo, "--config", tmp_path / "ops.toml", "-f", "json")
    assert proc.returncode == 2
    assert "MLS99" in proc.stderr and "mlsec rules" in proc.stderr
    # In the tree: exit 2 too, but the scan goes on with the defaults and reports.
    write(repo / ".mlsec.toml", text)
    proc = cli("scan", repo, "-f", "json")
    assert proc.returncode == 2
    assert "MLS99" in proc.stderr
    data = report(proc)
    assert ("MLS101", "critical", "w.pkl", False) in ours(data)
    assert [e["analyzer"] for e in data["errors"]] == ["config"]


@pytest.mark.parametrize("where", [".mlsec.toml", "pyproject.toml"])
def test_deeply_nested_configuration_does_not_end_the_scan(tmp_path: Path, cli, where: str) -> None:
    evil_pickle(tmp_path / "w.pkl")
    nested = "[" * 5000 + "]" * 5000
    key = "[tool.mlsec]\nselect = " if where == "pyproject.toml" else "select = "
    write(tmp_path / where, key + nested + "\n")
    proc = cli("scan", tmp_path, "-f", "json")
    assert "Traceback" not in proc.stderr
    data = report(proc)
    assert ("MLS101", "critical", "w.pkl", False) in ours(data)
    if where == ".mlsec.toml":
        assert proc.returncode == 2
        [error] = data["errors"]
        assert "nested too deeply" in error["message"]
    else:  # a pyproject.toml that cannot be read is the dependency analyzer's to report
        assert proc.returncode in (1, 2)


def test_min_severity_reports_less_and_fail_on_still_gates(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "w.pkl")
    proc = cli("scan", tmp_path, "-f", "json", "--min-severity", "critical")
    data = report(proc)
    assert {f["severity"] for f in data["findings"]} == {"critical"}
    assert data["summary"]["below_min_severity"] >= 1  # MLS102 (info) counted, not listed
    assert proc.returncode == 1


def test_category_and_repository_relative_uris_in_sarif(repo: Path, cli) -> None:
    evil_pickle(repo / "ml" / "checkpoint.pt")
    proc = cli("scan", repo / "ml", "-f", "sarif", "--category", "mlsec/ml")
    run = report(proc)["runs"][0]
    assert run["automationDetails"] == {"id": "mlsec/ml/"}  # GitHub: category = id to its last /
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]
    }
    assert "ml/checkpoint.pt" in uris


def test_bad_shard_and_jobs_are_exit_2(tmp_path: Path, cli) -> None:
    for argv, needle in (
        (["--shard", "3/2"], "--shard '3/2': expected K/N"),
        (["--shard", "x"], "expected K/N"),
        (["--jobs", "0"], "--jobs 0: expected at least 1"),
        (["--jobs", "many"], "Invalid value for '--jobs'"),
        (["-q", "-v"], "-q and -v exclude each other"),
    ):
        proc = cli("scan", tmp_path, *argv)
        assert proc.returncode == 2, argv
        assert needle in proc.stderr, proc.stderr


def test_shards_cover_the_file_set_once_and_keep_signed_folders_whole(tmp_path: Path, cli) -> None:
    for i in range(12):
        write(tmp_path / f"d{i}" / "train.py", "print(1)\n")
    write(tmp_path / "signed" / "model.sig", "{}")
    write(tmp_path / "signed" / "sub" / "weights.txt", "x")
    seen: list[int] = []
    for k in (1, 2, 3):
        data = report(cli("scan", tmp_path, "-f", "json", "--shard", f"{k}/3", "--no-git"))
        seen.append(data["summary"]["files_scanned"])
    assert sum(seen) == 14
    assert all(n < 14 for n in seen)  # each shard does part of the work


def test_progress_bars_finish(tmp_path: Path) -> None:
    from mlsec.config import build_options
    from mlsec.scan import scan

    for i in range(5):
        write(tmp_path / f"f{i}.txt", "x")
    evil_pickle(tmp_path / "w.pkl")
    advanced: dict[str, list[int]] = {}

    def progress(description: str, total: int):  # type: ignore[no-untyped-def]
        steps = advanced.setdefault(description, [total, 0])
        return lambda n: steps.__setitem__(1, steps[1] + n)

    scan(build_options(tmp_path, use_git=False), progress=progress)
    assert advanced and all(total == done == 6 for total, done in advanced.values()), advanced


def test_git_top_level_is_found_from_a_file_path(repo: Path, cli) -> None:
    evil_pickle(repo / "a" / "b" / "w.pkl")
    git(repo, "add", "-A")
    proc = cli("scan", repo / "a" / "b" / "w.pkl", "-f", "json", "--min-severity", "critical")
    assert ours(report(proc)) == [("MLS101", "critical", "a/b/w.pkl", False)]


def test_environment_applies_on_both_parsers(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "w.pkl")
    for argv in (["-f", "json"], ["-fjson"]):  # the fast path, then typer (attached value)
        proc = cli("scan", tmp_path, *argv, env={"MLSEC_FAIL_ON": "none"})
        assert proc.returncode == 0, argv
        assert report(proc)["summary"]["fail_on"] == "none"


def test_real_entry_point_gates(tmp_path: Path, cli_subprocess) -> None:
    evil_pickle(tmp_path / "w.pkl")
    proc = cli_subprocess("scan", tmp_path, "-o", tmp_path / "out" / "r.json", "-q")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "")
    data = json.loads((tmp_path / "out" / "r.json").read_text())
    assert ("MLS101", "critical", "w.pkl", False) in ours(data)


def test_color_and_quiet(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "w.pkl")
    colored = cli("scan", tmp_path, "--color", "always")
    assert "\x1b[" in colored.stdout and "MLS101" in colored.stdout
    plain = cli("scan", tmp_path, "--color", "never", env={"MLSEC_COLOR": "always"})
    assert "\x1b[" not in plain.stdout and "MLS101" in plain.stdout
    # -q: the report, and nothing else on stderr.
    quiet = cli("scan", tmp_path, "-q", "-f", "json")
    assert quiet.returncode == 1 and quiet.stderr == ""
    assert report(quiet)["summary"]["failed"] is True


def test_cache_dir_and_no_cache(tmp_path: Path, cli) -> None:
    from .conftest import OSV_MINI

    repo, cache = tmp_path / "repo", tmp_path / "cache"
    evil_pickle(repo / "model.pkl")
    write(repo / "requirements.txt", "mlflow==2.9.0\n")
    argv = ["scan", repo, "-f", "cyclonedx", "--offline", "--vuln-db", OSV_MINI, "--no-git"]
    assert cli(*argv, "--cache-dir", cache).returncode == 1
    kept = {p.relative_to(cache).parts[0] for p in cache.rglob("*") if p.is_file()}
    assert kept == {"hashes.json", "osv-index", "bom-validated.json", "bom-render"}
    again = tmp_path / "cache2"
    proc = cli(*argv, env={"MLSEC_NO_CACHE": "1", "XDG_CACHE_HOME": str(again)})
    assert proc.returncode == 1, proc.stderr
    assert not again.exists()  # nothing was cached
    proc = cli("scan", repo, "--cache-dir", cache, "--no-cache")
    assert proc.returncode == 2 and "exclude each other" in proc.stderr


def test_offline_database_is_looked_up_in_the_cache_dir(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    write(repo / "requirements.txt", "mlflow==2.9.0\n")
    proc = cli("scan", repo, "--offline", "--cache-dir", tmp_path / "c")
    assert proc.returncode == 2
    assert f"none was given or found in {tmp_path / 'c' / 'osv'}" in proc.stderr
