"""Text from scanned files is data in every format: hostile names and messages render
literally, never as markup, links, mentions, terminal controls or invalid JSON."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
from markdown_it import MarkdownIt

from mlsec.render import render
from mlsec.render.escape import json_text, markdown, sarif_message, terminal, uri_path
from mlsec.report import ScanReport

from .conftest import HOSTILE

REPO = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = json.loads((REPO / "fixtures" / "schemas" / "sarif-schema-2.1.0.json").read_text())
# What must never reach a terminal raw: C0/C1 controls but newline, bidi, zero-width, BOM.
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def test_terminal_escapes_are_visible() -> None:
    assert terminal("a\x1b[31mb") == "a\\x1b[31mb"
    assert terminal("x\u202ey") == "x\\u202ey"
    assert terminal("n\udcffm") == "n\\xffm"  # the undecodable byte itself
    assert terminal("cr\r\n\t") == "cr\\r\\n\\t"
    assert terminal("\U000e0041tag") == "\\U000e0041tag"
    assert terminal("plain [b]text[/b] ünïcode 模型") == "plain [b]text[/b] ünïcode 模型"


@pytest.mark.parametrize("color", [False, True])
def test_table_renders_hostile_text_literally(hostile_report: ScanReport, color: bool) -> None:
    out = render(hostile_report, "table", color=color, width=400)
    plain = re.sub("\x1b\\[[0-9;]*m", "", out)  # rich's own colours, when asked for
    assert not RAW_CONTROL.search(plain)
    assert "\x1b]8" not in out  # no OSC 8 hyperlink from [link=...]
    for literal in (
        "models/[/close].pkl",
        'os.system("[/bad]")',
        "[link=https://evil.example/]harmless[/link]",
        "\\x1b]8;;https://evil.example/\\x1b\\click",
        "bidi \\u202egnp.lave\\u202c",
        "undecodable-\\xff\\xfe.pkl",
        "zero\\u200bwidth\\u200d\\ufeff",
    ):
        assert literal in plain, literal
    assert plain.count("MLS101") == len(HOSTILE)


def test_table_build_survives_markup_in_every_field(hostile_report: ScanReport) -> None:
    from rich.console import Console

    from mlsec.render.table import build

    console = Console(record=True, width=300, force_terminal=True, file=io.StringIO())
    console.print(build(hostile_report, verbose=True))
    assert "[/close].pkl" in console.export_text()


def _html(markdown_text: str) -> str:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown_text)


def test_markdown_neutralises_html_links_mentions_and_tables(hostile_report: ScanReport) -> None:
    out = render(hostile_report, "markdown")
    assert not RAW_CONTROL.search(out.replace("\u2060", ""))
    html = _html(out)
    assert "<img" not in html and "<a " not in html and "<code>" in html  # rule ids only
    assert html.count("<details>") == 2  # ours: errors and skipped
    assert "<details open>" not in html and "<summary>hidden" not in html
    # Each findings row keeps its four cells: no pipe from a name splits one.
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    body = [r for r in rows if "MLS101" in r]
    assert len(body) == len(HOSTILE)
    assert all(r.count("<td>") == 4 for r in body)
    # GitHub's own autolinks: no @mention, e-mail, #reference, scheme:// or www. survives.
    text = out
    assert not re.search(r"@[A-Za-z0-9]", text)
    assert not re.search(r"#\d", text)
    assert "://" not in text and "www." not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown, as text


def test_markdown_escape_round_trips_to_the_literal_text() -> None:
    for text in HOSTILE:
        html = _html(markdown(text))
        assert "<a " not in html and "<img" not in html and "<em>" not in html
        shown = MarkdownIt("commonmark").parseInline(markdown(text))[0].children or []
        literal = "".join(t.content for t in shown if t.type == "text")
        assert literal.replace("\u2060", "") == terminal(text), text


def _strict_strings(value: object) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate
    elif isinstance(value, dict):
        for k, v in value.items():
            _strict_strings(k)
            _strict_strings(v)
    elif isinstance(value, list):
        for v in value:
            _strict_strings(v)


def test_json_stays_valid_for_strict_parsers(hostile_report: ScanReport) -> None:
    out = render(hostile_report, "json")
    data = json.loads(out)
    _strict_strings(data)
    assert "\\ud" not in out.lower()  # no surrogate escapes for strict parsers to reject
    paths = [f["path"] for f in data["findings"]]
    assert "models/undecodable-\\xff\\xfe.pkl" in paths
    # JSON keeps the text itself (it is data): controls are JSON escapes, markup untouched.
    assert "models/\x1b[2J\x1b[31mred" in paths and "models/[/close].pkl" in paths


def test_sarif_stays_valid_and_links_nothing(hostile_report: ScanReport) -> None:
    out = render(hostile_report, "sarif")
    data = json.loads(out)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(data)
    _strict_strings(data)
    results = data["runs"][0]["results"]
    assert len(results) == len(HOSTILE)
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert "models/undecodable-%FF%FE.pkl" in uris
    assert "models/%5B/close%5D.pkl" in uris
    for result in results:
        text = result["message"]["text"]
        assert not RAW_CONTROL.search(text)
        assert not re.search(r"(?<!\\)[\[\]]", text)  # brackets escaped: no embedded links
    notes = data["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == len(HOSTILE)
    assert all(not RAW_CONTROL.search(n["message"]["text"]) for n in notes)


def test_units() -> None:
    assert sarif_message("see [x](1)") == "see \\[x\\](1)"
    assert json_text("a\udcffb\ud800") == "a\\xffb\\ud800"
    assert uri_path("my model.bin") == "my%20model.bin"
    assert uri_path("a:b/c#d?e%f") == "a%3Ab/c%23d%3Fe%25f"
    assert uri_path("n\udcff") == "n%FF"
    assert uri_path("模型.bin") == "%E6%A8%A1%E5%9E%8B.bin"


def test_hostile_names_and_pickle_strings_through_the_cli(tmp_path: Path, cli) -> None:
    """End to end: real files whose names and pickled arguments are markup, terminal
    controls and undecodable bytes; every format renders them as text."""
    import os
    import pickle

    class Evil:
        def __init__(self, argument: str) -> None:
            self.argument = argument

        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (self.argument,))

    names = [
        b"[/close].pkl",
        b"[link=https://evil.example/]x.pkl",
        b"esc\x1b]8;;x\x07.pkl",
        b"bidi\xe2\x80\xaegnp.pkl",
        b"undecodable\xff.pkl",
        b"<img src=x>@octocat.pkl",
    ]
    for i, name in enumerate(names):
        argument = ["[/bad]", "\x1b]8;;https://evil.example/\x1b\\hi", "<details>", "@octocat"][
            i % 4
        ]
        target = os.path.join(os.fsencode(tmp_path), name)
        os.makedirs(os.path.dirname(target), exist_ok=True)  # "[/close].pkl": a folder "["
        with open(target, "wb") as handle:
            handle.write(pickle.dumps(Evil(argument), protocol=4))
    table = cli("scan", tmp_path)
    assert table.returncode == 1, table.stderr
    assert not RAW_CONTROL.search(table.stdout)
    assert "[/close].pkl" in table.stdout and "[/bad]" in table.stdout
    assert "undecodable\\xff.pkl" in table.stdout and "bidi\\u202egnp.pkl" in table.stdout
    assert table.stdout.count("MLS101") == len(names)
    markdown_out = cli("scan", tmp_path, "--format", "markdown")
    assert markdown_out.returncode == 1, markdown_out.stderr
    html = _html(markdown_out.stdout)
    assert "<img" not in html and "<details>" not in html.replace("<details><summary>", "")
    assert not re.search(r"@[A-Za-z0-9]", markdown_out.stdout)
    for fmt in ("json", "sarif"):
        proc = cli("scan", tmp_path, "--format", fmt)
        assert proc.returncode == 1, proc.stderr
        proc.stdout.encode("utf-8")
        _strict_strings(json.loads(proc.stdout))
    sarif = json.loads(cli("scan", tmp_path, "--format", "sarif").stdout)
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }
    # %FF once the walker keeps undecodable names as they are (today it reports "\xff" text)
    assert any(u.endswith(("undecodable%FF.pkl", "undecodable%5Cxff.pkl")) for u in uris), uris
    assert "esc%1B%5D8%3B%3Bx%07.pkl" in uris and "bidi%E2%80%AEgnp.pkl" in uris
    assert any(u.endswith("%5B/close%5D.pkl") for u in uris), uris
