"""Reports built in code for the renderer tests: hostile names and messages, suppressions,
notices, dependency advisories with CVSS scores."""

from __future__ import annotations

import pytest

from mlsec.findings import Finding, ScanError, Severity, Skipped, Suppression
from mlsec.report import ScanReport
from mlsec.rules import load_rules

# Text an attacker controls: file names, archive members, strings inside a pickle.
HOSTILE = [
    "[/close].pkl",
    'os.system("[/bad]")',
    "[link=https://evil.example/]harmless[/link]",
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "\x1b[2J\x1b[31mred",
    "bell\x07 back\x08space cr\roverwrite",
    "bidi \u202egnp.lave\u202c and \u2066isolate\u2069",
    "zero\u200bwidth\u200d\ufeff",
    "undecodable-\udcff\udcfe.pkl",
    "<img src=x onerror=alert(1)>",
    "<details open><summary>hidden</summary>",
    "@octocat please look",
    "[click](https://evil.example/)",
    "![pixel](https://evil.example/p.png)",
    "<https://evil.example/auto>",
    "bare https://evil.example/bare and www.evil.example",
    "mail me@evil.example",
    "pipe | breaks | cells",
    "`code` and ``` fence",
    "$math$ &amp; &lt;b&gt; #1 :smile:",
    "line\nbreak",
]


def hostile_findings() -> list[Finding]:
    findings = []
    for i, text in enumerate(HOSTILE):
        findings.append(
            Finding(
                "MLS101",
                Severity.CRITICAL,
                f"call of {text}",
                f"models/{text}",
                member=f"archive/{text}",
                offset=i,
                key=str(i),
            )
        )
    return findings


def make_report(
    findings: list[Finding],
    *,
    errors: tuple[ScanError, ...] = (),
    skipped: tuple[Skipped, ...] = (),
    fail_on: Severity | None = Severity.HIGH,
    root: str = ".",
) -> ScanReport:
    return ScanReport(
        "0.0.0", root, tuple(findings), errors, skipped, load_rules(), 7, fail_on=fail_on
    )


@pytest.fixture
def hostile_report() -> ScanReport:
    errors = tuple(ScanError(f"bad/{t}", f"could not read {t}", analyzer="x") for t in HOSTILE)
    skipped = tuple(Skipped(f"skip/{t}", f"reason {t}") for t in HOSTILE)
    return make_report(hostile_findings(), errors=errors, skipped=skipped)


SUPPRESSED = Finding(
    "MLS101",
    Severity.CRITICAL,
    "call of os.system",
    "ml/accepted.pkl",
    offset=3,
    key="acc",
    suppressions=(Suppression("inSource", "test fixture [ok]", "ml/.mlsec.toml: suppress[0]"),),
)
VULNERABLE = Finding(
    "MLS201",
    Severity.HIGH,
    "mlflow 2.9.0 has 1 known vulnerability (PYSEC-2023-252)",
    "requirements.txt",
    line=3,
    key="mlflow==2.9.0",
    details={
        "package": "mlflow",
        "advisories": [
            {"id": "PYSEC-2023-252", "cvss_score": 9.8},
            {"id": "GHSA-x", "cvss_score": None},
        ],
    },
)
BINARY = Finding(
    "MLS101",
    Severity.CRITICAL,
    "call of os.system",
    "ml/model.pt",
    member="archive/data.pkl",
    offset=12,
    key="b",
)
NOTICE = Finding("MLS194", Severity.LOW, "modelscan is not installed", ".", key="missing")
FILE_NOTICE = Finding("MLS901", Severity.LOW, "File could not be read", "ml/locked.bin")
DOC_NOTE = Finding("MLS302", Severity.LOW, "model card lacks a licence", "ml/README.md")
INFO_NOTE = Finding("MLS305", Severity.INFO, "licence is permissive", "ml/README.md")
MEDIUM = Finding("MLS902", Severity.MEDIUM, "symlink points outside", "ml/link.bin")


@pytest.fixture
def mixed_report() -> ScanReport:
    return make_report(
        [BINARY, VULNERABLE, SUPPRESSED, NOTICE, FILE_NOTICE, DOC_NOTE, INFO_NOTE, MEDIUM],
        root="/work/repo",
    )
