"""Baselines (create, gate on new findings only, stale entries), --diff REF, mlsec merge."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import evil_pickle, git, ours, report, write


def test_baseline_create_then_gate_on_new_findings_only(repo: Path, tmp_path: Path, cli) -> None:
    evil_pickle(repo / "old.pkl")
    baseline = tmp_path / "baseline.json"
    proc = cli("baseline", "create", repo, "-o", baseline)
    assert proc.returncode == 0, proc.stderr
    assert "written to" in proc.stderr
    assert cli("scan", repo, "--baseline", baseline, "-f", "json").returncode == 0
    evil_pickle(repo / "new.pkl")
    proc = cli("scan", repo, "--baseline", baseline, "-f", "json", "--min-severity", "low")
    assert proc.returncode == 1
    assert ours(report(proc)) == [
        ("MLS101", "critical", "new.pkl", False),
        ("MLS101", "critical", "old.pkl", True),
    ]


def test_baseline_entries_that_no_longer_occur_are_reported(
    repo: Path, tmp_path: Path, cli
) -> None:
    evil_pickle(repo / "old.pkl")
    baseline = tmp_path / "baseline.sarif"
    cli("scan", repo, "-o", baseline)
    (repo / "old.pkl").unlink()
    proc = cli("scan", repo, "--baseline", baseline, "-f", "json")
    assert proc.returncode == 0
    stale = [f for f in report(proc)["findings"] if f["rule_id"] == "MLS921"]
    assert {(f["severity"], f["path"], f["details"]["rule_id"]) for f in stale} == {
        ("info", "old.pkl", "MLS101"),
        ("info", "old.pkl", "MLS102"),
    }


def test_baseline_that_is_not_a_report_is_exit_2(tmp_path: Path, cli) -> None:
    for text, needle in (
        ("[1, 2]", "neither an mlsec JSON nor a SARIF"),
        ("{", "is refused: not valid JSON"),
    ):
        write(tmp_path / "b.json", text)
        proc = cli("scan", tmp_path, "--baseline", tmp_path / "b.json")
        assert proc.returncode == 2
        assert needle in proc.stderr and "mlsec baseline create" in proc.stderr
    write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    proc = cli("scan", tmp_path, "--baseline", tmp_path / "deep.json")
    assert (proc.returncode, "nested deeper than" in proc.stderr) == (2, True)


def test_diff_scans_changed_and_untracked_files_only(repo: Path, cli) -> None:
    evil_pickle(repo / "committed.pkl")
    evil_pickle(repo / "moved.pkl")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "models")
    evil_pickle(repo / "untracked.pkl")
    git(repo, "mv", "moved.pkl", "renamed.pkl")
    proc = cli("scan", repo, "--diff", "HEAD", "-f", "json", "--min-severity", "critical")
    assert proc.returncode == 1
    assert ours(report(proc)) == [
        ("MLS101", "critical", "renamed.pkl", False),
        ("MLS101", "critical", "untracked.pkl", False),
    ]
    assert report(proc)["summary"]["files_scanned"] == 2
    # Nothing changed since the new commit: nothing to scan, nothing fails.
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    proc = cli("scan", repo, "--diff", "HEAD", "-f", "json")
    assert (proc.returncode, report(proc)["summary"]["files_scanned"]) == (0, 0)


def test_diff_keeps_what_the_checks_need(repo: Path, cli) -> None:
    write(repo / "signed" / "model.sig", "{}")
    write(repo / "signed" / "config.json", "{}")
    write(repo / "signed" / "weights.txt", "w")
    write(repo / "requirements.txt", "-r requirements/base.txt\n")
    write(repo / "requirements" / "base.txt", "requests==2.0.0\n")
    write(repo / "unrelated.txt", "x")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tree")
    write(repo / "signed" / "weights.txt", "changed")
    write(repo / "requirements" / "base.txt", "requests==2.0.1\n")
    from mlsec.config import build_options
    from mlsec.scan import scan

    report_ = scan(build_options(repo, diff_ref="HEAD", offline=True), analyzers=())
    # The signed folder whole (3 files), the changed include and the manifest including it.
    assert report_.files_scanned == 5
    # A changed lock file re-audits the manifest beside it.
    write(repo / "svc" / "pyproject.toml", '[project]\nname = "s"\ndependencies = ["x>=1"]\n')
    write(repo / "svc" / "uv.lock", "version = 1\n")
    write(repo / "svc" / "app.py", "print(1)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "svc")
    write(repo / "svc" / "uv.lock", "version = 1\n# changed\n")
    report_ = scan(build_options(repo / "svc", diff_ref="HEAD"), analyzers=())
    assert report_.files_scanned == 2


def test_diff_with_an_unknown_revision_is_exit_2(repo: Path, cli) -> None:
    proc = cli("scan", repo, "--diff", "no-such-branch")
    assert proc.returncode == 2
    assert "--diff no-such-branch: git cannot compare with it" in proc.stderr


def test_diff_outside_git_is_exit_2(tmp_path: Path, cli) -> None:
    proc = cli("scan", tmp_path, "--diff", "HEAD")
    assert proc.returncode == 2
    assert "--diff needs a git repository" in proc.stderr


def test_merge_sarif_shards_into_one_run_per_category(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    for i in range(6):
        evil_pickle(repo / f"d{i}" / "w.pkl")
    parts = []
    for k in (1, 2):
        out = tmp_path / f"part{k}.sarif"
        cli("scan", repo, "--shard", f"{k}/2", "-o", out, "--no-git")
        parts.append(out)
    other = tmp_path / "other.sarif"
    cli("scan", repo / "d0", "-o", other, "--category", "mlsec/d0", "--no-git")
    proc = cli("merge", *parts, other, "-o", tmp_path / "all.sarif")
    assert proc.returncode == 0, proc.stderr
    runs = json.loads((tmp_path / "all.sarif").read_text())["runs"]
    assert [r["automationDetails"]["id"] for r in runs] == ["mlsec/", "mlsec/d0/"]
    critical = [r for r in runs[0]["results"] if r["ruleId"] == "MLS101"]
    assert len(critical) == 6
    for result in runs[0]["results"]:
        rules = runs[0]["tool"]["driver"]["rules"]
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_merge_json_recounts_and_gates(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    evil_pickle(repo / "a" / "w.pkl")
    write(repo / "b" / "train.py", "print(1)\n")
    cli("scan", repo / "a", "-o", tmp_path / "a.json", "--no-git")
    cli("scan", repo / "b", "-o", tmp_path / "b.json", "--no-git")
    proc = cli("merge", tmp_path / "a.json", tmp_path / "b.json")
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)["summary"]
    assert (summary["files_scanned"], summary["by_severity"]["critical"]) == (2, 1)
    proc = cli("merge", tmp_path / "a.json", tmp_path / "nope.json")
    assert proc.returncode == 2 and "cannot read report" in proc.stderr


def test_diff_keeps_files_with_undecodable_names(repo: Path, cli) -> None:
    import os

    name = os.fsdecode(b"w\xff.pkl")
    evil_pickle(repo / name)
    proc = cli("scan", repo, "--diff", "HEAD", "-f", "json", "--min-severity", "critical")
    assert proc.returncode == 1
    assert ours(report(proc)) == [("MLS101", "critical", "w\\xff.pkl", False)]


def test_diff_revision_is_never_a_git_option(repo: Path, tmp_path: Path, cli) -> None:
    """`--diff=--output=FILE` would make git write FILE: refused before git runs."""
    target = tmp_path / "written-by-git"
    proc = cli("scan", repo, f"--diff=--output={target}")
    assert proc.returncode == 2
    assert "is not a git revision" in proc.stderr
    assert not target.exists()


def test_four_shards_merged_are_the_full_scan(tmp_path: Path, cli) -> None:
    """The demo repository (pickles of every kind, archives, a signed folder, manifests with
    vulnerable pins against the bundled OSV records) scanned in 4 shards and merged gives
    the full scan's findings, in JSON and in SARIF."""
    import shutil

    from tests.conftest import FIXTURES

    shutil.copytree(FIXTURES / "demo-repo", tmp_path / "demo-repo", symlinks=True)
    shutil.copytree(FIXTURES / "osv-mini", tmp_path / "osv-mini")
    repo = tmp_path / "demo-repo"
    full = tmp_path / "full.json"
    assert cli("scan", repo, "--no-git", "-o", full, "--fail-on", "none").returncode == 0
    parts_json, parts_sarif = [], []
    for k in (1, 2, 3, 4):
        out_json, out_sarif = tmp_path / f"s{k}.json", tmp_path / f"s{k}.sarif"
        proc = cli(
            "scan", repo, "--no-git", "--shard", f"{k}/4", "--fail-on", "none",
            "-o", out_json, "-o", out_sarif,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        parts_json.append(out_json)
        parts_sarif.append(out_sarif)
    merged = tmp_path / "merged.json"
    assert cli("merge", *parts_json, "-o", merged).returncode == 0

    def findings(path: Path) -> list[tuple[object, ...]]:
        data = json.loads(path.read_text())
        return sorted(
            (
                f["rule_id"],
                f["severity"],
                f["path"],
                f.get("member"),
                f.get("line"),
                f["fingerprint"],
            )
            for f in data["findings"]
        )

    whole = findings(full)
    assert len(whole) > 20 and findings(merged) == whole
    shard_sizes = [len(json.loads(p.read_text())["findings"]) for p in parts_json]
    assert sum(1 for n in shard_sizes if n) >= 2  # the work was shared
    merged_sarif = tmp_path / "merged.sarif"
    assert cli("merge", *parts_sarif, "-o", merged_sarif).returncode == 0
    [run] = json.loads(merged_sarif.read_text())["runs"]
    assert len(run["results"]) == len(whole)
