"""`mlsec merge` of shard reports another job wrote: every hostile report is a clear exit 2
(never a traceback, a partial merge or a wrong pass), and what merges gives the full scan."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.redteam13.conftest import dump, finding_keys, load

Mutation = Callable[[dict[str, Any]], Any]


def _merge(cli: Any, *paths: Path | str) -> Any:
    return cli("merge", *paths)


def _refused(proc: Any, needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[:300], proc.stderr)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert proc.stdout == ""  # nothing merged in part


def _whole(report: dict[str, Any]) -> dict[str, Any]:
    """A shard's report made the report of a whole scan (of a folder, say)."""
    if "summary" in report:
        report["summary"].pop("shard", None)
    for run in report.get("runs", ()):
        run.get("properties", {}).get("summary", {}).pop("shard", None)
    return report


def _first(items: str) -> Mutation:
    """A mutation of every item of a list at the top level."""

    def pick(data: dict[str, Any]) -> list[Any]:
        return data[items]  # type: ignore[no-any-return]

    return pick


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        node: Any = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return apply


def _drop(path: tuple[Any, ...]) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        node: Any = data
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]

    return apply


JSON_MUTATIONS: list[tuple[str, Mutation]] = [
    ("files_scanned-text", _set(("summary", "files_scanned"), "abc")),
    ("files_scanned-negative", _set(("summary", "files_scanned"), -5)),
    ("files_scanned-float", _set(("summary", "files_scanned"), 1.5)),
    ("fail_on-bogus", _set(("summary", "fail_on"), "bogus")),
    ("fail_on-number", _set(("summary", "fail_on"), 3)),
    ("min_severity-bogus", _set(("summary", "min_severity"), "huge")),
    ("below_min-text", _set(("summary", "below_min_severity"), "x")),
    ("incomplete-text", _set(("summary", "incomplete"), "no")),
    ("summary-list", _set(("summary",), [1])),
    ("summary-missing", _drop(("summary",))),
    ("findings-dict", _set(("findings",), {"a": 1})),
    ("errors-dict", _set(("errors",), {"a": 1})),
    ("skipped-string", _set(("skipped",), "x")),
    ("tool-other", _set(("tool", "name"), "picklescan")),
    ("version-number", _set(("tool", "version"), 1)),
    ("root-missing", _drop(("root",))),
    ("schema_version-2", _set(("schema_version",), "2.0")),
    ("finding-no-fingerprint", _drop(("findings", 0, "fingerprint"))),
    ("finding-severity-bogus", _set(("findings", 0, "severity"), "bogus")),
    ("finding-severity-missing", _drop(("findings", 0, "severity"))),
    ("finding-path-number", _set(("findings", 0, "path"), 7)),
    ("finding-line-text", _set(("findings", 0, "line"), "3")),
    ("finding-line-bool", _set(("findings", 0, "line"), True)),
    ("finding-rule-other", _set(("findings", 0, "rule_id"), "B301")),
    ("finding-string", _set(("findings", 0), "MLS101")),
    ("finding-extra-key", _set(("findings", 0, "hidden"), True)),
    ("suppressions-string", _set(("findings", 0, "suppressions"), "x")),
    ("suppressions-empty", _set(("findings", 0, "suppressions"), [])),
    ("suppression-kind", _set(("findings", 0, "suppressions"), [{"kind": "x"}])),
    ("error-internal-text", _set(("errors",), [{"path": ".", "member": None, "message": "m",
                                                "analyzer": None, "internal": "yes"}])),
    ("skipped-entry-number", _set(("skipped",), [3])),
    ("extra-top-level", _set(("shard_of",), "1/4")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "mutate"), JSON_MUTATIONS, ids=[m[0] for m in JSON_MUTATIONS])
