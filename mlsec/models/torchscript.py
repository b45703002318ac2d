"""MLS107: TorchScript ``code/`` files checked against what TorchScript's serializer writes.

``torch.jit.save`` stores a compiled model as Python-syntax source under ``code/``, printed by
TorchScript's own printer from its IR. That printer writes a small language: top-level
``class`` and ``def`` statements; calls of ``torch.*`` and ``ops.*`` operators, of methods on
``self`` and on local values, of ``__torch__.*`` classes and functions, and of a handful of
builtins (``annotate``, ``unchecked_cast``, ``uninitialized``, ``getattr`` with a constant
child name, ``int``/``float``/``bool``/``str``, ``range``...); exceptions as
``ops.prim.RaiseException(message, "builtins.ValueError")``, where the class is a *string*;
dunder attributes only for torch's operators (``torch.__is__``, ``torch.__not__``) and
Python's data-model methods (``(_0).__init__()`` for a ``with`` block). The fixtures in
``fixtures/torchscript/`` (BatchNorm, GRU, LSTM, dropout, attention, control flow, raise,
assert, string formatting; written by torch itself, ``fixtures/generate_torchscript.py``) are
the evidence, and stay clean.

So the check parses each code file with :func:`ast.parse` (parsing only: nothing is compiled
or run) and reports what the printer never writes: imports (beyond ``torch``/``__torch__``/
``typing``), calls of bare names that are neither TorchScript's builtins nor bound in the file
(``eval``, ``exec``, ``open``, ``__import__``...), attribute paths rooted at an unbound name
(``os.system``, ``builtins.eval``, ``sys.modules``), dunder attributes off ``torch``
(``x.__class__``, ``__globals__``), ``getattr`` with a computed or dunder name, statements
TorchScript has no IR for (``lambda``, ``try``, ``global``, ``yield``, ``async``), and
top-level statements other than definitions. A file that does not parse is searched for the
same constructs textually. ``[models] allow`` patterns silence a construct by its dotted name
(:func:`allow_names`: ``os.system``, ``builtins.eval``, ``os.*`` for ``import os``).
"""

from __future__ import annotations

import ast
import builtins
import fnmatch
import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

