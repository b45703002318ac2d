"""Minimal pickle check proving the analyzer path end to end.

It reports pickles that import ``os``/``posix``/``nt``/``subprocess`` or
``builtins.eval|exec``. The full, allowlist-based model analysis replaces it.
"""

from __future__ import annotations

import pickletools
from collections.abc import Iterable

from mlsec.analyzers import AnalysisContext, FileAnalyzer
from mlsec.findings import Finding
from mlsec.sniff import FileKind
from mlsec.walk import Target

_DANGEROUS_MODULES = {"os", "posix", "nt", "subprocess"}
_DANGEROUS_BUILTINS = {"eval", "exec", "__import__"}
_MAX_BYTES = 64 * 1024**2


def _dangerous(module: str, name: str) -> bool:
    if module.split(".")[0] in _DANGEROUS_MODULES:
        return True
    return module in ("builtins", "__builtin__") and name in _DANGEROUS_BUILTINS


class PickleBasicAnalyzer(FileAnalyzer):
    name = "pickle-basic"
    description = "Checking pickles"

    def accepts(self, target: Target) -> bool:
        return target.kind is FileKind.PICKLE

    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        with open(target.path, "rb") as handle:
            data = handle.read(_MAX_BYTES)
        strings: list[str] = []
        try:
            for opcode, arg, pos in pickletools.genops(data):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                    strings.append(str(arg))
                    continue
                module = name = None
                if opcode.name in ("GLOBAL", "INST"):
                    module, _, name = str(arg).partition(" ")
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    module, name = strings[-2], strings[-1]
                if module is not None and name is not None and _dangerous(module, name):
                    yield ctx.finding(
                        "MLS101",
                        target.relpath,
                        f"Pickle imports {module}.{name}, which runs code when loaded",
                        offset=pos,
                        key=f"{module}.{name}",
                    )
        except Exception as exc:  # pickletools raises ValueError and others on corrupt data
            yield ctx.finding(
                "MLS100", target.relpath, f"Pickle stream is corrupt: {exc}", key="corrupt"
            )
