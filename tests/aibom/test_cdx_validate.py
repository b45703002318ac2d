"""mlsec's CycloneDX JSON validation (mlsec.render.cdx_validate) gives the verdicts of
cyclonedx-python-lib's JsonStrictValidator: on real BOMs, on BOMs broken in each way the
schema forbids that mlsec could plausibly produce, and on the IRI fast path."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.aibom.helpers import AIBOM_FIXTURES, FIXTURES, REAL, scan_report

Bom = dict[str, Any]


def _library(text: str, spec_version: str = "1.6") -> bool:
    schema = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6}[spec_version]
    return JsonStrictValidator(schema).validate_str(text) is None


def _mlsec(text: str, spec_version: str = "1.6") -> bool:
    from mlsec.render.cdx_validate import first_error

    return first_error(text, spec_version) is None


def _rendered(path: Path, spec_version: str = "1.6") -> Bom:
    from mlsec.render.cyclonedx import render_bom

    data: Bom = json.loads(render_bom(scan_report(path), spec_version=spec_version))
    return data


@pytest.fixture(scope="module")
def real_boms(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Bom]]:
    """BOMs of the committed fixtures: the synthetic folder, real public models, the demo."""
    folders = [AIBOM_FIXTURES / "hf-model", AIBOM_FIXTURES]
    folders += sorted(p for p in REAL.iterdir() if p.is_dir())
    folders.append(FIXTURES / "demo-repo")
    with pytest.MonkeyPatch.context() as patch:  # a hash cache of this module's own
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        patch.delenv("SOURCE_DATE_EPOCH", raising=False)
        return [(p.name, _rendered(p)) for p in folders]


def test_real_boms_are_valid_for_both(real_boms: list[tuple[str, Bom]]) -> None:
    assert len(real_boms) >= 5
    for name, bom in real_boms:
        text = json.dumps(bom)
        assert _library(text), name
        assert _mlsec(text), name


def _first_component(bom: Bom) -> Bom:
    """The first model component."""
    return next(c for c in bom["components"] if c["type"] == "machine-learning-model")


def _hashed(bom: Bom) -> Bom:
    """The first component, nested ones included, that carries hashes."""

    def walk(items: list[Bom]) -> list[Bom]:
        return [
            x
            for c in items
            for x in ([c] if c.get("hashes") else []) + walk(c.get("components", []))
        ]

    return walk(bom["components"])[0]


def _with_reference(bom: Bom, url: str) -> Bom:
    _first_component(bom).setdefault("externalReferences", []).append(
        {"type": "website", "url": url}
    )
    return bom


# Each: a change that makes the BOM invalid in a way the builder could plausibly produce.
BREAKAGES: dict[str, Callable[[Bom], object]] = {
    "unknown component type": lambda b: _first_component(b).update(type="model"),
    "component without name": lambda b: _first_component(b).pop("name"),
    "document without bomFormat": lambda b: b.pop("bomFormat"),
    "unknown property (strict schema)": lambda b: _first_component(b).update(madeUp=1),
    "unknown model card field": lambda b: _first_component(b).update(modelCard={"madeUp": 1}),
    "timestamp not a date-time": lambda b: b["metadata"].update(timestamp="2026-12-01 10:00"),
    "timestamp with a month 13": lambda b: b["metadata"].update(
        timestamp="2026-13-01T10:00:00+00:00"
    ),
    "empty bom-ref": lambda b: _first_component(b).update({"bom-ref": ""}),
    "hash not hex": lambda b: _hashed(b).update(hashes=[{"alg": "SHA-256", "content": "z" * 64}]),
    "unknown hash algorithm": lambda b: _hashed(b).update(
        hashes=[{"alg": "SHA-257", "content": "0" * 64}]
    ),
    "serial number not a UUID URN": lambda b: b.update(serialNumber="urn:uuid:0"),
    "URL with a space": lambda b: _with_reference(b, "https://huggingface.co/a b"),
    "URL with a quote": lambda b: _with_reference(b, 'https://example.com/"x"'),
    "non-ASCII URL with a space": lambda b: _with_reference(b, "https://例え.jp/パ ス"),
    "URL with a bad percent escape": lambda b: _with_reference(b, "https://e.com/%zz"),
    "URL of an unclosed IP literal": lambda b: _with_reference(b, "http://[::1/x"),
    "unknown reference type": lambda b: _first_component(b).update(
        externalReferences=[{"type": "homepage", "url": "https://example.com"}]
    ),
    "property without name": lambda b: _first_component(b).update(properties=[{"value": "x"}]),
    "dependency without ref": lambda b: b.update(dependencies=[{"dependsOn": []}]),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_breakage_fails_both_and_raises(
    real_boms: list[tuple[str, Bom]], breakage: str
) -> None:
    from mlsec.render.cyclonedx import InvalidBomError, _validate_json

    bom = copy.deepcopy(dict(real_boms)["hf-model"])
    BREAKAGES[breakage](bom)
    text = json.dumps(bom, ensure_ascii=False)
    assert not _library(text)
    assert not _mlsec(text)
    with pytest.raises(InvalidBomError, match="does not validate"):
        _validate_json(text, "1.6")


@pytest.mark.parametrize(
    "url",
    [
        "https://huggingface.co/org/name",
        "https://github.com/org/repo/tree/0123abc",
        "README.md",
        "hf-model/README.md",
        "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#ref",
        "https://例え.jp/パス",  # an IRI, not a URI: the grammar's path
        "http://[v7.x]/",
        "http://[::1]/",  # rfc3986 allows it, rfc3987-syntax does not: the library's verdict
        "mailto:a@b",
        "",
    ],
)
def test_reference_urls_get_the_librarys_verdict(
    real_boms: list[tuple[str, Bom]], url: str
) -> None:
    bom = _with_reference(copy.deepcopy(dict(real_boms)["hf-model"]), url)
    text = json.dumps(bom, ensure_ascii=False)
    assert _mlsec(text) == _library(text)


def test_spec_1_5_is_validated_against_its_own_schema(fixture_copy: Path) -> None:
    bom = _rendered(fixture_copy, "1.5")
    text = json.dumps(bom)
    assert _library(text, "1.5") and _mlsec(text, "1.5")
    # modelCard.considerations.environmentalConsiderations is 1.6 only.
    _first_component(bom)["modelCard"] = {"considerations": {"environmentalConsiderations": {}}}
    text = json.dumps(bom)
    assert not _library(text, "1.5") and not _mlsec(text, "1.5")
    assert _library(text, "1.6") == _mlsec(text, "1.6")


def test_the_fast_path_only_says_yes_where_the_iri_grammar_does() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from rfc3987_syntax import is_valid_syntax

    from mlsec.render.cdx_validate import _uri_reference_check

    fast = _uri_reference_check()
    assert fast is not None
    pieces = st.sampled_from(
        [*"aZ09-._~:/?#@!$&'()*+,;=% [\\]", "%41", "%zz", "http://", "//", "::", "é", "1.2.3.4"]
    )

    @settings(max_examples=1500, deadline=None, database=None)
    @given(st.lists(pieces, max_size=14).map("".join))
    def check(value: str) -> None:
        if fast(value):
            assert is_valid_syntax("iri_reference", value), value

    check()


def test_validating_leaves_the_iri_grammar_unbuilt_and_the_library_intact(
    tmp_path: Path,
) -> None:
    """In a fresh process: an ordinary BOM validates without building rfc3987-syntax's
    grammars, and the library's own validator, imported after, still checks IRIs with
    them."""
    from mlsec.render.cyclonedx import render_bom

    bom_file = tmp_path / "bom.json"
    bom_file.write_text(render_bom(scan_report(AIBOM_FIXTURES / "hf-model")), "utf-8")
    code = f"""