# Bare names TorchScript's printer calls (python_print.cpp and the builtins it resolves).
TORCHSCRIPT_CALLS = frozenset(
    {
        "annotate",
        "unchecked_cast",
        "uninitialized",
        "getattr",
        "hasattr",
        "isinstance",
        "int",
        "float",
        "bool",
        "str",
        "complex",
        "range",
        "sorted",
        "len",
        "print",
        "fork",
        "wait",
        "awaitable",
        "awaitable_wait",
        "awaitable_nowait",
        "NamedTuple",
    }
)
# Names attribute paths start from: TorchScript's namespaces and its constant table.
TORCHSCRIPT_ROOTS = frozenset({"torch", "ops", "__torch__", "self", "CONSTANTS"})
# Operator namespaces torch itself registers (``ops.<namespace>.<op>``; the printer writes
# ``ops.prim.RaiseException``, ``ops.aten.*``, ``ops.quantized.*``...). Any other namespace is
# an operator library loaded from outside torch (native code): MLS159. The PyTorch
# organisation's domain libraries (torchvision's detection models export ``ops.torchvision``)
# count as torch's.
TORCH_OP_NAMESPACES = frozenset(
    {
        "aten",
        "prim",
        "prims",
        "quantized",
        "_quantized",
        "quantized_decomposed",
        "profiler",
        "_caffe2",
        "cuda",
        "mkldnn",
        "mkl",
        "onednn",
        "xnnpack",
        "fbgemm",
        "sparse",
        "rngprims",
        "higher_order",
        "inductor",
        "c10d",
        "_c10d_functional",
        "_c10d_functional_autograd",
        "_dtensor",
        "vulkan_prepack",
        "metal_prepack",
        "mkldnn_prepacked",
        "prepacked",
        "_nnapi",
        "torchvision",
        "torchaudio",
        "torchtext",
    }
)
# Operators (last name of a ``torch.*``/``ops.*`` path, in any namespace) that read or write
# files, load native libraries or serialized models, download, or run processes or Python:
# TorchScript registers ``aten::save`` and ``aten::from_file``, which a loaded model runs as
# file I/O; the rest are Python APIs or invented operators a hand-edited archive names.
FILE_PROCESS_OPS = frozenset(
    {
        "from_file",
        "save",
        "load",
        "load_library",
        "_load_for_mobile",
        "_save_for_mobile",
        "_load_jit_module_from_file",
        "_save_jit_module",
        "load_state_dict_from_url",
        "download_url_to_file",
        "system",
        "popen",
        "spawn",
        "exec",
        "eval",
        "PythonOp",
    }
)
# Operator namespaces named after Python's process, file and import modules
# (``ops.subprocess.run``): no library has a reason to register them but to look like them.
FILE_PROCESS_NAMESPACES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "builtins",
        "sys",
        "shutil",
        "socket",
        "ctypes",
        "importlib",
        "io",
        "pathlib",
        "pty",
        "runpy",
    }
)
# Namespaces of torch's Python API that no TorchScript code calls: downloads, native
# extension builds, process pools, remote calls, other serializers.
FILE_PROCESS_PREFIXES = (
    "torch.hub",
    "torch.utils.cpp_extension",
    "torch.utils.model_zoo",
    "torch.multiprocessing",
    "torch.distributed.rpc",
    "torch.package",
    "torch.serialization",
    "torch._C",
)
# Dunder methods of Python's data model, which TorchScript classes define and its printer
# calls on values (``(_18).__init__()`` for a context manager, ``x.__add__(y)``). Dunder
# attributes outside them (``__class__``, ``__globals__``, ``__dict__``, ``__subclasses__``)
# are introspection, which TorchScript cannot express.
_OPERATORS = (
    "add",
    "sub",
    "mul",
    "matmul",
    "truediv",
    "floordiv",
    "mod",
    "divmod",
    "pow",
    "lshift",
    "rshift",
    "and",
    "xor",
    "or",
)
_PROTOCOL = (
    "init",
    "new",
    "del",
    "repr",
    "str",
    "bytes",
    "format",
    "lt",
    "le",
    "eq",
    "ne",
    "gt",
    "ge",
    "hash",
    "bool",
    "len",
    "length_hint",
    "getitem",
    "setitem",
    "delitem",
    "iter",
    "next",
    "reversed",
    "contains",
    "neg",
    "pos",
    "abs",
    "invert",
    "complex",
    "int",
    "float",
    "index",
    "round",
    "trunc",
    "floor",
    "ceil",
    "enter",
    "exit",
    "call",
)
DATA_MODEL_METHODS = frozenset(
    {f"__{p}{op}__" for op in _OPERATORS for p in ("", "r", "i")}
    | {f"__{name}__" for name in _PROTOCOL}
)
# torch's own operator names the printer writes as attributes (torch.__is__(x, None)).
_TORCH_DUNDERS = frozenset({"__is__", "__isnot__", "__not__", "__contains__"})
_PRINTED_DUNDERS = DATA_MODEL_METHODS | _TORCH_DUNDERS
# Dunder names the printer writes as names: the class namespace, and class bodies' child
# types (``__annotations__["0"] = __torch__...Linear`` in a Sequential).
_DUNDER_NAMES = frozenset({"__torch__", "__annotations__"})
_IMPORTABLE = frozenset({"torch", "__torch__", "typing"})  # old archives import these
_NO_IR = (
    ast.Lambda,
    ast.Try,
    ast.Global,
    ast.Nonlocal,
    ast.Yield,
    ast.YieldFrom,
    ast.Await,
    ast.AsyncFunctionDef,
    ast.AsyncFor,
    ast.AsyncWith,
)
_DUNDER = re.compile(r"^__\w+__$")
_BUILTINS = frozenset(dir(builtins))
# The textual fallback for files that do not parse (the same constructs, as patterns).
_SUSPICIOUS_TEXT = re.compile(
    r"^\s*(?:import|from)\s+(?!__torch__|torch\b|typing\b)[\w.]+"
    r"|(?<![\w.])(?:__import__|exec|eval|compile|globals|locals|vars|open|breakpoint)\s*\("
    # not inside a string: TorchScript writes exception classes as "builtins.ValueError"
    r"|(?<![\"'\w.])(?:os|subprocess|socket|sys|builtins|shutil|ctypes|importlib|posix|nt)\.\w+"
    r"|\.__(?:class|globals|builtins|subclasses|code|dict|reduce|reduce_ex|getattribute)__\b",
    re.MULTILINE,
)


