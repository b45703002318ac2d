"""The static opcode machine: every protocol, memo/stack tricks, dotted names, streams."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import time

import pytest

from mlsec.formats.pickle import render, run_pickle
from mlsec.formats.streams import Budget, ByteReader

from .conftest import Reduce, benign, evil, hits, stack_global


def _budget() -> Budget:
    return Budget(timeout=30, max_ops=10**7, max_uncompressed=10**10, max_ratio=200)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_os_system_found_in_every_protocol(scan_file, protocol: int) -> None:
    report = scan_file("model.pkl", evil("echo p", protocol))
    critical = [f for f in report.findings if f.rule_id == "MLS101"]
    assert [(f.severity.value, f.path, f.member) for f in critical] == [
        ("critical", "model.pkl", None)
    ]
    finding = critical[0]
    assert "system('echo p')" in finding.message  # pseudo-Python rendering
    assert "loads os.system" in finding.message  # posix -> os alias resolved
    assert finding.offset is not None and finding.offset > 0
    assert finding.key == "posix.system"


def test_names_through_memo_get_dup_pop(scan_file) -> None:
    # STACK_GLOBAL operands memoized, popped, duplicated and fetched back with BINGET.
    payload = (
        b"\x80\x04"
        b"\x8c\x02os\x94"  # 'os' -> memo 0
        b"\x8c\x06system\x94"  # 'system' -> memo 1
        b"0"  # POP
        b"0"  # POP
        b"\x8c\x05decoy2"  # push, DUP, then POP both
        b"00"
        b"h\x00h\x01"  # BINGET 0, BINGET 1
        b"\x93"  # STACK_GLOBAL -> os.system
        b"\x8c\x06echo m\x85R."
    )
    assert pickle.loads.__name__  # (the stdlib accepts this program; we never run it)
    report = scan_file("memo.pkl", payload)
    assert ("MLS101", "critical", "memo.pkl", None) in hits(report)
    assert any("os.system('echo m')" in f.message for f in report.findings)


def test_global_via_put_get_protocol0(scan_file) -> None:
    payload = b"cos\nsystem\np0\n0g0\n(S'echo g'\ntR."
    report = scan_file("p0.pkl", payload)
    assert ("MLS101", "critical", "p0.pkl", None) in hits(report)


def test_inst_and_obj_targets(scan_file) -> None:
    inst = b"(S'echo i'\nios\nsystem\n."
    obj = b"\x80\x02(csubprocess\ncheck_output\nX\x06\x00\x00\x00echo oo."
    report = scan_file("inst.pkl", inst)
    assert ("MLS101", "critical", "inst.pkl", None) in hits(report)
    report = scan_file("obj.pkl", obj)
    assert ("MLS101", "critical", "obj.pkl", None) in hits(report)
    assert any("subprocess.check_output('echo o')" in f.message for f in report.findings)


def test_newobj_target_unknown_class_is_medium(scan_file) -> None:
    # Only constructed (cls.__new__), never called: MLS108, not MLS104.
    payload = b"\x80\x02c__main__\nBackdoor\n)\x81."
    report = scan_file("newobj.pkl", payload)
    assert ("MLS108", "medium", "newobj.pkl", None) in hits(report)
    assert not [f for f in report.findings if f.severity.rank >= 3]


def test_dotted_name_attribute_walk_reaches_os(scan_file) -> None:
    # Protocol 4 resolves "path.os.system" by attribute walking from an innocent module.
    report = scan_file("dotted.pkl", stack_global("collections", "abc.os.system", "echo d"))
    assert ("MLS101", "critical", "dotted.pkl", None) in hits(report)
    # A dotted name under an allowlisted module is not vouched for by a wildcard entry.
    report = scan_file("dotted2.pkl", stack_global("torch", "_utils.helper.run", "x"))
    assert ("MLS104", "high", "dotted2.pkl", None) in hits(report)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("__builtin__", "eval"),  # Python 2 name mapped by the unpickler
        ("builtins", "exec"),
        ("nt", "system"),
        ("posix", "popen"),
        ("commands", "getoutput"),  # Python 2 -> subprocess
        ("_operator", "methodcaller"),
        ("_io", "open"),
        ("runpy", "run_path"),
        ("importlib", "import_module"),
        ("socket", "create_connection"),
        ("webbrowser", "open"),
        ("shutil", "rmtree"),
        ("ctypes", "CDLL"),
        ("marshal", "loads"),
        ("dill", "loads"),
        ("builtins", "getattr"),
    ],
)
def test_code_running_callables_are_critical(scan_file, module: str, name: str) -> None:
    report = scan_file("c.pkl", stack_global(module, name))
    assert ("MLS101", "critical", "c.pkl", None) in hits(report), report.findings


def test_ext_code_is_unresolved_high(scan_file) -> None:
    report = scan_file("ext.pkl", b"\x80\x02\x82\x07)R.")
    assert ("MLS104", "high", "ext.pkl", None) in hits(report)


def test_computed_stack_global_is_high(scan_file) -> None:
    # STACK_GLOBAL whose module is not a string constant (a tuple).
    report = scan_file("computed.pkl", b"\x80\x04)\x8c\x01x\x93)R.")
    assert ("MLS104", "high", "computed.pkl", None) in hits(report)


def test_several_pickles_in_one_stream(scan_file) -> None:
    report = scan_file("multi.pkl", benign() + evil("echo second"))
    found = hits(report)
    assert ("MLS101", "critical", "multi.pkl", None) in found
    assert ("MLS105", "low", "multi.pkl", None) in found


def test_payload_followed_by_corrupt_tail(scan_file) -> None:
    data = evil("echo before-corruption")[:-1] + b"\xff\xfe garbage"
    report = scan_file("tail.pkl", data)
    found = hits(report)
    assert ("MLS101", "critical", "tail.pkl", None) in found
    assert ("MLS100", "medium", "tail.pkl", None) in found


def test_truncated_payload_reports_what_was_seen(scan_file) -> None:
    data = evil("echo cut")
    report = scan_file("cut.pkl", data[: data.index(b"echo") + 2])
    corrupt = [f for f in report.findings if f.rule_id == "MLS100"]
    assert corrupt and "posix.system" in corrupt[0].message
    assert ("MLS101", "critical", "cut.pkl", None) in hits(report)


def test_trailing_garbage_after_stop(scan_file) -> None:
    report = scan_file("trail.pkl", benign() + b"\xff\xff\xff\xff")
    assert [f.rule_id for f in report.findings if f.path == "trail.pkl"] == ["MLS105", "MLS102"]
    assert not [f for f in report.findings if f.severity.rank >= 3]


def test_nested_pickle_loads_is_scanned(scan_file) -> None:
    inner = evil("echo inner")
    outer = pickle.dumps(Reduce(pickle.loads, inner), protocol=4)
    report = scan_file("nested.pkl", outer)
    found = hits(report)
    assert ("MLS101", "critical", "nested.pkl", None) in found  # pickle.loads itself
    assert ("MLS101", "critical", "nested.pkl", "<_pickle.loads payload 1>") in found or (
        "MLS101",
        "critical",
        "nested.pkl",
        "<pickle.loads payload 1>",
    ) in found
    nested = [f for f in report.findings if f.member and "payload" in f.member]
    assert any("echo inner" in f.message for f in nested)


def test_large_payloads_are_skipped_not_read(tmp_path) -> None:
    blob = b"\x00" * (64 * 1024**2)
    data = pickle.dumps({"big": blob, "run": Reduce(os.system, "echo big")}, protocol=4)
    path = tmp_path / "big.pkl"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        start = time.perf_counter()
        res = run_pickle(ByteReader(handle, len(data)), _budget())
        elapsed = time.perf_counter() - start
    assert res.error is None and res.end == len(data)
    assert [i.qualname for i in res.imports] == ["posix.system"]  # type: ignore[union-attr]
    assert elapsed < 1.0


def test_op_limit_is_a_finding(scan_file) -> None:
    data = pickle.dumps(list(range(50_000)), protocol=2)
    report = scan_file("ops.pkl", data, limits=None)
    assert not [f for f in report.findings if f.rule_id == "MLS904"]

    from mlsec.config import Limits, ScanOptions

    limits = Limits(max_pickle_ops=10_000)
    report = scan_file("ops.pkl", data, limits=limits)
    assert ("MLS904", "medium", "ops.pkl", None) in hits(report)
    assert ScanOptions  # imported for the type of `limits`


def test_render_shapes() -> None:
    data = pickle.dumps(Reduce(builtins.eval, "1+1"), protocol=4)
    res = run_pickle(ByteReader(io.BytesIO(data), len(data)), _budget())
    call = res.imports[0].calls[0]
    assert render(call) == "builtins.eval('1+1')"


def test_nested_payload_behind_decoders(scan_file) -> None:
    import base64

    inner = evil("echo b64")
    wrapped = Reduce(pickle.loads, Reduce(base64.b64decode, base64.b64encode(inner).decode()))
    report = scan_file("b64.pkl", pickle.dumps(wrapped, protocol=2))
    nested = [f for f in report.findings if f.member and "payload" in f.member]
    assert [(f.rule_id, f.severity.value) for f in nested] == [("MLS101", "critical")]
    assert "echo b64" in nested[0].message


def test_timeout_is_a_finding(scan_file) -> None:

    from mlsec.config import Limits

    data = pickle.dumps(list(range(200_000)), protocol=2)
    report = scan_file("slow.pkl", data, limits=Limits(file_timeout_seconds=1e-6))
    limit = [f for f in report.findings if f.rule_id == "MLS904"]
    assert [(f.severity.value, f.key) for f in limit] == [("medium", "file-timeout-seconds")]


def test_opcode_table_matches_stdlib() -> None:
    import pickletools

    from mlsec.formats.pickle import OPCODE_NAMES, Machine

    assert {ord(op.code): op.name for op in pickletools.opcodes} == OPCODE_NAMES
    assert all(hasattr(Machine, "op_" + name) for name in OPCODE_NAMES.values())


def test_pop_discards_a_mark_like_the_unpickler(scan_file) -> None:
    # MARK, POP (drops the mark), then a plain REDUCE of os.system.
    payload = b"\x80\x02(0cos\nsystem\nX\x07\x00\x00\x00echo pq\x85R."
    report = scan_file("popmark.pkl", payload)
    found = hits(report)
    assert ("MLS101", "critical", "popmark.pkl", None) in found
    assert not [f for f in report.findings if f.rule_id == "MLS100"]


def test_large_nested_payload_scanned_in_place(scan_file) -> None:
    inner = evil("echo big-inner") + b"\x00" * (2 * 1024**2)  # over the in-memory threshold
    outer = pickle.dumps([Reduce(pickle.loads, inner), "after"], protocol=4)
    report = scan_file("bignested.pkl", outer)
    nested = [f for f in report.findings if f.member and "payload" in f.member]
    assert ("MLS101", "critical") in {(f.rule_id, f.severity.value) for f in nested}
    assert any("echo big-inner" in f.message for f in nested)