import json, sys
from pathlib import Path
from mlsec.render.cdx_validate import first_error
text = Path({str(bom_file)!r}).read_text("utf-8")
assert first_error(text, "1.6") is None
assert "rfc3987_syntax.syntax_helpers" not in sys.modules, "grammar built"
bom = json.loads(text)
bom["components"][0]["externalReferences"] = [{{"type": "website", "url": "https://例/ x"}}]
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None
assert "rfc3987_syntax.syntax_helpers" in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


BAD_LINKS = ["https://e.com/%zz", "a://b#c#d", "http://a:b:c/", "http://[::1]/x"]
# Kept, as the library writes them (spaces, quotes and brackets percent-encoded).
GOOD_LINKS = {
    "https://é.fr/ü": "https://é.fr/ü",
    "https://huggingface.co/org/x": "https://huggingface.co/org/x",
    "http://a b/c": "http://a%20b/c",
}


@pytest.mark.parametrize("link", BAD_LINKS)
def test_a_cards_bad_license_link_costs_the_link_not_the_bom(tmp_path: Path, link: str) -> None:
    folder = tmp_path / "repo" / "m"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(f'---\nlicense: other\nlicense_link: "{link}"\n---\n# m\n')
    (folder / "model.safetensors").write_bytes(
        (AIBOM_FIXTURES / "hf-model" / "model.safetensors").read_bytes()
    )
    bom = _rendered(tmp_path / "repo")
    model = _first_component(bom)
    assert model["licenses"] == [{"license": {"name": "other"}}]
    assert _library(json.dumps(bom))


@pytest.mark.parametrize("link", [*BAD_LINKS, *GOOD_LINKS])
def test_every_link_the_builder_writes_validates(tmp_path: Path, link: str) -> None:
    """Links from GGUF metadata, cards or git: written when the schema takes them, else
    left out; never an error for the whole BOM."""
    import dataclasses

    from mlsec.render.cyclonedx import render_bom

    report = scan_report(AIBOM_FIXTURES / "hf-model")
    facts = report.facts["aibom"]
    model = dataclasses.replace(facts.models[0], hub_url=link, license_url=link, card_path=link)
    facts = dataclasses.replace(facts, models=(model, *facts.models[1:]))
    text = render_bom(report._replace(facts={**report.facts, "aibom": facts}))
    assert _library(text)
    refs = [r["url"] for r in _first_component(json.loads(text)).get("externalReferences", [])]
    if link in BAD_LINKS:
        assert refs == []
    else:
        assert refs == [GOOD_LINKS[link]] * 2  # the model card and the website


