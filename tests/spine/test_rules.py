"""Rule data: every rule file is complete and valid; bad rule files are rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.errors import RuleError
from mlsec.rules import load_rules, parse_rule, rules_dir

GOOD = {
    "id": "MLS150",
    "name": "x",
    "severity": "high",
    "title": "T",
    "description": "D",
    "remediation": "R",
    "references": ["https://example.org"],
}


def test_every_rule_is_complete() -> None:
    rules = load_rules()
    assert len(rules) >= 5
    for rule_id, rule in rules.items():
        assert rule.id == rule_id
        assert rule.title and rule.description and rule.remediation and rule.references
        assert rule.topic
        assert all(r.startswith("https://") for r in rule.references)


def test_rule_names_are_unique() -> None:
    names = [r.name for r in load_rules().values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("missing", ["id", "severity", "description", "remediation", "references"])
def test_rule_without_required_field_is_an_error(missing: str) -> None:
    data = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(RuleError, match=missing):
        parse_rule(data, "MLS150.toml")


def test_bad_severity_and_id() -> None:
    with pytest.raises(RuleError, match="unknown severity"):
        parse_rule({**GOOD, "severity": "urgent"}, "f")
    with pytest.raises(RuleError, match="not of the form"):
        parse_rule({**GOOD, "id": "MLS5"}, "f")
    with pytest.raises(RuleError, match="unknown keys"):
        parse_rule({**GOOD, "colour": "red"}, "f")


def test_file_name_must_match_id(tmp_path: Path) -> None:
    import json

    # JSON string and list literals are valid TOML values.
    (tmp_path / "MLS151.toml").write_text(
        "\n".join(f"{k} = {json.dumps(v)}" for k, v in GOOD.items())
    )
    with pytest.raises(RuleError, match=r"name it MLS150\.toml"):
        list(load_rules.__wrapped__(tmp_path).values())


def test_rules_dir_is_the_source_rules_in_a_checkout() -> None:
    assert (rules_dir() / "MLS101.toml").is_file()
