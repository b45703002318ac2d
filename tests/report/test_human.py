"""Table and Markdown lead with what gates: a verdict line, the findings at or above fail-on
first, info and documentation notes counted (listed only when verbose), suppressed findings
counted and never gating."""

from __future__ import annotations

from mlsec.findings import Finding, Severity
from mlsec.render import render
from mlsec.render.markdown import MAX_ROWS
from mlsec.report import ScanReport

from .conftest import BINARY, DOC_NOTE, INFO_NOTE, MEDIUM, SUPPRESSED, make_report


def test_table_leads_with_the_verdict_and_what_gates(mixed_report: ScanReport) -> None:
    out = render(mixed_report, "table", width=200)
    lines = out.splitlines()
    assert lines[0] == "FAILED: 2 findings at or above high (fail-on high)."
    gate, rest = out.index("Failing the scan"), out.index("Other findings")
    assert gate < out.index("ml/model.pt") < out.index("requirements.txt:3") < rest
    assert rest < out.index("ml/link.bin")
    # notes are counted, not listed; the suppressed finding is counted, not listed
    assert "MLS302" not in out and "MLS305" not in out
    assert "2 info or documentation notes not listed (-v lists them)" in out
    assert "ml/accepted.pkl" not in out and "1 suppressed" in out
    assert out.rstrip().endswith("FAILED: 2 findings at or above high (fail-on high).")


def test_verbose_table_lists_notes_and_suppressions(mixed_report: ScanReport) -> None:
    out = render(mixed_report, "table", width=200, verbose=True)
    assert "MLS302" in out and "MLS305" in out
    suppressed = out.index("Suppressed (not gating)")
    assert out.index("ml/accepted.pkl") > suppressed
    assert "test fixture [ok] (ml/.mlsec.toml: suppress[0])" in out
    assert "not listed" not in out


def test_suppressed_critical_does_not_gate() -> None:
    report = make_report([SUPPRESSED, MEDIUM])
    table = render(report, "table", width=200)
    assert table.splitlines()[0] == "passed: no findings at or above high."
    assert "Failing the scan" not in table
    md = render(report, "markdown")
    assert "✅ passed" in md and "1 suppressed" in md
    assert (
        "| 0 | 0 | 1 | 0 | 0 | 1 |" in md
    )  # per-severity counts of active findings, then suppressed


def test_gate_off_and_clean() -> None:
    assert render(make_report([MEDIUM], fail_on=None), "table").startswith("Gate off")
    clean = render(make_report([]), "table")
    assert clean.startswith("passed") and "No findings." in clean
    assert "No findings." in render(make_report([]), "markdown")


def test_markdown_sections_and_counts(mixed_report: ScanReport) -> None:
    md = render(mixed_report, "markdown")
    assert md.index("### Failing the scan") < md.index("### Other findings")
    assert "❌ failed: 2 at or above high" in md
    assert "MLS302" not in md and "2 info or documentation notes not listed here." in md
    assert "1 suppressed finding (listed in the JSON and SARIF)." in md
    verbose = render(mixed_report, "markdown", verbose=True)
    assert "MLS302" in verbose and "<details><summary>1 suppressed</summary>" in verbose
    assert "ml/accepted.pkl" in verbose


def test_markdown_stays_within_the_job_summary_limit() -> None:
    many = [BINARY._replace(path=f"m/{i}.pkl", key=str(i)) for i in range(MAX_ROWS + 50)]
    md = render(make_report(many), "markdown")
    assert md.count("| 🛑 critical |") == MAX_ROWS
    assert "50 more are listed in the SARIF and JSON reports." in md
    huge = [BINARY._replace(path=f"m/{i}.pkl", key=str(i), message="x" * 2000) for i in range(5000)]
    assert len(render(make_report(huge), "markdown").encode()) < 1024 * 1024


def test_notes_are_info_and_low_documentation_only() -> None:
    from mlsec.render import is_note

    assert is_note(INFO_NOTE) and is_note(DOC_NOTE)
    assert not is_note(MEDIUM)
    low_model = Finding("MLS105", Severity.LOW, "x", "a.pkl")
    assert not is_note(low_model)  # a low model-file finding is listed


def test_render_takes_the_same_options_for_every_format(mixed_report: ScanReport) -> None:
    import json

    for fmt in ("table", "json", "sarif", "markdown"):
        assert render(mixed_report, fmt, verbose=True, category="ml/")
    sarif = json.loads(render(mixed_report, "sarif", verbose=True, category="ml/"))
    assert sarif["runs"][0]["automationDetails"]["id"] == "ml/"


def test_incomplete_scan_says_so_first() -> None:
    from mlsec.findings import ScanError

    crash = ScanError(".", "analyzer deps failed", analyzer="deps", internal=True)
    report = make_report([MEDIUM], errors=(crash,))
    table = render(report, "table", width=200)
    assert table.startswith("INCOMPLETE: an analyzer failed")
    assert "error: .: analyzer deps failed" in table
    assert "incomplete: an analyzer failed (exit 2)" in render(report, "markdown")