_OP_TEXT = re.compile(r"(?<![\"'\w.])(?:torch|ops)(?:\.\w+)+")


class Judgement(NamedTuple):
    """A code file's constructs by kind, each sorted and unique."""

    suspicious: list[str]  # what the printer never writes (MLS107)
    file_process_ops: list[str]  # torch/ops paths that touch files or processes (MLS158)
    foreign_ops: list[str]  # ops in namespaces torch does not register (MLS159)


def judge(source: str) -> Judgement:
    """Everything :func:`suspicious_constructs` reports, and the file's ``torch``/``ops``
    paths judged as operators (:func:`op_kind`). A file that does not parse is searched
    textually."""
    paths: set[str] = set()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    suspicious: list[str]
    if tree is not None:
        try:
            judged = _Judge(tree)
            suspicious = sorted(set(judged.findings()))
            paths = judged.op_paths
        except RecursionError:
            tree = None
    if tree is None:
        suspicious = sorted({m.group(0).strip() for m in _SUSPICIOUS_TEXT.finditer(source)})
        paths = {m.group(0) for m in _OP_TEXT.finditer(source)}
    kinds = [(path, op_kind(path)) for path in paths]
    return Judgement(
        suspicious,
        sorted(p for p, k in kinds if k == "file-process"),
        sorted(p for p, k in kinds if k == "foreign"),
    )


def op_kind(path: str) -> str | None:
    """``"file-process"`` for a ``torch.*``/``ops.*`` path naming a file, loader, download or
    process operator (in any namespace: ``ops.os.system`` too), ``"foreign"`` for an operator
    in a namespace torch does not register, else None. ``torch.ops.x`` is ``ops.x``."""
    parts = path.split(".")
    if parts[:2] == ["torch", "ops"]:
        parts = parts[1:]
    elif parts[:2] == ["torch", "classes"] and len(parts) == 3:
        parts = ["ops", *parts[1:]]  # torch.classes.load_library
    if parts[0] == "ops" and len(parts) >= 3 and parts[1] in FILE_PROCESS_NAMESPACES:
        return "file-process"
    if parts[-1] in FILE_PROCESS_OPS or any(
        path == p or path.startswith(p + ".") for p in FILE_PROCESS_PREFIXES
    ):
        return "file-process"
    if parts[0] == "ops" and len(parts) >= 3 and parts[1] not in TORCH_OP_NAMESPACES:
        return "foreign"
    return None


def suspicious_constructs(source: str) -> list[str]:
    """What in a TorchScript code file TorchScript's printer never writes (sorted, unique)."""
    return judge(source).suspicious


def unallowed(constructs: Sequence[str], allow: Sequence[str]) -> list[str]:
    """``constructs`` no ``[models] allow`` pattern covers (see :func:`allow_names`)."""
    return [
        c
        for c in constructs
        if not any(fnmatch.fnmatchcase(n, p) for n in allow_names(c) for p in allow)
    ]


def allow_names(construct: str) -> tuple[str, ...]:
    """The dotted names (``[models] allow`` takes ``module.name`` patterns) a construct is
    allowed by: an attribute path as shown (``os.system``), a builtin as ``builtins.<name>``,
    an import by its module (``os`` matches ``os.*``). Dunder attributes and statements
    TorchScript has no IR for have none: torch never writes them, so nothing legitimate
    needs them."""
    if construct.startswith("import "):
        module = construct.removeprefix("import ")
        return (module, module + ".")
    if "." in construct and " " not in construct:
        return (construct,)
    if construct.isidentifier() and not _DUNDER.match(construct) and construct in _BUILTINS:
        return ("builtins." + construct,)
    return ()


