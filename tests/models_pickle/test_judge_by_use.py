"""Globals judged by name AND use: called, constructed, modified, handed to helpers, data.

Every hostile sample is written opcode by opcode here (never loaded, never shipped).
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest

from mlsec.analyzers.pickle_judge import MemberImports, judge
from mlsec.analyzers.pickle_policy import PicklePolicy, Tier
from mlsec.formats.pickle import run_pickle
from mlsec.formats.streams import Budget, ByteReader

from .conftest import evil, hits, scan_path

REPO = Path(__file__).resolve().parents[2]
EVIDENCE = REPO / "fixtures" / "pickle_evidence"


def u(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def g(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 text form)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def p2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def call1(func: bytes, arg: bytes) -> bytes:
    return func + arg + b"\x85R"  # func, arg, TUPLE1, REDUCE


def judged(data: bytes) -> set[tuple[str, str]]:
    """(rule, key) pairs the judge makes for one in-memory pickle."""
    budget = Budget(timeout=10, max_ops=10**6, max_uncompressed=10**9, max_ratio=100)
    res = run_pickle(ByteReader(io.BytesIO(data), len(data)), budget)
    assert res.error is None, res.error
    acc = MemberImports(None)
    acc.add(res)
    return {(j.rule_id, j.key) for j in judge(acc, PicklePolicy.load()).findings}


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch.storage", "_load_from_bytes"),
        ("torch", "load"),
        ("numpy", "load"),
        ("pandas", "read_pickle"),
        ("importlib", "import_module"),
        ("pydoc", "locate"),
        ("operator", "attrgetter"),
        ("threading", "Thread"),
        ("transformers.AutoModel", "from_pretrained"),
        ("sklearn.externals.joblib", "load"),
        ("numpy.core", "_ufunc_reconstruct"),
    ],
)
def test_critical_callables_inside_ml_libraries(scan_file, module: str, name: str) -> None:
    # Called on a value the machine cannot evaluate (a call result): nothing is modelled.
    arg = call1(g("collections", "OrderedDict"), b")")
    report = scan_file("c.pkl", p2(call1(g(module, name), arg)))
    assert ("MLS101", "critical", "c.pkl", None) in hits(report), report.findings


def test_load_from_bytes_on_constant_bytes_is_scanned_as_a_member(scan_file) -> None:
    inner = evil("echo storage")
    data = p2(call1(g("torch.storage", "_load_from_bytes"), b"C" + bytes([len(inner)]) + inner))
    report = scan_file("t.pkl", data)
    member = "<torch.storage._load_from_bytes payload 1>"
    assert hits(report) == {
        ("MLS101", "critical", "t.pkl", member),
        ("MLS102", "info", "t.pkl", None),
    }


def test_benign_pickled_tensor_is_not_high() -> None:
    report = scan_path(EVIDENCE / "samples" / "torch_pickled_tensor.pkl")
    assert not [f for f in report.findings if f.severity.rank >= 3], report.findings


@pytest.mark.parametrize(
    ("helper", "position_args"),
    [
        (("_functools", "reduce"), lambda f: f + b"]\x86"),
        (("builtins", "map"), lambda f: f + b"]\x86"),
        (("__builtin__", "filter"), lambda f: f + b"]\x86"),
        (("collections", "defaultdict"), lambda f: f + b"\x85"),
        (("copyreg", "_reconstructor"), lambda f: g("builtins", "object") + f + b"N\x87"),
    ],
)
def test_callable_handed_to_a_calling_helper_is_judged_as_called(
    scan_file, helper, position_args
) -> None:
    func = g("mypkg.hooks", "run")
    body = g(*helper) + position_args(func) + b"R"
    report = scan_file("h.pkl", p2(body))
    assert ("MLS104", "high", "h.pkl", None) in hits(report), report.findings
    high = next(f for f in report.findings if f.rule_id == "MLS104")
    assert high.key == "mypkg.hooks.run"
    assert "which calls it" in high.message


def test_partial_of_an_unlisted_function_never_called_is_not_high(scan_file) -> None:
    # gensim's TfidfModel keeps functools.partial(smartirs_wlocal, ...): stored, not called.
    body = call1(g("functools", "partial"), g("mypkg.weights", "smartirs_wlocal"))
    report = scan_file("tfidf.pkl", p2(body))
    assert not {sev for _, sev, _, _ in hits(report)} & {"critical", "high"}, report.findings
    # ...but calling the partial while loading is a computed callee: high
    report = scan_file("called.pkl", p2(body + b"(" + u("x") + b"tR"))
    assert ("MLS104", "high", "called.pkl", None) in hits(report), report.findings


def test_partial_of_a_critical_callable_is_critical(scan_file) -> None:
    body = call1(g("functools", "partial"), g("os", "system")) + b"(" + u("echo p") + b"tR"
    report = scan_file("p.pkl", p2(body))
    assert ("MLS101", "critical", "p.pkl", None) in hits(report)


def test_computed_callee_is_high(scan_file) -> None:
    # REDUCE on the result of another REDUCE: the callee exists only at load time.
    body = call1(g("collections", "OrderedDict"), b")") + b"(" + u("x") + b"tR"
    report = scan_file("cc.pkl", p2(body))
    assert ("MLS104", "high", "cc.pkl", None) in hits(report)
    assert next(f for f in report.findings if f.rule_id == "MLS104").key == "computed-callee"


def test_partial_of_a_listed_callable_called_later_is_not_high(scan_file) -> None:
    # defaultdict(partial(defaultdict, list)): a computed callable proved to be listed.
    inner = g("functools", "partial") + g("collections", "defaultdict") + b"\x85R"
    inner += b"(" + g("collections", "defaultdict") + b")}N" + b"tb"  # partial's state
    inner = inner.replace(b")}N", g("builtins", "list") + b"\x85}N")
    body = g("collections", "defaultdict") + inner + b"\x85R"
    report = scan_file("dd.pkl", p2(body))
    assert not [f for f in report.findings if f.severity.rank >= 2], report.findings


def test_computed_callable_handed_to_a_calling_helper_is_high(scan_file) -> None:
    made = call1(g("collections", "OrderedDict"), b")")
    body = g("collections", "defaultdict") + made + b"\x85R"
    report = scan_file("dh.pkl", p2(body))
    found = [f for f in report.findings if f.rule_id == "MLS104"]
    assert [(f.severity.value, f.key) for f in found] == [
        ("high", "computed-argument:collections.defaultdict")
    ]


def test_getattr_on_a_constant_is_judged_as_the_dotted_import(scan_file) -> None:
    lookup = g("builtins", "getattr") + g("zoneinfo", "ZoneInfo") + u("_unpickle") + b"\x86R"
    benign = p2(lookup + b"(" + u("UTC") + b"K\x01tR")
    report = scan_file("zi.pkl", benign)
    assert hits(report) == {("MLS102", "info", "zi.pkl", None)}
    lookup = g("builtins", "getattr") + g("mypkg", "Tool") + u("run") + b"\x86R"
    report = scan_file("ga.pkl", p2(lookup + b"(" + u("x") + b"tR"))
    high = [
        (f.rule_id, f.key)
        for f in report.findings
        if f.severity.rank >= 3 and f.source == "mlsec" and f.path == "ga.pkl"
    ]
    assert high == [("MLS104", "mypkg.Tool.run")]
    # a bound method of a computed object: not critical by itself, calling it is high
    obj = call1(g("collections", "OrderedDict"), b")")
    method = g("builtins", "getattr") + obj + u("pop") + b"\x86R"
    report = scan_file("gm.pkl", p2(b"]" + method + b"a"))
    assert {h for h in hits(report) if h[2] == "gm.pkl"} == {("MLS102", "info", "gm.pkl", None)}
    report = scan_file("gc.pkl", p2(method + b"(" + u("k") + b"tR"))
    assert ("MLS104", "high", "gc.pkl", None) in hits(report)
    # a private or dunder attribute of a computed object stays critical
    dunder = g("builtins", "getattr") + obj + u("__class__") + b"\x86R"
    report = scan_file("gd.pkl", p2(dunder))
    assert ("MLS101", "critical", "gd.pkl", None) in hits(report)


def test_old_numpy_ufunc_lookup_reaches_os_system(scan_file) -> None:
    lookup = g("numpy.core", "_ufunc_reconstruct") + u("posix") + u("system") + b"\x86R"
    report = scan_file("uf.pkl", p2(lookup + b"(" + u("echo u") + b"tR"))
    critical = [f for f in report.findings if f.rule_id == "MLS101"]
    assert [(f.severity.value, f.key) for f in critical] == [("critical", "posix.system")]


def test_modifying_an_imported_object_is_high(scan_file) -> None:
    # BUILD on an imported class (setattr on it), SETITEM on an imported dict
    patch = g("torch", "Tensor") + b"N}" + u("__reduce_ex__") + u("x") + b"s\x86b"
    report = scan_file("mb.pkl", p2(patch))
    assert ("MLS110", "high", "mb.pkl", None) in hits(report)
    patch = g("mypkg.settings", "CONFIG") + u("verify") + b"\x89s"
    report = scan_file("ms.pkl", p2(patch))
    assert ("MLS110", "high", "ms.pkl", None) in hits(report)


def test_function_only_referenced_is_low(scan_file) -> None:
    body = b"}" + u("score_func") + g("mypkg.metrics", "f1") + b"s"
    report = scan_file("ref.pkl", p2(body))
    assert hits(report) == {
        ("MLS109", "low", "ref.pkl", None),
        ("MLS102", "info", "ref.pkl", None),
    }


def test_listed_as_data_but_called_is_high(scan_file) -> None:
    report = scan_file("dt.pkl", p2(call1(g("torch", "float32"), b"K\x01")))
    found = [f for f in report.findings if f.rule_id == "MLS104"]
    assert [(f.severity.value, f.key) for f in found] == [("high", "torch.float32")]
    assert "listed only as data" in found[0].message


def test_unlisted_class_called_is_high_constructed_is_medium(scan_file) -> None:
    called = p2(call1(g("mypkg.models", "Net"), b"K\x01"))
    report = scan_file("call.pkl", called)
    assert ("MLS104", "high", "call.pkl", None) in hits(report)
    built = p2(g("mypkg.models", "Net") + b")\x81}" + u("w") + b"K\x01sb")
    report = scan_file("built.pkl", built)
    assert {h for h in hits(report) if h[2] == "built.pkl"} == {
        ("MLS108", "medium", "built.pkl", None),
        ("MLS102", "info", "built.pkl", None),
    }
    message = next(f.message for f in report.findings if f.rule_id == "MLS108")
    assert "trusted" in message and "mypkg.models.Net" in message


def test_old_vendored_joblib_array_wrapper(scan_file) -> None:
    import joblib
    import numpy as np

    out = io.BytesIO()
    joblib.dump({"w": np.arange(64, dtype=np.float64)}, out, protocol=2)
    data = out.getvalue()
    assert b"cjoblib.numpy_pickle\n" in data
    old = data.replace(b"cjoblib.numpy_pickle\n", b"csklearn.externals.joblib.numpy_pickle\n")
    report = scan_file("old.pkl", old)
    assert hits(report) == {("MLS102", "info", "old.pkl", None)}, report.findings
    assert [f.format for f in report.facts["models"].files] == ["joblib"]


def test_no_wildcards_outside_the_critical_tier() -> None:
    import tomllib

    data = tomllib.loads((REPO / "rules" / "lists" / "pickle_globals.toml").read_text())
    for tier in ("safe", "ml"):
        for entry in data[tier]:
            assert entry["reason"]
            assert entry["use"] in ("call", "construct", "data")
            assert not any("*" in name for name in entry.get("globals", [])), entry


def test_evidence_is_covered_by_the_list() -> None:
    """Every global real benign files use is allowed for that use (except __main__ classes)."""
    policy = PicklePolicy.load()
    evidence = json.loads((EVIDENCE / "evidence.json").read_text())
    assert len(evidence["files"]) >= 40
    uncovered = []
    for qualname, entry in evidence["globals"].items():
        module, _, name = qualname.rpartition(".")
        verdict = policy.classify(module, name)
        assert verdict.tier is not Tier.CRITICAL or qualname in policy.lookups | policy.loaders
        if qualname.startswith("__main__."):
            continue
        uses = set(entry["uses"])
        level = 2 if "call" in uses else 1 if uses & {"construct", "state"} else 0
        for passed in entry["passed_to"]:
            callee, _, position = passed.rpartition("@")
            if int(position) in policy.helper_calls.get(callee, ()):
                level = 2
            elif int(position) in policy.helper_constructs.get(callee, ()):
                level = max(level, 1)
        if verdict.tier is Tier.CRITICAL:
            continue
        if verdict.tier not in (Tier.SAFE, Tier.ML) or verdict.level < level:
            uncovered.append((qualname, level, verdict))
    assert not uncovered, uncovered


def test_real_benign_samples_stay_below_high() -> None:
    report = scan_path(EVIDENCE / "samples")
    assert not report.errors
    assert len({f.path for f in report.findings}) >= 12
    loud = [f for f in report.findings if f.severity.rank >= 3]
    assert not loud, loud
    assert not [f for f in report.findings if f.rule_id in ("MLS100", "MLS105", "MLS111", "MLS904")]


def test_second_pickle_after_stop_is_full_severity(scan_file) -> None:
    data = pickle.dumps({"a": 1}, protocol=4) + evil("echo two")
    report = scan_file("two.pkl", data)
    assert ("MLS101", "critical", "two.pkl", None) in hits(report)


def test_unpickler_on_constant_bytes_is_scanned_as_a_member(scan_file) -> None:
    inner = evil("echo unpickler")
    stream = call1(g("_io", "BytesIO"), b"C" + bytes([len(inner)]) + inner)
    unpickler = call1(g("pickle", "Unpickler"), stream)
    load = g("builtins", "getattr") + unpickler + u("load") + b"\x86R)R"
    report = scan_file("up.pkl", p2(load))
    found = hits(report)
    assert ("MLS101", "critical", "up.pkl", "<pickle.Unpickler payload 1>") in found
    assert ("MLS101", "critical", "up.pkl", None) in found  # Unpickler and getattr themselves


def test_payload_before_a_limit_is_still_reported(scan_file) -> None:
    from mlsec.config import Limits

    # os.system first, then more opcodes than the limit allows: both findings
    data = b"\x80\x02" + g("os", "system") + b"0" + b"N0" * 20_000 + b"N."
    report = scan_file("lim.pkl", data, limits=Limits(max_pickle_ops=10_000))
    found = hits(report)
    assert ("MLS101", "critical", "lim.pkl", None) in found
    assert ("MLS904", "medium", "lim.pkl", None) in found
    # a stack deeper than the machine keeps: not corruption, a limit (the unpickler goes on)
    deep = b"\x80\x02" + g("os", "system") + b"N" * 1_100_000 + b"."
    report = scan_file("deep.pkl", deep)
    found = {h for h in hits(report) if h[2] == "deep.pkl"}
    assert ("MLS101", "critical", "deep.pkl", None) in found
    assert ("MLS904", "medium", "deep.pkl", None) in found
    assert not [f for f in report.findings if f.rule_id == "MLS100"]


def test_modules_and_dunders_reached_as_attributes(scan_file) -> None:
    # collections imports sys: GLOBAL collections.sys is the sys module itself
    report = scan_file("ms.pkl", p2(g("collections", "sys") + b"0N"))
    assert ("MLS101", "critical", "ms.pkl", None) in hits(report)
    # a module's __builtins__ holds eval: judged as builtins
    lookup = g("builtins", "getattr") + g("collections", "__builtins__") + u("eval") + b"\x86R"
    report = scan_file("mb.pkl", p2(lookup))
    assert ("MLS101", "critical", "mb.pkl", None) in hits(report)
    # an unlisted dunder, even only referenced, is high
    report = scan_file("md.pkl", p2(b"]" + g("mypkg", "__dict__") + b"a"))
    assert ("MLS104", "high", "md.pkl", None) in hits(report)