def test_a_json_report_of_the_wrong_shape_is_refused(
    name: str, mutate: Mutation, shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    source = next(p for p in shards["json"] if load(p)["findings"])
    data = copy.deepcopy(load(source))
    mutate(data)
    bad = dump(tmp_path / "bad.json", data)
    _refused(_merge(cli, bad, *shards["json"][1:]), "bad.json cannot be merged")


def _results(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["runs"][0]["results"]  # type: ignore[no-any-return]


SARIF_MUTATIONS: list[tuple[str, Mutation]] = [
    ("version-missing", _drop(("version",))),
    ("version-1", _set(("version",), "1.0.0")),
    ("runs-empty", _set(("runs",), [])),
    ("runs-dict", _set(("runs",), {"a": 1})),
    ("run-string", _set(("runs", 0), "x")),
    ("tool-list", _set(("runs", 0, "tool"), [1])),
    ("tool-missing", _drop(("runs", 0, "tool"))),
    ("driver-string", _set(("runs", 0, "tool", "driver"), "x")),
    ("driver-name-missing", _drop(("runs", 0, "tool", "driver", "name"))),
    ("driver-version-number", _set(("runs", 0, "tool", "driver", "version"), 1)),
    ("rules-string", _set(("runs", 0, "tool", "driver", "rules"), "x")),
    ("rule-id-number", _set(("runs", 0, "tool", "driver", "rules", 0, "id"), 5)),
    ("results-dict", _set(("runs", 0, "results"), {"a": 1})),
    ("result-string", _set(("runs", 0, "results", 0), "x")),
    ("result-ruleId-missing", _drop(("runs", 0, "results", 0, "ruleId"))),
    ("result-ruleId-list", _set(("runs", 0, "results", 0, "ruleId"), ["MLS101"])),
    ("level-number", _set(("runs", 0, "results", 0, "level"), 3)),
    ("fingerprints-list", _set(("runs", 0, "results", 0, "partialFingerprints"), [1])),
    ("fingerprint-number", _set(("runs", 0, "results", 0, "partialFingerprints"),
                                {"mlsecFingerprint/v1": 5})),
    ("suppressions-dict", _set(("runs", 0, "results", 0, "suppressions"), {"kind": "x"})),
    ("locations-string", _set(("runs", 0, "results", 0, "locations"), "x")),
    ("location-string", _set(("runs", 0, "results", 0, "locations"), ["x"])),
    ("physical-string", _set(("runs", 0, "results", 0, "locations"),
                             [{"physicalLocation": "x"}])),
    ("artifact-string", _set(("runs", 0, "results", 0, "locations"),
                             [{"physicalLocation": {"artifactLocation": "x"}}])),
    ("uri-number", _set(("runs", 0, "results", 0, "locations"),
                        [{"physicalLocation": {"artifactLocation": {"uri": 1}}}])),
    ("startLine-text", _set(("runs", 0, "results", 0, "locations"),
                            [{"physicalLocation": {"region": {"startLine": "1"}}}])),
    ("automationDetails-string", _set(("runs", 0, "automationDetails"), "x")),
    ("category-number", _set(("runs", 0, "automationDetails"), {"id": 3})),
    ("invocations-dict", _set(("runs", 0, "invocations"), {"a": 1})),
    ("invocation-string", _set(("runs", 0, "invocations"), ["x"])),
    ("success-text", _set(("runs", 0, "invocations"), [{"executionSuccessful": "yes"}])),
    ("notifications-number", _set(("runs", 0, "invocations"),
                                  [{"executionSuccessful": True,
                                    "toolExecutionNotifications": 5}])),
]  # fmt: skip


@pytest.mark.parametrize(("name", "mutate"), SARIF_MUTATIONS, ids=[m[0] for m in SARIF_MUTATIONS])
def test_a_sarif_report_of_the_wrong_shape_is_refused(
    name: str, mutate: Mutation, shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    source = next(p for p in shards["sarif"] if _results(load(p)))
    data = copy.deepcopy(load(source))
    mutate(data)
    bad = dump(tmp_path / "bad.sarif", data)
    _refused(_merge(cli, bad, *shards["sarif"][1:]), "bad.sarif cannot be merged")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"findings": [', "is refused: not valid JSON"),
        ("not json at all", "is refused: not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "is refused: nested deeper than 64 levels"),
        ('{"a":' * 70 + "1" + "}" * 70, "is refused: nested deeper than 64 levels"),
        ('{"a": "\xc3("}', "is refused: not UTF-8"),
        ("[1, 2]", "neither an mlsec JSON nor a SARIF report"),
        ('"findings"', "neither an mlsec JSON nor a SARIF report"),
        ("{}", "neither an mlsec JSON nor a SARIF report"),
        ('{"findings": [], "runs": []}', "cannot merge"),
        ('{"x": ' + "9" * 5000 + "}", "is refused: not valid JSON"),  # int digit limit
        ('{"findings": NaN}', "cannot be merged"),
    ],
    ids=["truncated", "text", "deep-list", "deep-dict", "latin1", "list", "string", "empty",
         "both-keys", "huge-int", "nan"],
)  # fmt: skip
def test_a_report_that_is_not_json_of_a_report_is_refused(
    text: str, needle: str, shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(text.encode("latin-1") if "\xc3" in text else text.encode())
    _refused(_merge(cli, shards["json"][0], bad), needle)


def test_a_huge_report_is_refused_before_it_is_parsed(
    shards: dict[str, Any], tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec import baseline

    monkeypatch.setattr(baseline, "MAX_BASELINE_BYTES", 4096)
    big = load(shards["json"][0])
    big["skipped"] = [{"path": f"f{i}", "reason": "x" * 50} for i in range(200)]
    bad = dump(tmp_path / "big.json", big)
    _refused(_merge(cli, shards["json"][1], bad), "is refused: larger than 4096 bytes")


def test_what_is_not_a_regular_file_is_refused_without_blocking(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.json"
    folder.mkdir()
    for path in (fifo, folder, Path("/dev/zero"), tmp_path / "missing.json"):
        _refused(_merge(cli, shards["json"][0], path), "cannot read report")


def test_reports_of_different_mlsec_versions_are_refused(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    data = load(shards["json"][1])
    data["tool"]["version"] = "0.0.1"
    old = dump(tmp_path / "old.json", data)
    _refused(_merge(cli, shards["json"][0], old), "different mlsec versions (0.0.1, ")
    sarif = load(shards["sarif"][1])
    sarif["runs"][0]["tool"]["driver"]["version"] = "0.0.1"
    old_sarif = dump(tmp_path / "old.sarif", sarif)
    _refused(_merge(cli, shards["sarif"][0], old_sarif), "different versions of mlsec")


def test_json_and_sarif_together_are_refused(shards: dict[str, Any], cli: Any) -> None:
    _refused(
        _merge(cli, shards["json"][0], shards["sarif"][1]),
        "cannot merge JSON and SARIF reports together",
    )


def test_one_report_given_twice_is_refused(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """A glob that names a shard twice would count its files twice."""
    first = shards["json"][0]
    _refused(_merge(cli, first, *shards["json"]), "is given twice")
    link = tmp_path / "again.json"
    link.symlink_to(first)
    _refused(_merge(cli, link, *shards["json"]), "is given twice")


def test_the_four_shards_merged_are_the_full_scan(shards: dict[str, Any], cli: Any) -> None:
    proc = _merge(cli, *shards["json"])
    assert proc.returncode == 0, proc.stderr
    merged, full = json.loads(proc.stdout), load(shards["full"])
    assert finding_keys(merged) == finding_keys(full)
    assert [f["fingerprint"] for f in merged["findings"]] == [
        f["fingerprint"] for f in full["findings"]
    ]  # the full scan's order too
    for key in ("files_scanned", "findings", "by_severity", "suppressed", "failed"):
        assert merged["summary"][key] == full["summary"][key], key
    # In any order of the shards.
    reverse = json.loads(_merge(cli, *reversed(shards["json"])).stdout)
    assert reverse["findings"] == merged["findings"]


def test_a_stricter_gate_of_one_shard_is_the_merge_gate(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """Shard 1 written with --fail-on none, the others with high: the critical findings
    fail the merge (the first report's gate is not the merge's)."""
    parts = []
    for k, path in enumerate(shards["json"]):
        data = load(path)
        data["summary"]["fail_on"] = "none" if k == 0 else "high"
        parts.append(dump(tmp_path / f"g{k}.json", data))
    proc = _merge(cli, *parts)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert (summary["fail_on"], summary["failed"]) == ("high", True)


def test_a_finding_suppressed_in_one_report_and_active_in_another_stays_active(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """Two reports covering one file (a scan of the repository and one of a folder, say)
    disagree: the merge keeps the finding that gates, in either order."""
    source = next(p for p in shards["json"] if load(p)["findings"])
    active = _whole(load(source))
    active["summary"]["fail_on"] = "high"
    critical = next(f for f in active["findings"] if f["severity"] == "critical")
    quiet = copy.deepcopy(active)
    for f in quiet["findings"]:
        f["severity"] = "info"
        f["suppressions"] = [{"kind": "external", "justification": "x", "source": "y"}]
    a = dump(tmp_path / "active.json", active)
    q = dump(tmp_path / "quiet.json", quiet)
    for order in ((a, q), (q, a)):
        proc = _merge(cli, *order)
        assert proc.returncode == 1, proc.stderr
        merged = json.loads(proc.stdout)
        [kept] = [f for f in merged["findings"] if f["fingerprint"] == critical["fingerprint"]]
        assert (kept["severity"], kept.get("suppressions")) == ("critical", None)
        assert merged["summary"]["suppressed"] == 0


def test_a_sarif_result_suppressed_in_one_run_and_active_in_another_stays_active(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    source = next(p for p in shards["sarif"] if _results(load(p)))
    active = _whole(load(source))
    quiet = copy.deepcopy(active)
    for result in _results(quiet):
        result["level"] = "note"
        result["suppressions"] = [{"kind": "external", "justification": "x"}]
    a = dump(tmp_path / "active.sarif", active)
    q = dump(tmp_path / "quiet.sarif", quiet)
    for order in ((a, q), (q, a)):
        proc = _merge(cli, *order)
        assert proc.returncode == 0, proc.stderr
        [run] = json.loads(proc.stdout)["runs"]
        assert run["results"] == _results(active)


def test_runs_of_other_tools_stay_their_own_runs(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """A bandit run in the same category is not folded into mlsec's run (its results would
    be attributed to mlsec, its rule indexes point at mlsec's rules)."""
    other = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "bandit", "rules": [{"id": "B301"}, {"id": "B403"}]}},
                "automationDetails": {"id": "mlsec/"},
                "results": [
                    {"ruleId": "B403", "ruleIndex": 1, "message": {"text": "import pickle"}},
                    {"ruleId": "B999", "ruleIndex": 0, "message": {"text": "unknown rule"}},
                ],
            }
        ],
    }
    path = dump(tmp_path / "bandit.sarif", other)
    proc = _merge(cli, *shards["sarif"], path)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    assert [r["tool"]["driver"]["name"] for r in runs] == ["mlsec", "bandit"]
    mlsec_run, bandit_run = runs
    assert {r["ruleId"] for r in mlsec_run["results"]} <= {
        "MLS101",
        "MLS102",
        "MLS103",
        "MLS104",
        "MLS105",
        "MLS106",
        "MLS150",
        "MLS190",
    }
    for run in runs:
        rules = run["tool"]["driver"]["rules"]
        for result in run["results"]:
            if "ruleIndex" in result:
                assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    # A rule index naming no rule of the merged run is dropped, not left pointing elsewhere.
    unknown = next(r for r in bandit_run["results"] if r["ruleId"] == "B999")
    assert "ruleIndex" not in unknown


def test_control_characters_and_markup_survive_the_merge_escaped(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    source = next(p for p in shards["json"] if load(p)["findings"])
    data = load(source)
    hostile = "d\x1b[31m/<script>alert(1)</script>\n|x|\u202e\udcff.pkl"
    data["findings"][0]["path"] = hostile
    data["findings"][0]["message"] = "**bold** [link](javascript:x) \x00\x07"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # ASCII: escapes, surrogate included
    out = tmp_path / "merged.json"
    proc = cli("merge", path, *[p for p in shards["json"] if p != source], "-o", out)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x00" not in text and "\n|x|" not in text  # escaped
    merged = json.loads(text)
    assert hostile in {f["path"] for f in merged["findings"]}  # and kept as data
    assert "**bold** [link](javascript:x) \x00\x07" in {f["message"] for f in merged["findings"]}


def test_the_output_may_be_one_of_the_inputs(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """Every input is read before the output is written: the merge is whole."""
    parts = [dump(tmp_path / f"p{k}.json", load(p)) for k, p in enumerate(shards["json"])]
    proc = cli("merge", *parts, "-o", parts[0])
    assert proc.returncode == 0, proc.stderr
    assert finding_keys(load(parts[0])) == finding_keys(load(shards["full"]))


def test_many_errors_and_skipped_files_merge_in_linear_time(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    parts = []
    for k in (0, 1):
        data = _whole(load(shards["json"][k]))
        data["skipped"] = [{"path": f"s{k}/{i}", "reason": "ignored"} for i in range(30_000)]
        data["errors"] = [
            {"path": f"e{k}/{i}", "member": None, "message": "m", "analyzer": None,
             "internal": False}
            for i in range(30_000)
        ]  # fmt: skip
        parts.append(dump(tmp_path / f"many{k}.json", data))
    started = time.process_time()
    proc = _merge(cli, *parts)
    assert proc.returncode == 0, proc.stderr
    assert time.process_time() - started < 20  # quadratic: 3.6e9 comparisons, minutes
    summary = json.loads(proc.stdout)["summary"]
    assert (summary["skipped"], summary["errors"]) == (60_000, 60_000)


def test_an_internal_error_of_a_shard_makes_the_merge_incomplete(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """Whatever the shard's summary says, an internal error listed in it is exit 2."""
    data = load(shards["json"][0])
    data["errors"] = [{"path": ".", "member": None, "message": "internal error (KeyError)",
                       "analyzer": "pickle", "internal": True}]  # fmt: skip
    data["summary"]["incomplete"] = False
    path = dump(tmp_path / "broken.json", data)
    proc = _merge(cli, path, *shards["json"][1:])
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["summary"]["incomplete"] is True


def test_a_missing_shard_makes_the_merge_incomplete(shards: dict[str, Any], cli: Any) -> None:
    _refused(_merge(cli, *shards["json"][:3]), "shard 4/4 missing")
    _refused(_merge(cli, *shards["sarif"][1:]), "shard 1/4 missing")
    _refused(_merge(cli, *shards["json"], shards["json"][0]), "given twice")


def test_shards_merge_only_with_their_own_split(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    twice = load(shards["json"][1])
    twice["summary"]["shard"] = "1/4"  # another run of shard 1
    _refused(
        _merge(cli, shards["json"][0], dump(tmp_path / "again.json", twice), *shards["json"][2:]),
        "both shard 1/4",
    )
    other = load(shards["json"][3])
    other["summary"]["shard"] = "3/3"
    _refused(_merge(cli, *shards["json"][:3], dump(tmp_path / "of3.json", other)), "not one split")
    whole = _whole(load(shards["json"][3]))
    _refused(_merge(cli, *shards["json"][:3], dump(tmp_path / "whole.json", whole)), "whole scan")
    for bad in ("0/4", "5/4", "1/0", "a/b", "-1/4", 4):
        broken = load(shards["json"][0])
        broken["summary"]["shard"] = bad
        path = dump(tmp_path / "bad.json", broken)
        proc = _merge(cli, path, *shards["json"][1:])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_the_whole_set_of_shards_merges_into_a_report_of_the_whole_scan(
    shards: dict[str, Any], cli: Any
) -> None:
    proc = _merge(cli, *reversed(shards["json"]))
    assert "shard" not in json.loads(proc.stdout)["summary"]
    assert all(load(p)["summary"]["shard"].endswith("/4") for p in shards["json"])


def test_an_incomplete_sarif_shard_is_exit_2(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    data = load(shards["sarif"][0])
    data["runs"][0]["invocations"][0]["executionSuccessful"] = False
    path = dump(tmp_path / "broken.sarif", data)
    proc = _merge(cli, path, *shards["sarif"][1:])
    [run] = json.loads(proc.stdout)["runs"]
    assert run["invocations"][0]["executionSuccessful"] is False
    assert proc.returncode == 2


def test_the_merged_report_is_a_report_that_merges_again(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """The merge's output is valid against the report schema (a later merge, a baseline
    or another tool reads it), and merging it again changes nothing."""
    import jsonschema

    from tests.conftest import REPO

    out = tmp_path / "merged.json"
    assert cli("merge", *shards["json"], "-o", out).returncode == 0
    schema = json.loads((REPO / "schemas" / "mlsec-report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(load(out))
    again = json.loads(cli("merge", out).stdout)
    assert again == load(out)


def test_a_report_reusing_another_findings_fingerprint_does_not_replace_it(
    shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """A shard listing a finding on another file under a real finding's fingerprint (same
    severity: a tie) is listed beside it, not in its place, in either order."""
    source = next(p for p in shards["json"] if load(p)["findings"])
    real = _whole(load(source))
    target = next(f for f in real["findings"] if f["severity"] == "critical")
    forged = copy.deepcopy(real)
    forged["findings"] = [dict(target, path="elsewhere/decoy.pkl", message="decoy")]
    a = dump(tmp_path / "real.json", real)
    f = dump(tmp_path / "forged.json", forged)
    for order in ((f, a), (a, f)):
        merged = json.loads(_merge(cli, *order).stdout)
        paths = {x["path"] for x in merged["findings"] if x["fingerprint"] == target["fingerprint"]}
        assert paths == {target["path"], "elsewhere/decoy.pkl"}


@pytest.mark.parametrize(
    "shard",
    ["1/999999999", "2/" + "9" * 400, "1/" + "9" * 5000, "\u00b9/4", "1/\uff14", "0/4", "5/4",
     "1/4/4", "", 4, ["1/4"]],
    ids=["N-huge", "N-400-digits", "N-5000-digits", "superscript", "full-width", "zero",
         "K>N", "three", "empty", "number", "list"],
)  # fmt: skip
def test_a_hostile_shard_field_is_refused_quickly(
    shard: Any, shards: dict[str, Any], tmp_path: Path, cli: Any
) -> None:
    """What summary.shard says is the report's: a huge N was enumerated (9 GB and a hang for
    1/999999999), digits int() refuses were an internal error. In JSON and in SARIF."""
    started = time.process_time()
    data = load(shards["json"][0])
    data["summary"]["shard"] = shard
    proc = _merge(cli, dump(tmp_path / "s.json", data))
    assert proc.returncode == 2 and "internal error" not in proc.stderr, proc.stderr
    assert "s.json" in proc.stderr or "shard" in proc.stderr
    sarif = load(shards["sarif"][0])
    sarif["runs"][0]["properties"]["summary"]["shard"] = shard
    proc = _merge(cli, dump(tmp_path / "s.sarif", sarif))
    assert proc.returncode == 2 and "internal error" not in proc.stderr, proc.stderr
    assert time.process_time() - started < 10


def test_many_missing_shards_are_named_briefly(shards: dict[str, Any], cli: Any) -> None:
    data = load(shards["json"][0])
    data["summary"]["shard"] = "1/1000"
    proc = cli("merge", dump(shards["json"][0].parent / "of1000.json", data))
    assert proc.returncode == 2
    assert (
        "shard 2/1000, 3/1000, 4/1000, 5/1000, 6/1000, 7/1000, 8/1000, 9/1000 and 991 more "
        "missing" in proc.stderr
    )