class _Judge:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.bound = _bound_names(tree)
        self._inner: set[int] = set()
        self.op_paths: set[str] = set()  # full torch.*/ops.* paths, for op_kind

    def findings(self) -> Iterator[str]:
        for statement in self.tree.body:
            if not _definition(statement):
                yield f"top-level {type(statement).__name__.lower()} statement"
        for node in ast.walk(self.tree):
            if isinstance(node, _NO_IR):
                yield type(node).__name__.lower()
            elif isinstance(node, ast.Import | ast.ImportFrom):
                yield from self._import(node)
            elif isinstance(node, ast.Call):
                yield from self._call(node)
            elif isinstance(node, ast.Attribute):
                yield from self._attribute(node)
            elif (
                isinstance(node, ast.Name)
                and isinstance(node.ctx, ast.Load)
                and _DUNDER.match(node.id)
                and node.id not in _DUNDER_NAMES
            ):
                yield node.id  # __builtins__, __import__ used as a value

    def _import(self, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        for module in modules:
            if (module or "").split(".", 1)[0] not in _IMPORTABLE:
                yield f"import {module or '.'}"

    def _call(self, node: ast.Call) -> Iterator[str]:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in TORCHSCRIPT_CALLS and func.id not in self.bound:
                yield func.id
            if func.id in ("getattr", "hasattr") and len(node.args) >= 2:
                name = node.args[1]
                if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                    yield f"{func.id} with a computed name"
                elif _DUNDER.match(name.value):
                    yield name.value
                else:
                    owner = _dotted(node.args[0])
                    if owner is not None and owner.split(".", 1)[0] in ("torch", "ops"):
                        self.op_paths.add(f"{owner}.{name.value}")  # getattr(torch, "load")

    def _attribute(self, node: ast.Attribute) -> Iterator[str]:
        if id(node) in self._inner:
            return  # part of a longer path, judged with it (os.path of os.path.join)
        path = [node.attr]
        value: ast.expr = node.value
        while isinstance(value, ast.Attribute):
            self._inner.add(id(value))
            path.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name):
            for attr in path:  # ().__class__, "".__class__.__bases__...
                if _DUNDER.match(attr) and attr not in _PRINTED_DUNDERS:
                    yield attr
            return
        root = value.id
        if root in ("torch", "ops") and root not in self.bound:
            self.op_paths.add(".".join([root, *reversed(path)]))
        if root not in TORCHSCRIPT_ROOTS and root not in self.bound:
            if isinstance(node.ctx, ast.Load) and not _in_annotation_position(root):
                yield ".".join([root, *reversed(path)])
            return
        for attr in path:
            if _DUNDER.match(attr) and attr not in _PRINTED_DUNDERS:
                yield attr


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(names)])


def _bound_names(tree: ast.Module) -> frozenset[str]:
    """Names the file itself binds: definitions, arguments, assignment and loop targets."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
    return frozenset(bound)


def _definition(statement: ast.stmt) -> bool:
    """What TorchScript writes at the top level: classes, functions, imports (judged apart),
    annotations and constant assignments (``op_version_set = 1`` in old archives)."""
    if isinstance(statement, ast.FunctionDef | ast.ClassDef | ast.AnnAssign):
        return True
    if isinstance(statement, ast.Import | ast.ImportFrom):
        return True
    if isinstance(statement, ast.Assign):
        value = statement.value
        return isinstance(value, ast.Constant) or (
            isinstance(value, ast.UnaryOp) and isinstance(value.operand, ast.Constant)
        )
    return False


# Type names in annotations are never attribute roots the printer writes except these.
def _in_annotation_position(root: str) -> bool:
    return root in ("typing", "NoneType")
