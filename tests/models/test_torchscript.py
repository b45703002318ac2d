"""MLS107 judged by what TorchScript writes: torch's own archives stay clean, hand-edited code
files with Python constructs TorchScript never emits are high, and ``[models] allow`` can
silence a listed construct."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mlsec.models.torchscript import suspicious_constructs
from tests.conftest import FIXTURES
from tests.models.conftest import hits

TORCHSCRIPT = FIXTURES / "torchscript"
ARCHIVES = sorted(TORCHSCRIPT.glob("*.pt"))
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def test_fixtures_cover_the_common_modules() -> None:
    names = {p.stem for p in ARCHIVES}
    assert {
        "batchnorm",
        "gru",
        "lstm",
        "dropout",
        "attention",
        "containers",
        "control_flow",
        "raise_value_error",
        "assert",
        "string_format",
        "builtins",
        "classes",
        "traced",
    } <= names


@pytest.mark.parametrize("archive", ARCHIVES, ids=lambda p: p.stem)
def test_torch_written_archives_do_not_fire(scan_one, archive: Path) -> None:
    report = scan_one(archive.name, archive.read_bytes())
    assert not [f for f in report.findings if f.rule_id == "MLS107"], report.findings
    assert {f.severity.value for f in report.findings} <= {"info", "low", "medium"}
    assert report.facts["models"].files[0].format == "torchscript"


def test_raise_value_error_fixture_is_what_torch_writes() -> None:
    with zipfile.ZipFile(TORCHSCRIPT / "raise_value_error.pt") as archive:
        code = archive.read("raise_value_error/code/__torch__.py").decode()
    assert 'ops.prim.RaiseException(torch.format(_0, torch.dim(x)), "builtins.ValueError")' in code
    assert suspicious_constructs(code) == []


def _edited(code: str) -> bytes:
    """The raise_value_error fixture with one code file replaced (a hand-edited archive)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(TORCHSCRIPT / "raise_value_error.pt") as src,
        zipfile.ZipFile(out, "w") as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "raise_value_error/code/__torch__.py":
                data = code.encode()
            dst.writestr(zipfile.ZipInfo(info.filename, ZIP_TIME), data)
    return out.getvalue()


FORWARD = "class RaiseNet(Module):\n  def forward(self, x: Tensor) -> Tensor:\n{body}\n"
EDITS = {
    "import os": "    import os\n    return x",
    "import subprocess": "    from subprocess import run\n    return x",
    "__import__": "    __import__('os')\n    return x",
    "exec": "    exec('print(1)')\n    return x",
    "eval": "    y = eval('x')\n    return y",
    "open": "    open('/tmp/x', 'w')\n    return x",
    "os.system": "    os.system('echo ts')\n    return x",
    "builtins.eval": "    builtins.eval('1')\n    return x",
    "__globals__": "    g = self.forward.__globals__\n    return x",
    "__class__": "    c = ().__class__\n    return x",
    "__bases__": "    c = self.forward.__bases__.x\n    return x",
    "__dict__": "    c = torch.__dict__\n    return x",
    "getattr with a computed name": "    f = getattr(self, 'for' + 'ward')\n    return x",
    "lambda": "    f = lambda: 1\n    return x",
    "top-level expr statement": "    return x\nprint_it = 1\nos_system('x')",
}


@pytest.mark.parametrize("construct", sorted(EDITS))
def test_hand_edited_code_fires_high(scan_one, construct: str) -> None:
    report = scan_one("edited.pt", _edited(FORWARD.format(body=EDITS[construct])))
    [finding] = [f for f in report.findings if f.rule_id == "MLS107"]
    assert (finding.severity.value, finding.path, finding.member) == (
        "high",
        "edited.pt",
        "raise_value_error/code/__torch__.py",
    )
    assert construct in finding.details["matches"]


def test_data_model_methods_pass_and_introspection_does_not() -> None:
    # What torch writes for ``with torch.no_grad():`` (fixtures/torchscript/builtins.pt).
    code = (
        "def f(x: Tensor) -> Tensor:\n"
        "  _0 = __torch__.torch.autograd.grad_mode.no_grad.__new__("
        "__torch__.torch.autograd.grad_mode.no_grad)\n"
        "  _1 = (_0).__init__()\n"
        "  with _0:\n"
        "    y = torch.mul(x, 2)\n"
        "  return y\n"
    )
    assert suspicious_constructs(code) == []
    assert suspicious_constructs(code.replace("(_0).__init__()", "(_0).__dict__")) == ["__dict__"]


def test_code_that_does_not_parse_is_searched_as_text() -> None:
    assert suspicious_constructs("def f(:\n  os.system('x')\n") == ["os.system"]
    # What torch writes stays clean even when the file does not parse as Python.
    raise_code = 'def f(:\n  ops.prim.RaiseException("bad", "builtins.ValueError")\n'
    assert suspicious_constructs(raise_code) == []


def test_models_allow_silences_a_listed_construct(scan_one) -> None:
    data = _edited(FORWARD.format(body="    os.system('echo ts')\n    return x"))
    allowed = scan_one("edited.pt", data, sections={"models": {"allow": ["os.*"]}})
    assert not [f for f in allowed.findings if f.rule_id == "MLS107"]
    other = scan_one("edited.pt", data, sections={"models": {"allow": ["subprocess.*"]}})
    assert ("MLS107", "high", "edited.pt", "raise_value_error/code/__torch__.py") in hits(other)


@pytest.mark.parametrize(
    ("body", "allow"),
    [
        ("    y = eval('x')\n    return y", "builtins.eval"),
        ("    import os\n    return x", "os.*"),
        ("    os.path.join('a')\n    return x", "os.path.*"),
    ],
)
def test_allow_takes_dotted_names(scan_one, body: str, allow: str) -> None:
    data = _edited(FORWARD.format(body=body))
    assert ("MLS107", "high", "e.pt", "raise_value_error/code/__torch__.py") in hits(
        scan_one("e.pt", data)
    )
    allowed = scan_one("e.pt", data, sections={"models": {"allow": [allow]}})
    assert not [f for f in allowed.findings if f.rule_id == "MLS107"]


def test_introspection_cannot_be_allowed() -> None:
    from mlsec.models.torchscript import allow_names, unallowed

    assert allow_names("__class__") == () and allow_names("lambda") == ()
    assert unallowed(["__class__", "os.system"], ["*.*"]) == ["__class__"]


def test_binary_code_file_is_still_checked(scan_one) -> None:
    body = "    os.system('echo ts')  # \x00\xff\n    return x"
    data = _edited(FORWARD.format(body=body))
    report = scan_one("binary.pt", data)
    assert ("MLS107", "high", "binary.pt", "raise_value_error/code/__torch__.py") in hits(report)
