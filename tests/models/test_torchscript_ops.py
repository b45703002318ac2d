"""MLS158/MLS159: torch/ops operator paths in TorchScript code judged as operators: file,
loader, download and process operators are critical, operators in namespaces torch does not
register are medium; torch's own archives (fixtures/torchscript/) stay clean."""

from __future__ import annotations

import pytest

from mlsec.models.torchscript import judge
from tests.models.conftest import hits
from tests.models.test_torchscript import ARCHIVES, FORWARD, _edited

MEMBER = "raise_value_error/code/__torch__.py"
FILE_PROCESS = {
    "torch.from_file": "    y = torch.from_file('/etc/passwd', False, 100)\n    return y",
    "ops.aten.from_file": "    y = ops.aten.from_file('/etc/passwd', False, 10)\n    return y",
    "ops.aten.save": "    _0 = ops.aten.save(x, '/tmp/x')\n    return x",
    "torch.save": "    torch.save(x, '/tmp/x')\n    return x",
    "torch.load": "    y = torch.load('/tmp/x')\n    return y",
    "torch.jit.load": "    y = torch.jit.load('/tmp/x')\n    return y",
    "torch.ops.load_library": "    _0 = torch.ops.load_library('/tmp/e.so')\n    return x",
    "torch.classes.load_library": "    _0 = torch.classes.load_library('/tmp/e.so')\n    return x",
    "torch.hub.list": "    _0 = torch.hub.list('a/b')\n    return x",
    "ops.aten.system": "    _0 = ops.aten.system('id')\n    return x",
    "torch.ops.aten.system": "    _0 = torch.ops.aten.system('id')\n    return x",
    "ops.os.system": "    _0 = ops.os.system('id')\n    return x",
    "ops.subprocess.run": "    _0 = ops.subprocess.run(['id'])\n    return x",
    "torch.ops.builtins.open": "    _0 = torch.ops.builtins.open('/etc/passwd')\n    return x",
    "torch.ops.prim.PythonOp": "    _0 = torch.ops.prim.PythonOp('os.system')\n    return x",
    "torch.load (getattr)": "    f = getattr(torch, 'load')\n    return x",
}


@pytest.mark.parametrize("construct", sorted(FILE_PROCESS))
def test_file_and_process_operators_are_critical(scan_one, construct: str) -> None:
    report = scan_one("ops.pt", _edited(FORWARD.format(body=FILE_PROCESS[construct])))
    [finding] = [f for f in report.findings if f.rule_id == "MLS158"]
    assert (finding.severity.value, finding.path, finding.member) == ("critical", "ops.pt", MEMBER)
    assert finding.details["matches"] == [construct.removesuffix(" (getattr)")]
    assert not [f for f in report.findings if f.rule_id == "MLS159"]


@pytest.mark.parametrize("path", ["ops.mylib.run", "torch.ops.evil_ns.x"])
def test_operators_outside_torch_namespaces_are_medium(scan_one, path: str) -> None:
    report = scan_one("ns.pt", _edited(FORWARD.format(body=f"    y = {path}(x)\n    return y")))
    [finding] = [f for f in report.findings if f.rule_id == "MLS159"]
    assert (finding.severity.value, finding.path, finding.member) == ("medium", "ns.pt", MEMBER)
    assert finding.details["matches"] == [path]
    assert not [f for f in report.findings if f.rule_id in ("MLS107", "MLS158")]


def test_torch_operators_stay_clean() -> None:
    code = (
        "def f(x: Tensor) -> Tensor:\n"
        "  _0 = ops.profiler._record_function_enter('x')\n"
        "  y = ops.quantized.linear(torch.relu(x), ops.prim.dtype(x))\n"
        "  return ops.torchvision.nms(y, y, 0.5)\n"
    )
    assert judge(code) == ([], [], [])


def test_code_that_does_not_parse_is_searched_for_operators() -> None:
    judged = judge("def f(:\n  torch.save(x, 'p')\n  ops.evil.x()\n")
    assert (judged.file_process_ops, judged.foreign_ops) == (["torch.save"], ["ops.evil.x"])


def test_models_allow_silences_an_operator(scan_one) -> None:
    data = _edited(FORWARD.format(body=FILE_PROCESS["torch.save"]))
    allowed = scan_one("a.pt", data, sections={"models": {"allow": ["torch.save"]}})
    assert not [f for f in allowed.findings if f.rule_id == "MLS158"]
    assert ("MLS158", "critical", "a.pt", MEMBER) in hits(scan_one("a.pt", data))


@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: p.stem)
def test_torch_written_archives_call_no_flagged_operator(scan_one, archive) -> None:
    report = scan_one(archive.name, archive.read_bytes())
    assert not [f for f in report.findings if f.rule_id in ("MLS158", "MLS159")]