# -- uniqueItems: a linear first pass before the library's pairwise check --------------------
def _array_validators() -> tuple[Any, Any]:
    from jsonschema import Draft7Validator
    from jsonschema.validators import extend

    from mlsec.render.cdx_validate import _unique_items_check

    schema = {"type": "array", "uniqueItems": True}
    library = Draft7Validator.VALIDATORS["uniqueItems"]
    faster = extend(Draft7Validator, {"uniqueItems": _unique_items_check(library)})
    return Draft7Validator(schema), faster(schema)


def test_unique_items_verdicts_and_errors_are_the_librarys() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    plain, faster = _array_validators()
    # Few distinct leaves, so duplicates are common: True and 1, 1 and 1.0, 0 and False,
    # objects whose members come in another order, arrays in another order.
    leaves = st.sampled_from([True, False, 0, 1, 1.0, 0.0, -0.0, 2.5, "1", "", "a", None])
    values = st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["a", "b", "1"]), inner, max_size=3)
        ),
        max_leaves=6,
    )

    @settings(max_examples=1500, deadline=None, database=None)
    @given(st.lists(values, max_size=6))
    def check(items: list[Any]) -> None:
        expected = [e.message for e in plain.iter_errors(items)]
        assert [e.message for e in faster.iter_errors(items)] == expected, items

    check()
    # Reordered members are the same object; reordered items are another array.
    assert not faster.is_valid([{"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1.0}])
    assert faster.is_valid([{"a": [1, 2]}, {"a": [2, 1]}])
    assert faster.is_valid([True, 1, False, 0, [True], [1]])
    nan = float("nan")
    assert faster.is_valid([nan, float("nan")]) == plain.is_valid([nan, float("nan")])
    assert faster.is_valid([nan, nan]) == plain.is_valid([nan, nan])


def test_distinct_components_skip_the_pairwise_check() -> None:
    from mlsec.render.cdx_validate import _unique_items_check

    calls: list[int] = []

    def pairwise(validator: Any, unique: Any, instance: Any, schema: Any) -> Any:
        calls.append(len(instance))
        yield from ()

    check = _unique_items_check(pairwise)
    components = [
        {"type": "file", "name": f"m{i}", "hashes": [{"alg": "SHA-256"}]} for i in range(3000)
    ]
    assert list(check(None, True, components, {})) == []
    assert calls == []  # 4.5 M comparisons not made
    assert list(check(None, True, [*components, dict(components[7])], {})) == []
    assert calls == [3001]  # a duplicate: the library's check, and its error, decide


def test_a_bom_with_a_duplicate_component_is_still_refused(
    real_boms: list[tuple[str, Bom]],
) -> None:
    bom = copy.deepcopy(dict(real_boms)["hf-model"])
    bom["components"].append(copy.deepcopy(bom["components"][0]))
    text = json.dumps(bom)
    assert not _library(text)
    from mlsec.render.cdx_validate import first_error

    error = first_error(text, "1.6")
    assert error is not None and "has non-unique elements" in error


FORMAT_SAMPLES = [
    ("hostname", ["example.com", "-bad-.com", "", "a" * 300, "x"]),
    ("idn-hostname", ["bücher.de", "xn--", "a..b", "\u0000", "ex ample"]),
    ("color", ["red", "#fff", "#ggg", "notacolor"]),
    ("json-pointer", ["/a/b", "a/b", "/~2", ""]),
    ("relative-json-pointer", ["0/a", "1#", "01/a", "x"]),
    ("uri-template", ["http://x/{a}", "http://x/{a", "{+path}"]),
    ("duration", ["P1D", "P1", "PT1H", "bogus"]),
    ("iri-reference", ["https://é.fr/ü", "http://[::1]/", "a b", "%zz"]),
    ("date-time", ["2026-12-01T12:00:00Z", "2026-13-01T00:00:00Z"]),
]


def test_deferred_format_modules_give_the_same_verdicts_and_load_only_when_used() -> None:
    """In fresh processes: jsonschema imported mlsec's way (each optional format module a
    stand-in until its first check) and imported plainly give the same verdict on every
    format those modules serve, and mlsec's way imports none of them for a BOM."""
    verdicts = f"""
import json
from jsonschema import FormatChecker
checker = FormatChecker()
print(json.dumps([[f, v, checker.conforms(v, f)] for f, vs in {FORMAT_SAMPLES!r} for v in vs]))
"""
    deferred = f"""
import sys
from mlsec.render.cdx_validate import _DEFERRED, _import_jsonschema
_import_jsonschema()
loaded = [name for name in _DEFERRED if name in sys.modules]
assert loaded == [], loaded
{verdicts}
"""
    outs = []
    for code in (deferred, "import jsonschema\n" + verdicts):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        outs.append(json.loads(out.stdout))
    assert outs[0] == outs[1]
    assert any(not ok for _, _, ok in outs[1]) and any(ok for _, _, ok in outs[1])
