"""What a Jinja2 chat template can reach, from its syntax tree (parsed, never rendered).

A chat template is code the loader runs. Legitimate templates read message fields and format
strings; template-injection payloads walk Python internals (``__class__``, ``__globals__``,
``__subclasses__``, ``__builtins__``...) to reach ``os`` or ``eval``, and hide those names by
computing them (``'__cla' ~ 'ss__'``, ``['ssalc__','__']|join|reverse``, ``'%c' % 95``...).

So the template is parsed with Jinja2's own parser (the grammar loaders use) and walked by a
small abstract interpreter: it folds every string built from literals (operators, filters,
string methods, slicing, ``set`` variables, namespaces, loops over literal lists, macros) and
judges each *name lookup* (``x.name``, ``x[key]``, ``attr()``, ``map(attribute=...)``, format
fields) by the names it can take. A string is judged only where it is used as a name, so text
that merely contains double underscores stays clean. Every bound (size, tokens, folding steps,
nesting, time) that stops the analysis is reported, never silent. Hand-written: no maintained
library folds Jinja expressions without rendering them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

    from mlsec.analyzers import AnalysisContext
    from mlsec.findings import Finding

# -- bounds (each one reached is an MLS170 finding naming it) ----------------------------------
MAX_TEMPLATE_BYTES = 2 * 1024 * 1024  # real chat templates are under 100 KB
MAX_TOKENS = 200_000  # Jinja parses ~150k tokens/s; real templates have under 10k
MAX_STEPS = 300_000  # interpreter steps (~2 s; the real templates tried need under 20k)
MAX_NESTING = 250  # syntax-tree depth the interpreter follows (Python's stack is the limit)
MAX_SECONDS = 10.0  # wall-clock backstop on top of the deterministic budgets
MAX_FOLDED = 64 * 1024  # longest string folded (longer: "too long to fold", judged as capped)
MAX_CHOICES = 32  # values one expression may hold before folding gives up on it
MAX_UNROLL = 256  # items of a literal list a loop is unrolled over
MAX_MACRO_DEPTH = 4  # nested macro calls re-run with literal arguments

# Attributes that lead from any object to Python internals (frames, globals, classes, code).
_INTERNAL_NAMES = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "func_closure",
        "im_func",
        "im_class",
        "im_self",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "ag_frame",
        "ag_code",
        "tb_frame",
        "tb_next",
        "co_code",
        "co_consts",
        "_TemplateReference__context",
        "_module",
        "_Undefined__obj",
    }
)
_DUNDER = re.compile(r"^__\w+__$")


def is_internal(name: str) -> bool:
    """Whether an attribute called ``name`` leads to Python internals."""
    return bool(_DUNDER.match(name)) or name in _INTERNAL_NAMES


class TemplateIssue(NamedTuple):
    """One thing wrong with a template.

    ``kind``: "internals" (reaches Python internals: MLS143), "dynamic" (attribute names
    computed from literals, or chosen at render time: MLS145), "syntax" (does not parse:
    MLS144), "bound" (a limit stopped the analysis: MLS170). ``how``: the expression that
    produced a computed name, when it was folded.
    """

    kind: str
    name: str
    line: int | None
    how: str = ""


# -- the public entry points -----------------------------------------------------------------
def template_issues(source: str) -> list[TemplateIssue]:
    """Parse ``source`` (never render it) and report what its name lookups can reach."""
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > MAX_TEMPLATE_BYTES:
        return [
            TemplateIssue(
                "bound",
                f"{size} bytes, over the {MAX_TEMPLATE_BYTES}-byte limit on chat templates",
                None,
            )
        ]
    tree, failure = _parse(source)
    if tree is None:
        return [failure] if failure else []
    judge = _Judge()
    try:
        _Interpreter(judge).run(tree)
    except _OutOfBudget as exc:
        judge.bound(str(exc), exc.line)
    except RecursionError:
        judge.bound("nested too deeply for the interpreter (Python's stack)", None)
    # The literal pass sees every node (even where interpretation stopped): no payload spelt
    # with plain literals can hide behind a bound.
    try:
        _literal_pass(tree, judge)
    except _OutOfBudget as exc:
        judge.bound(str(exc), exc.line)
    return judge.issues()


def template_findings(
    ctx: AnalysisContext,
    path: str,
    member: str | None,
    label: str,
    template: str,
    *,
    truncated_at: int | None = None,
) -> list[Finding]:
    """The findings for one chat template (``label``: its key, e.g. ``chat_template.rag``).

    ``path``/``member``: where the findings point; ``truncated_at``: the reader kept only this
    many bytes of the template (the rest was never seen).
    """
    if truncated_at is not None:
        issues = [
            TemplateIssue(
                "bound", f"over {truncated_at} bytes, the most the model reader keeps", None
            )
        ]
    else:
        issues = template_issues(template)
    return list(_findings(ctx, path, member, label, template, issues))


# Hugging Face files that carry chat templates (rendered by loaders as Jinja).
TEMPLATE_FILE_NAMES = (
    "tokenizer_config.json",
    "chat_template.json",
    "chat_template.jinja",
    "processor_config.json",
)
_EXTRA_TEMPLATES_DIR = "additional_chat_templates/"  # transformers: <dir>/<name>.jinja


def is_template_file(name: str) -> bool:
    """Whether a file or member called ``name`` carries chat templates loaders render."""
    lower = name.lower().replace("\\", "/")
    if lower.endswith(TEMPLATE_FILE_NAMES):
        return True
    return lower.endswith(".jinja") and _EXTRA_TEMPLATES_DIR in f"/{lower}"


def template_file_findings(
    ctx: AnalysisContext, path: Path, relpath: str, member: str | None, name: str
) -> list[Finding]:
    """The findings for a Hugging Face template file (on disk at ``path``) named ``name``."""
    from mlsec.findings import join_member
    from mlsec.safeopen import open_regular

    with open_regular(path) as handle:
        data = handle.read(MAX_TEMPLATE_FILE + 1)
    label = "chat_template"
    lower = name.lower().replace("\\", "/")
    if lower.endswith(".jinja") and not lower.endswith("chat_template.jinja"):
        label = f"chat_template.{lower.rsplit('/', 1)[-1][: -len('.jinja')]}"
    if len(data) > MAX_TEMPLATE_FILE:
        issue = TemplateIssue("bound", f"over the {MAX_TEMPLATE_FILE}-byte limit on files", None)
        return list(_findings(ctx, relpath, join_member(member, label), label, "", [issue]))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        issue = TemplateIssue("syntax", f"not UTF-8 ({exc.reason} at byte {exc.start})", None)
        return list(_findings(ctx, relpath, join_member(member, label), label, "", [issue]))
    findings: list[Finding] = []
    for key, template in templates_in_text(lower, text):
        findings.extend(template_findings(ctx, relpath, join_member(member, key), key, template))
    return findings


MAX_TEMPLATE_FILE = 64 * 1024 * 1024


def templates_in_text(name: str, text: str) -> list[tuple[str, str]]:
    """The (label, template) pairs in a template file's text (``name``: its lower-case name).

    ``chat_template`` in JSON is a string or a list of ``{"name", "template"}`` (transformers
    reads both); a ``.jinja`` file is one template.
    """
    if name.endswith(".jinja"):
        stem = name.rsplit("/", 1)[-1][: -len(".jinja")]
        return [("chat_template" if stem == "chat_template" else f"chat_template.{stem}", text)]
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return []  # not JSON: not a configuration a loader would read a template from
    value = document.get("chat_template") if isinstance(document, dict) else None
    if isinstance(value, str):
        return [("chat_template", value)]
    out: list[tuple[str, str]] = []
    if isinstance(value, list):
        for index, entry in enumerate(value):
            if isinstance(entry, dict) and isinstance(entry.get("template"), str):
                entry_name = entry.get("name")
                label = entry_name if isinstance(entry_name, str) else str(index)
                out.append((f"chat_template.{label}", entry["template"]))
    elif isinstance(value, dict):  # some tools write {name: template}
        out.extend((f"chat_template.{k}", v) for k, v in value.items() if isinstance(v, str))
    return out


def _findings(
    ctx: AnalysisContext,
    path: str,
    member: str | None,
    label: str,
    template: str,
    issues: Sequence[TemplateIssue],
) -> Iterator[Finding]:
    details: dict[str, Any] = {"metadata_key": label, "template_excerpt": template[:300]}
    by_kind: dict[str, list[TemplateIssue]] = {}
    for issue in issues:
        by_kind.setdefault(issue.kind, []).append(issue)
    for kind, rule_id, text in (
        (
            "internals",
            "MLS143",
            "reaches Python internals ({names}): template injection that runs code in"
            " loaders rendering it outside Jinja's sandbox",
        ),
        ("dynamic", "MLS145", "computes attribute names ({names})"),
        ("syntax", "MLS144", "is not valid Jinja: {names}"),
        ("bound", "MLS170", "was not fully analysed: {names}"),
    ):
        found = by_kind.get(kind)
        if not found:
            continue
        shown = [f"{i.name} from {i.how}" if i.how else i.name for i in found[:8]]
        more = f" and {len(found) - 8} more" if len(found) > 8 else ""
        yield ctx.finding(
            rule_id,
            path,
            f"Chat template {label} {text.format(names=', '.join(shown) + more)}",
            member=member,
            key=f"{label}:{kind}",
            details={
                **details,
                "names": [i.name for i in found[:64]],
                "line": found[0].line,
            },
        )


# -- parsing, bounded --------------------------------------------------------------------------
class _OutOfBudget(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _parse(source: str) -> tuple[Any, TemplateIssue | None]:
    """The syntax tree of ``source``, or None and why not."""
    import jinja2

    try:
        return _environment().parse(source), None
    except _OutOfBudget as exc:
        return None, TemplateIssue("bound", str(exc), exc.line)
    except jinja2.TemplateSyntaxError as exc:
        return None, TemplateIssue("syntax", str(exc.message or exc)[:200], exc.lineno)
    except RecursionError:
        return None, TemplateIssue("bound", "nested too deeply for the Jinja parser", None)
    except Exception as exc:  # jinja2 raises other errors on odd input; all mean "unparsable"
        return None, TemplateIssue("syntax", f"{type(exc).__name__}: {exc}"[:200], None)


def _environment() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2 import nodes

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``, which transformers' templates use."""

        tags = {"generation"}  # noqa: RUF012 (jinja2's API is a class attribute)

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    class TokenBudget(jinja2.ext.Extension):
        """Stops the parser after MAX_TOKENS tokens: Jinja's parser is Python and slow."""

        def filter_stream(self, stream: Any) -> Iterator[Any]:
            deadline = time.monotonic() + MAX_SECONDS
            for count, token in enumerate(stream):
                if count >= MAX_TOKENS:
                    raise _OutOfBudget(
                        f"over {MAX_TOKENS} Jinja tokens (the parse limit)", token.lineno
                    )
                if count & 1023 == 0 and time.monotonic() > deadline:
                    raise _OutOfBudget(f"parsing took over {MAX_SECONDS:g} s", token.lineno)
                yield token

    # The extensions transformers enables, so benign templates parse as they do there.
    return jinja2.Environment(  # noqa: S701 (never rendered: escaping is moot)
        extensions=[jinja2.ext.loopcontrols, jinja2.ext.do, GenerationTag, TokenBudget]
    )


# -- judging name lookups ----------------------------------------------------------------------
class _Judge:
    """Collects issues, one per (kind, name)."""

    def __init__(self) -> None:
        self._issues: dict[tuple[str, str], TemplateIssue] = {}

    def add(self, kind: str, name: str, line: int | None, how: str = "") -> None:
        self._issues.setdefault((kind, name), TemplateIssue(kind, name, line, how))

    def bound(self, message: str, line: int | None) -> None:
        self.add("bound", message, line)

    def issues(self) -> list[TemplateIssue]:
        return list(self._issues.values())

    def literal_name(self, name: str, line: int | None) -> None:
        """A name written as a literal (``x.name``, ``x['name']``): only internals matter."""
        if is_internal(name):
            self.add("internals", name, line)

    def key(self, value: _Val, node: Any, *, chosen_at_render: bool, dotted: bool) -> None:
        """A name lookup whose name is the abstract ``value`` (the expression ``node``).

        ``chosen_at_render``: a name that depends on render-time input is itself suspicious
        (``attr()``, ``map(attribute=...)``); for ``x[key]`` it is how templates read data.
        ``dotted``: Jinja splits the name on dots (attribute arguments of filters).
        """
        line = getattr(node, "lineno", None)
        how = "" if not value.computed else _describe(node)
        for known in value.known:
            if not isinstance(known, str):
                continue
            parts = known.split(".") if dotted else [known]
            internal = [part for part in parts if is_internal(part)]
            for part in internal:
                self.add("internals", part, line, how)
            if not internal and value.computed and known.isidentifier():
                self.add("dynamic", repr(known[:60]), line, how)
        if value.capped:
            self.add(
                "bound",
                f"a name computed at line {line} is too long or has too many possible values"
                f" to fold (limits {MAX_FOLDED} characters, {MAX_CHOICES} values)",
                line,
            )
        elif value.open and chosen_at_render:
            self.add("dynamic", f"{_describe(node)} (chosen at render time)", line)


def _describe(node: Any) -> str:
    """A short source-like rendering of an expression, for messages."""
    from jinja2 import nodes

    try:
        if isinstance(node, nodes.Const):
            return repr(node.value)[:40]
        if isinstance(node, nodes.Name):
            return node.name
        if isinstance(node, nodes.Concat):
            return " ~ ".join(_describe(n) for n in node.nodes[:6])
        if isinstance(node, nodes.BinExpr):
            return f"{_describe(node.left)} {node.operator} {_describe(node.right)}"
        if isinstance(node, nodes.Filter):
            base = _describe(node.node) if node.node is not None else "..."
            return f"{base}|{node.name}"
        if isinstance(node, nodes.Getattr):
            return f"{_describe(node.node)}.{node.attr}"
        if isinstance(node, nodes.Getitem):
            return f"{_describe(node.node)}[...]"
        if isinstance(node, nodes.Call):
            return f"{_describe(node.node)}(...)"
        if isinstance(node, nodes.List | nodes.Tuple):
            return "[" + ", ".join(_describe(n) for n in node.items[:4]) + "]"
    except RecursionError:
        pass
    return type(node).__name__.lower()


# Filters that look attributes up by name: filter -> (position of the name, keyword).
_ATTRIBUTE_ARGUMENTS: Mapping[str, tuple[int | None, str | None]] = {
    "attr": (0, "name"),
    "selectattr": (0, None),
    "rejectattr": (0, None),
    "groupby": (0, "attribute"),
    "sum": (0, "attribute"),
    "join": (1, "attribute"),
    "unique": (1, "attribute"),
    "min": (1, "attribute"),
    "max": (1, "attribute"),
    "sort": (2, "attribute"),
    "map": (None, "attribute"),
}


def _attribute_argument(node: Any) -> tuple[Any, bool] | None:
    """The expression a Filter node uses as an attribute name, and whether it is ``attr()``."""
    spec = _ATTRIBUTE_ARGUMENTS.get(node.name)
    if spec is None:
        return None
    position, keyword = spec
    for kw in node.kwargs:
        if kw.key == keyword:
            return kw.value, node.name == "attr"
    if position is not None and len(node.args) > position:
        return node.args[position], node.name == "attr"
    if node.name == "map" and len(node.args) >= 2:  # map('attr', name)
        first = node.args[0]
        if getattr(first, "value", None) == "attr":
            return node.args[1], True
    return None


def _literal_pass(tree: Any, judge: _Judge) -> None:
    """Judge every name written as a literal, iteratively (no recursion, every node)."""
    from jinja2 import nodes

    stack = [tree]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > 4 * MAX_TOKENS:
            raise _OutOfBudget(f"over {4 * MAX_TOKENS} syntax nodes")
        line = getattr(node, "lineno", None)
        if isinstance(node, nodes.Getattr | nodes.NSRef):
            judge.literal_name(node.attr, line)
        elif isinstance(node, nodes.Name):
            if node.ctx == "load" and _DUNDER.match(node.name):
                judge.literal_name(node.name, line)
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                judge.literal_name(node.arg.value, line)
        elif isinstance(node, nodes.Filter):
            found = _attribute_argument(node)
            if found is not None:
                arg, is_attr = found
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                    for part in arg.value.split("." if not is_attr else "\0"):
                        judge.literal_name(part, line)
        stack.extend(node.iter_child_nodes())


# -- the abstract values -----------------------------------------------------------------------
class _Val(NamedTuple):
    """What an expression may evaluate to.

    ``known``: the concrete values it may take (str, int, float, bool, None, tuples for lists,
    and the markers below); ``open``: it may also be something from render-time input;
    ``capped``: folding gave up at a bound; ``computed``: built by an operation, not a literal
    or a copy of one.
    """

    known: frozenset[Any]
    open: bool = False
    capped: bool = False
    computed: bool = False


class _KDict(tuple):  # type: ignore[type-arg]
    """A dict literal, as its (key, value) pairs (hashable, ordered)."""

    def lookup(self, key: Any) -> Any:
        for k, v in self:
            if k == key:
                return v
        raise _NoFold


class _NS(NamedTuple):
    """A ``namespace()`` object: its attributes live in the environment under ``ns_key``."""

    ident: int


class _Method(NamedTuple):
    receiver: Any
    name: str


class _Global(NamedTuple):
    name: str


class _Macro(NamedTuple):
    ident: int


class _NoFold(Exception):
    """This operation cannot be folded (the result is whatever the input makes it)."""


OPEN = _Val(frozenset(), open=True)
CAPPED = _Val(frozenset(), open=True, capped=True, computed=True)
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})


def _const(value: Any, computed: bool = False) -> _Val:
    try:
        return _Val(frozenset({value}), computed=computed)
    except TypeError:
        return OPEN


def _join(*values: _Val) -> _Val:
    known: set[Any] = set()
    for value in values:
        known |= value.known
    open_ = any(v.open for v in values)
    capped = any(v.capped for v in values)
    computed = any(v.computed for v in values)
    if len(known) > MAX_CHOICES:
        return CAPPED if any(isinstance(k, str) for k in known) else OPEN
    return _Val(frozenset(known), open_, capped, computed)


def _ns_key(ident: int, attr: str) -> str:
    return f"\0ns{ident}.{attr}"


def _check_size(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FOLDED:
        raise _Capped
    if isinstance(value, tuple) and len(value) > MAX_FOLDED:
        raise _Capped
    return value


class _Capped(Exception):
    pass


def _lift(fn: Callable[..., Any], *values: _Val) -> _Val:
    """Apply a concrete operation to every combination of known values (bounded)."""
    open_ = any(v.open for v in values)
    capped = any(v.capped for v in values)
    combos: list[tuple[Any, ...]] = [()]
    for value in values:
        combos = [(*c, k) for c in combos for k in value.known]
        if len(combos) > MAX_CHOICES:
            return CAPPED
    out: set[Any] = set()
    for combo in combos:
        try:
            out.add(_check_size(fn(*combo)))
        except _NoFold:
            open_ = True
        except _Capped:
            capped = open_ = True
        except (ArithmeticError, ValueError, TypeError, IndexError, KeyError, LookupError):
            open_ = True  # rendering would fail here: nothing to fold
    if capped and not out:
        return CAPPED
    return _Val(frozenset(out), open_, capped, computed=True)


def _pystr(value: Any) -> str:
    """``str()`` as Jinja's ``~`` and ``|string`` apply it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    if isinstance(value, _KDict):
        return str(dict(value))
    if isinstance(value, tuple):
        return str(list(value))
    raise _NoFold


def _small_int(value: Any, limit: int = MAX_FOLDED) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _NoFold
    if abs(value) > limit:
        raise _Capped
    return value


def _as_list(value: Any) -> tuple[Any, ...]:
    if isinstance(value, _KDict):
        return tuple(k for k, _ in value)
    if isinstance(value, str | tuple):
        return tuple(value)
    raise _NoFold


# printf conversions and str.format fields folded (widths bounded so nothing explodes).
_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<w>\d{0,4})(?:\.(?P<p>\d{0,4}))?[a-zA-Z%]"
)
_FORMAT_SPEC = re.compile(r"^[^{}]?[<>^=]?[-+ ]?#?0?(?P<w>\d{0,4})[_,]?(?:\.\d{0,4})?[a-zA-Z%]?$")


def _printf(fmt: Any, args: Any) -> str:
    if not isinstance(fmt, str):
        raise _NoFold
    for match in _PRINTF.finditer(fmt):
        if int(match.group("w") or 0) > 1000 or int(match.group("p") or 0) > 1000:
            raise _Capped
    if "*" in fmt:
        raise _NoFold
    if isinstance(args, _KDict):
        args = dict(args)
    for arg in (
        args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else (args,)
    ):
        _plain(arg)
    return str(fmt % args)


def _format_fields(judge: _Judge, node: Any, fmt: str) -> None:
    """``str.format`` fields name attributes too (``'{0.__class__}'``): judge them."""
    import _string  # type: ignore[import-not-found]  # str.format's own field parser

    try:
        for _, field, _spec, _conversion in _string.formatter_parser(fmt):
            if field is None:
                continue
            _, rest = _string.formatter_field_name_split(field)
            for _is_attr, part in rest:
                if isinstance(part, str):
                    judge.literal_name(part, getattr(node, "lineno", None))
    except ValueError:
        return  # not a valid format string: rendering it fails


def _format(fmt: Any, args: tuple[Any, ...], kwargs: Any) -> str:
    """``str.format`` folded, only for plain fields (their names are judged beforehand)."""
    import _string

    if not isinstance(fmt, str):
        raise _NoFold
    plain = True
    try:
        for _, field, spec, _conversion in _string.formatter_parser(fmt):
            if field is None:
                continue
            _, rest = _string.formatter_field_name_split(field)
            for _ in rest:
                plain = False
            if spec and ("{" in spec or not _FORMAT_SPEC.match(spec)):
                raise _NoFold
            if spec and int(_FORMAT_SPEC.match(spec).group("w") or 0) > 1000:  # type: ignore[union-attr]
                raise _Capped
    except ValueError as exc:
        raise _NoFold from exc
    if not plain:
        raise _NoFold  # attribute or item access inside the fields: not folded
    for arg in (*args, *dict(kwargs).values()):
        _plain(arg)
    return fmt.format(*args, **dict(kwargs))


def _plain(value: Any) -> Any:
    """``value`` if formatting it gives what rendering would (strings, numbers, None)."""
    if isinstance(value, str | int | float) or value is None:
        return value
    raise _NoFold


def _safe_replace(s: Any, old: Any, new: Any, count: Any = -1) -> str:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        raise _NoFold
    if old == "" or len(new) > len(old):
        occurrences = s.count(old) if old else len(s) + 1
        if len(s) + occurrences * len(new) > MAX_FOLDED:
            raise _Capped
    return s.replace(old, new, _small_int(count, 1 << 30) if count != -1 else -1)


def _pad(method: str) -> Callable[..., str]:
    def apply(s: Any, width: Any, *rest: Any) -> str:
        if not isinstance(s, str):
            raise _NoFold
        result: str = getattr(s, method)(_small_int(width), *rest)
        return result

    return apply


def _str_method(name: str) -> Callable[..., Any]:
    def apply(s: Any, *args: Any) -> Any:
        if not isinstance(s, str) or not all(isinstance(a, str | int) for a in args):
            raise _NoFold
        result = getattr(s, name)(*args)
        return tuple(result) if isinstance(result, list) else result

    return apply


def _join_strings(sep: Any, items: Any) -> str:
    if not isinstance(sep, str):
        raise _NoFold
    return sep.join(_pystr(item) for item in _as_list(items))


def _multiply(left: Any, right: Any) -> Any:
    if isinstance(left, str | tuple) and isinstance(right, int) and not isinstance(right, bool):
        if len(left) * max(right, 0) > MAX_FOLDED:
            raise _Capped
        return left * right
    if isinstance(right, str | tuple):
        return _multiply(right, left)
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left * right
    raise _NoFold


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, _KDict) or isinstance(right, _KDict):
        raise _NoFold
    if type(left) is type(right) or (
        isinstance(left, int | float) and isinstance(right, int | float)
    ):
        return left + right
    raise _NoFold


def _power(left: Any, right: Any) -> Any:
    if isinstance(right, int) and abs(right) > 64:
        raise _NoFold
    return left**right


_FORMATTERS = frozenset({"format", "format_map"})
_STR_METHODS: Mapping[str, Callable[..., Any]] = {
    **{
        name: _str_method(name)
        for name in (
            "lower",
            "upper",
            "title",
            "capitalize",
            "swapcase",
            "casefold",
            "strip",
            "lstrip",
            "rstrip",
            "split",
            "rsplit",
            "splitlines",
            "startswith",
            "endswith",
            "removeprefix",
            "removesuffix",
            "count",
            "find",
            "rfind",
            "partition",
            "rpartition",
            "isdigit",
            "isalpha",
            "isspace",
            "islower",
            "isupper",
        )
    },
    "center": _pad("center"),
    "ljust": _pad("ljust"),
    "rjust": _pad("rjust"),
    "zfill": _pad("zfill"),
    "replace": _safe_replace,
    "join": _join_strings,
}


def _first(value: Any) -> Any:
    items = _as_list(value)
    if not items:
        raise _NoFold
    return items[0]


def _last(value: Any) -> Any:
    items = _as_list(value)
    if not items:
        raise _NoFold
    return items[-1]


def _reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    return tuple(reversed(_as_list(value)))


def _tojson(value: Any) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, _KDict):
            return {str(k): plain(x) for k, x in v}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, str | int | float | bool) or v is None:
            return v
        raise _NoFold

    text = json.dumps(plain(value), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _escape(value: Any) -> str:
    import markupsafe

    return str(markupsafe.escape(_pystr(value)))


def _trim(value: Any, chars: Any = None) -> str:
    if not isinstance(value, str):
        raise _NoFold
    return value.strip(chars)


def _filter_join(value: Any, sep: Any = "", attribute: Any = None) -> str:
    if attribute is not None:
        raise _NoFold
    return _join_strings(sep, value)


def _dict_items(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, _KDict):
        raise _NoFold
    return tuple(tuple(pair) for pair in value)


def _sort(value: Any, reverse: Any = False, *rest: Any) -> tuple[Any, ...]:
    if rest:
        raise _NoFold
    items = _as_list(value)
    if not all(isinstance(i, str) for i in items) and not all(
        isinstance(i, int | float) for i in items
    ):
        raise _NoFold
    return tuple(sorted(items, reverse=bool(reverse)))


def _int(value: Any, default: Any = 0, base: Any = 10) -> int:
    try:
        return int(value) if not isinstance(value, str) else int(value, base)
    except (TypeError, ValueError):
        return int(default)


def _default(value: Any, default: Any = "", boolean: Any = False) -> Any:
    return default if boolean and not value else value


# Filters folded on known values: name -> function of (value, *args).
_FILTERS: Mapping[str, Callable[..., Any]] = {
    "join": _filter_join,
    "replace": _safe_replace,
    "reverse": _reverse,
    "lower": _str_method("lower"),
    "upper": _str_method("upper"),
    "title": _str_method("title"),
    "capitalize": _str_method("capitalize"),
    "trim": _trim,
    "first": _first,
    "last": _last,
    "list": _as_list,
    "string": _pystr,
    "format": lambda fmt, *args: _printf(fmt, args),
    "e": _escape,
    "escape": _escape,
    "forceescape": _escape,
    "safe": lambda v: v,
    "tojson": _tojson,
    "int": _int,
    "length": lambda v: len(_as_list(v)),
    "count": lambda v: len(_as_list(v)),
    "center": _pad("center"),
    "items": _dict_items,
    "dictsort": lambda v, *a: tuple(sorted(_dict_items(v))) if not a else _no_fold(),
    "sort": _sort,
    "unique": lambda v, *a: tuple(dict.fromkeys(_as_list(v))) if not a else _no_fold(),
    "default": _default,
    "d": _default,
}


def _no_fold() -> Any:
    raise _NoFold


# -- the interpreter ---------------------------------------------------------------------------
class _Interpreter:
    """Runs the template abstractly: every branch, every loop body, every macro."""

    def __init__(self, judge: _Judge) -> None:
        self.judge = judge
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS
        self.macros: dict[int, tuple[Any, dict[str, _Val], _Val, dict[str, _Val]]] = {}
        self.macro_depth = 0
        self.macro_memo: dict[tuple[int, tuple[_Val, ...]], _Val] = {}

    def tick(self, node: Any, depth: int) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _OutOfBudget(
                f"over {MAX_STEPS} folding steps (the interpreter limit)",
                getattr(node, "lineno", None),
            )
        if depth > MAX_NESTING:
            raise _OutOfBudget(
                f"nested over {MAX_NESTING} levels deep (the interpreter limit)",
                getattr(node, "lineno", None),
            )
        if self.steps & 4095 == 0 and time.monotonic() > self.deadline:
            raise _OutOfBudget(f"folding took over {MAX_SECONDS:g} s")

    def run(self, tree: Any) -> None:
        self.body(tree.body, {}, 0, capture=False)

    # -- statements -----------------------------------------------------------------------
    def body(self, stmts: Iterable[Any], env: dict[str, _Val], depth: int, capture: bool) -> _Val:
        """Run statements in ``env`` (updated in place); their output when ``capture``."""
        out = _const("") if capture else OPEN
        for stmt in stmts:
            produced = self.stmt(stmt, env, depth + 1, capture)
            if capture:
                out = _lift(lambda a, b: a + b, out, produced)._replace(
                    computed=out.computed or produced.computed
                )
        return out

    def stmt(self, node: Any, env: dict[str, _Val], depth: int, capture: bool) -> _Val:
        from jinja2 import nodes

        self.tick(node, depth)
        empty = _const("")
        if isinstance(node, nodes.Output):
            parts = [self.expr(child, env, depth + 1) for child in node.nodes]
            if not capture:
                return OPEN
            return _Val(frozenset(), open=True) if not parts else self.concat(parts)
        if isinstance(node, nodes.Assign):
            self.assign(node.target, self.expr(node.node, env, depth + 1), env, depth)
            return empty
        if isinstance(node, nodes.AssignBlock):
            value = self.body(node.body, dict(env), depth, capture=True)
            if node.filter is not None:
                value = self.filter(node.filter, value, env, depth + 1)
            self.assign(node.target, value, env, depth)
            return empty
        if isinstance(node, nodes.If):
            return self.branch(node, env, depth, capture)
        if isinstance(node, nodes.For):
            self.loop(node, env, depth)
            return OPEN
        if isinstance(node, nodes.Macro):
            self.define_macro(node, env, depth)
            return empty
        if isinstance(node, nodes.CallBlock):
            self.expr(node.call, env, depth + 1)
            inner = dict(env)
            for arg in node.args:
                inner[arg.name] = OPEN
            for default in node.defaults:
                self.expr(default, env, depth + 1)
            self.body(node.body, inner, depth, capture=False)
            return OPEN
        if isinstance(node, nodes.FilterBlock):
            value = self.body(node.body, dict(env), depth, capture=True)
            return self.filter(node.filter, value, env, depth + 1)
        if isinstance(node, nodes.With):
            inner = dict(env)
            for target, source in zip(node.targets, node.values, strict=False):
                self.assign(target, self.expr(source, env, depth + 1), inner, depth)
            out = self.body(node.body, inner, depth, capture)
            self.merge_namespaces(env, inner)
            return out
        if isinstance(node, nodes.ExprStmt):
            self.expr(node.node, env, depth + 1)
            return OPEN
        if isinstance(node, nodes.Scope | nodes.OverlayScope | nodes.ScopedEvalContextModifier):
            return self.body(node.body, env, depth, capture)
        if isinstance(node, nodes.Block):
            return self.body(node.body, env, depth, capture)
        if isinstance(node, nodes.Break | nodes.Continue):
            return empty
        # Anything else (include, import, extends...): judge its expressions, assume nothing.
        self.children(node, env, depth)
        for name in _assigned_names(node):
            env[name] = OPEN
        return OPEN

    def children(self, node: Any, env: dict[str, _Val], depth: int) -> None:
        from jinja2 import nodes

        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Expr):
                self.expr(child, env, depth + 1)
            else:
                self.stmt(child, dict(env), depth + 1, capture=False)

    def branch(self, node: Any, env: dict[str, _Val], depth: int, capture: bool) -> _Val:
        self.expr(node.test, env, depth + 1)
        taken = dict(env)
        out_taken = self.body(node.body, taken, depth, capture)
        other = dict(env)
        rest: list[Any] = list(node.elif_)
        if rest:
            first = rest[0]
            chained = type(node)(first.test, first.body, rest[1:], node.else_, lineno=first.lineno)
            out_other = self.branch(chained, other, depth + 1, capture)
        else:
            out_other = self.body(node.else_, other, depth, capture)
        env.clear()
        env.update(_join_envs(taken, other))
        return _join(out_taken, out_other)

    def loop(self, node: Any, env: dict[str, _Val], depth: int) -> None:
        iterable = self.expr(node.iter, env, depth + 1)
        before = dict(env)
        items: list[Any] | None = None
        if not iterable.open and len(iterable.known) == 1:
            (only,) = iterable.known
            try:
                listed = _as_list(only)
            except _NoFold:
                listed = None
            if listed is not None and len(listed) <= MAX_UNROLL:
                items = list(listed)
        inner = dict(env)
        inner["loop"] = OPEN
        if items is not None:
            for item in items:
                self.assign(node.target, _const(item, iterable.computed), inner, depth)
                if node.test is not None:
                    self.expr(node.test, inner, depth + 1)
                self.body(node.body, inner, depth, capture=False)
        else:
            element = _join(*(_const(k) for k in _elements(iterable)), OPEN)
            for _ in range(3):
                start = dict(inner)
                self.assign(node.target, element, inner, depth)
                if node.test is not None:
                    self.expr(node.test, inner, depth + 1)
                self.body(node.body, inner, depth, capture=False)
                inner = _join_envs(start, inner)
                if inner == start:
                    break
            else:  # still growing: widen what keeps changing, then judge its uses once more
                for key, value in list(inner.items()):
                    if value != start.get(key):
                        strings = any(isinstance(k, str) for k in value.known)
                        inner[key] = CAPPED if strings else OPEN
                self.assign(node.target, element, inner, depth)
                self.body(node.body, inner, depth, capture=False)
        self.body(node.else_, dict(before), depth, capture=False)
        env.clear()
        env.update(_join_envs(before, inner))
        if "loop" not in before:
            env.pop("loop", None)

    def merge_namespaces(self, env: dict[str, _Val], inner: dict[str, _Val]) -> None:
        for key, value in inner.items():
            if key.startswith("\0"):
                env[key] = value

    def assign(self, target: Any, value: _Val, env: dict[str, _Val], depth: int) -> None:
        from jinja2 import nodes

        if isinstance(target, nodes.Name):
            env[target.name] = value
        elif isinstance(target, nodes.NSRef):
            self.judge.literal_name(target.attr, getattr(target, "lineno", None))
            holders = env.get(target.name, OPEN)
            spaces = [k for k in holders.known if isinstance(k, _NS)]
            for space in spaces:
                key = _ns_key(space.ident, target.attr)
                env[key] = value if len(spaces) == 1 else _join(env.get(key, OPEN), value)
        elif isinstance(target, nodes.Tuple | nodes.List):
            unpacked: list[list[Any]] = [[] for _ in target.items]
            open_ = value.open
            for known in value.known:
                try:
                    parts = _as_list(known)
                except _NoFold:
                    open_ = True
                    continue
                if len(parts) != len(target.items):
                    open_ = True
                    continue
                for slot, part in zip(unpacked, parts, strict=True):
                    slot.append(part)
            for item, slot in zip(target.items, unpacked, strict=True):
                joined = _join(*(_const(p) for p in slot)) if slot else OPEN
                if open_:
                    joined = _join(joined, OPEN)
                self.assign(item, joined._replace(computed=value.computed), env, depth)

    def define_macro(self, node: Any, env: dict[str, _Val], depth: int) -> None:
        ident = id(node)
        env[node.name] = _const(_Macro(ident))
        inner = dict(env)
        defaults = self.defaults(node, env, depth)
        for arg in node.args:
            inner[arg.name] = _join(defaults[arg.name], OPEN) if arg.name in defaults else OPEN
        for name in ("caller", "varargs", "kwargs"):
            inner[name] = OPEN
        self.macros[ident] = (node, dict(env), OPEN, defaults)
        output = self.body(node.body, inner, depth, capture=True)
        self.macros[ident] = (node, dict(env), output, defaults)

    def defaults(self, node: Any, env: dict[str, _Val], depth: int) -> dict[str, _Val]:
        """A macro's default argument values (they belong to its last arguments)."""
        values = [self.expr(default, env, depth + 1) for default in node.defaults]
        names = [arg.name for arg in node.args][len(node.args) - len(values) :]
        return dict(zip(names, values, strict=True))

    def call_macro(self, macro: _Macro, args: list[_Val], depth: int) -> _Val:
        node, defined_env, output, defaults = self.macros[macro.ident]
        if all(a.open and not a.known for a in args):
            return output  # already analysed with every argument unknown
        if self.macro_depth >= MAX_MACRO_DEPTH:
            return CAPPED if output.capped or any(a.known for a in args) else output
        memo_key = (macro.ident, tuple(args))
        if memo_key in self.macro_memo:
            return self.macro_memo[memo_key]
        inner = dict(defined_env)
        inner[node.name] = _const(macro)
        for index, arg in enumerate(node.args):
            inner[arg.name] = args[index] if index < len(args) else defaults.get(arg.name, OPEN)
        for name in ("caller", "varargs", "kwargs"):
            inner[name] = OPEN
        self.macro_depth += 1
        try:
            result = self.body(node.body, inner, depth, capture=True)
        finally:
            self.macro_depth -= 1
        self.macro_memo[memo_key] = result
        return result

    # -- expressions ----------------------------------------------------------------------
    def concat(self, parts: list[_Val]) -> _Val:
        if len(parts) == 1 and all(isinstance(k, str) for k in parts[0].known):
            return parts[0]  # one string printed as it is: a copy, not a computation
        out = _const("")
        for part in parts:
            out = _lift(lambda a, b: a + _pystr(b), out, part)
        return out

    def expr(self, node: Any, env: dict[str, _Val], depth: int) -> _Val:
        from jinja2 import nodes

        self.tick(node, depth)
        d = depth + 1
        if isinstance(node, nodes.Const):
            return _const(node.value)
        if isinstance(node, nodes.TemplateData):
            return _const(node.data)
        if isinstance(node, nodes.Name):
            if node.name in env:
                return env[node.name]
            if node.name in _JINJA_GLOBALS:
                return _const(_Global(node.name))
            return OPEN
        if isinstance(node, nodes.Getattr):
            self.judge.literal_name(node.attr, node.lineno)
            return self.attribute(self.expr(node.node, env, d), node.attr, env)
        if isinstance(node, nodes.Getitem):
            return self.item(node, env, d)
        if isinstance(node, nodes.Concat):
            return self.concat([self.expr(child, env, d) for child in node.nodes])
        if isinstance(node, nodes.CondExpr):
            self.expr(node.test, env, d)
            first = self.expr(node.expr1, env, d)
            second = self.expr(node.expr2, env, d) if node.expr2 is not None else OPEN
            return _join(first, second)
        if isinstance(node, nodes.And | nodes.Or):
            return _join(self.expr(node.left, env, d), self.expr(node.right, env, d))
        if isinstance(node, nodes.BinExpr):
            left, right = self.expr(node.left, env, d), self.expr(node.right, env, d)
            operation = _BINARY.get(type(node).__name__)
            return _lift(operation, left, right) if operation else OPEN
        if isinstance(node, nodes.Neg | nodes.Pos):
            value = self.expr(node.node, env, d)
            return _lift(lambda v: -v if isinstance(node, nodes.Neg) else +v, value)
        if isinstance(node, nodes.List | nodes.Tuple):
            items = [self.expr(item, env, d) for item in node.items]
            if not items:
                return _const(())
            built = _lift(lambda *xs: tuple(xs), *items)  # a literal: computed if a part is
            return built._replace(computed=any(i.computed for i in items))
        if isinstance(node, nodes.Dict):
            pairs = [
                (self.expr(pair.key, env, d), self.expr(pair.value, env, d)) for pair in node.items
            ]
            flat = [v for pair in pairs for v in pair]
            built = _lift(lambda *xs: _KDict(zip(xs[::2], xs[1::2], strict=True)), *flat)
            return built._replace(computed=any(v.computed for v in flat))
        if isinstance(node, nodes.Filter):
            base = self.expr(node.node, env, d) if node.node is not None else OPEN
            return self.filter(node, base, env, d)
        if isinstance(node, nodes.Test):
            self.expr(node.node, env, d)
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                self.expr(arg, env, d)
            self.dyn(node, env, d)
            return OPEN
        if isinstance(node, nodes.Call):
            return self.call(node, env, d)
        if isinstance(node, nodes.Slice):
            for part in (node.start, node.stop, node.step):
                if part is not None:
                    self.expr(part, env, d)
            return OPEN
        # Compare, Not, and anything new: judge the parts, assume nothing about the value.
        for child in node.iter_child_nodes():
            self.expr(child, env, d)
        return OPEN

    def dyn(self, node: Any, env: dict[str, _Val], depth: int) -> None:
        for extra in (node.dyn_args, node.dyn_kwargs):
            if extra is not None:
                self.expr(extra, env, depth)

    def attribute(self, obj: _Val, attr: str, env: dict[str, _Val]) -> _Val:
        """``obj.attr`` (Jinja falls back to ``obj['attr']``)."""
        results: list[_Val] = [OPEN] if obj.open else []
        for known in obj.known:
            if isinstance(known, _NS):
                results.append(env.get(_ns_key(known.ident, attr), OPEN))
            elif (isinstance(known, str) and (attr in _STR_METHODS or attr in _FORMATTERS)) or (
                isinstance(known, _KDict) and attr in ("items", "keys", "values", "get")
            ):
                results.append(_const(_Method(known, attr), obj.computed))
            elif isinstance(known, _KDict):
                try:
                    results.append(_const(known.lookup(attr), obj.computed))
                except _NoFold:
                    results.append(OPEN)
            else:
                results.append(OPEN)
        return _join(*results) if results else OPEN

    def item(self, node: Any, env: dict[str, _Val], depth: int) -> _Val:
        from jinja2 import nodes

        obj = self.expr(node.node, env, depth)
        if isinstance(node.arg, nodes.Slice):
            bounds = [
                self.expr(p, env, depth) if p is not None else _const(None)
                for p in (node.arg.start, node.arg.stop, node.arg.step)
            ]
            return _lift(_slice, obj, *bounds)
        key = self.expr(node.arg, env, depth)
        # A plain literal key (message['content']) is a copy, not a computation.
        self.judge.key(key, node.arg, chosen_at_render=False, dotted=False)
        return _lift(_subscript, obj, key)._replace(computed=True)

    def filter(self, node: Any, base: _Val, env: dict[str, _Val], depth: int) -> _Val:
        args = [self.expr(arg, env, depth) for arg in node.args]
        kwargs = {kw.key: self.expr(kw.value, env, depth) for kw in node.kwargs}
        self.dyn(node, env, depth)
        found = _attribute_argument(node)
        if found is not None:
            arg_node, is_attr = found
            value = self.expr(arg_node, env, depth)
            self.judge.key(value, arg_node, chosen_at_render=True, dotted=not is_attr)
        name = node.name
        if name == "map" and args and not kwargs:
            return self.map_filter(node, base, args)
        if name in ("default", "d"):
            fallback = args[0] if args else _const("")
            return _join(base, fallback)
        if name == "random":
            return _join(*(_const(k, True) for k in _elements(base)), OPEN)
        function = _FILTERS.get(name)
        if function is None or kwargs:
            if name in ("select", "reject", "map") and args:
                self.judge_filter_name(node, args[0])
            return OPEN
        return _lift(function, base, *args)

    def map_filter(self, node: Any, base: _Val, args: list[_Val]) -> _Val:
        self.judge_filter_name(node, args[0])
        name = next(iter(args[0].known)) if len(args[0].known) == 1 else None
        function = _FILTERS.get(name) if isinstance(name, str) else None
        if function is None or args[0].open:
            return OPEN
        return _lift(lambda seq, *a: tuple(function(x, *a) for x in _as_list(seq)), base, *args[1:])

    def judge_filter_name(self, node: Any, name: _Val) -> None:
        """``map(name)``/``select(name)`` look a filter or test up by a string."""
        if name.open:
            self.judge.add("dynamic", f"{node.name}(<filter chosen at render time>)", node.lineno)

    def call(self, node: Any, env: dict[str, _Val], depth: int) -> _Val:
        callee = self.expr(node.node, env, depth)
        args = [self.expr(arg, env, depth) for arg in node.args]
        kwargs = {kw.key: self.expr(kw.value, env, depth) for kw in node.kwargs}
        self.dyn(node, env, depth)
        results: list[_Val] = [OPEN] if callee.open else []
        for known in callee.known:
            results.append(self.apply(node, known, args, kwargs, env, depth))
        return _join(*results) if results else OPEN

    def apply(
        self,
        node: Any,
        callee: Any,
        args: list[_Val],
        kwargs: dict[str, _Val],
        env: dict[str, _Val],
        depth: int,
    ) -> _Val:
        if isinstance(callee, _Macro):
            return self.call_macro(callee, args, depth)
        if isinstance(callee, _Global):
            if callee.name == "dict" and not args:
                keys = list(kwargs)
                return _lift(lambda *vs: _KDict(zip(keys, vs, strict=True)), *kwargs.values())
            if callee.name == "namespace":
                space = _NS(id(node))
                for key, value in kwargs.items():
                    env[_ns_key(space.ident, key)] = value
                return _const(space)
            if callee.name == "range" and not kwargs:
                return _lift(lambda *a: tuple(range(*(_small_int(x) for x in a))), *args)
            return OPEN
        if isinstance(callee, _Method):
            return self.method(node, callee, args, kwargs)
        return OPEN

    def method(self, node: Any, method: _Method, args: list[_Val], kwargs: dict[str, _Val]) -> _Val:
        receiver = method.receiver
        if isinstance(receiver, _KDict):
            if method.name == "items":
                return _const(_dict_items(receiver), True)
            if method.name == "keys":
                return _const(_as_list(receiver), True)
            if method.name == "values":
                return _const(tuple(v for _, v in receiver), True)
            return _lift(lambda k, *d: _lookup_or(receiver, k, d), *args)
        if method.name in _FORMATTERS:
            _format_fields(self.judge, node, receiver)
            names = list(kwargs)

            def fold(*values: Any) -> str:
                positional, named = values[: len(args)], values[len(args) :]
                mapping = dict(zip(names, named, strict=True))
                if method.name == "format_map":
                    if len(positional) != 1 or not isinstance(positional[0], _KDict):
                        raise _NoFold
                    return _format(receiver, (), dict(positional[0]))
                return _format(receiver, tuple(positional), mapping)

            if not args and not kwargs:
                return _lift(fold)
            return _lift(fold, *args, *kwargs.values())
        if kwargs:
            return OPEN
        function = _STR_METHODS[method.name]
        return _lift(lambda *a: function(receiver, *a), *args)


def _lookup_or(mapping: _KDict, key: Any, default: tuple[Any, ...]) -> Any:
    try:
        return mapping.lookup(key)
    except _NoFold:
        return default[0] if default else None


def _elements(value: _Val) -> list[Any]:
    """The elements of every known sequence ``value`` may be (bounded)."""
    out: list[Any] = []
    for known in value.known:
        try:
            out.extend(_as_list(known)[: MAX_CHOICES + 1])
        except _NoFold:
            continue
    return out


def _slice(value: Any, start: Any, stop: Any, step: Any) -> Any:
    if not isinstance(value, str | tuple):
        raise _NoFold
    for bound in (start, stop, step):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise _NoFold
    return value[start:stop:step]


def _subscript(value: Any, key: Any) -> Any:
    if isinstance(value, _KDict):
        return value.lookup(key)
    if isinstance(value, str | tuple) and isinstance(key, int) and not isinstance(key, bool):
        return value[key]
    raise _NoFold


_BINARY: Mapping[str, Callable[[Any, Any], Any]] = {
    "Add": _add,
    "Sub": lambda a, b: a - b,
    "Mul": _multiply,
    "Div": lambda a, b: a / b,
    "FloorDiv": lambda a, b: a // b,
    "Mod": lambda a, b: _printf(a, b) if isinstance(a, str) else a % b,
    "Pow": _power,
}


def _join_envs(first: dict[str, _Val], second: dict[str, _Val]) -> dict[str, _Val]:
    """The environment after either of two paths (a name unset on one may be input)."""
    out: dict[str, _Val] = {}
    for key in first.keys() | second.keys():
        a, b = first.get(key), second.get(key)
        if a is None or b is None:
            present = a if a is not None else b
            assert present is not None
            out[key] = _join(present, OPEN)
        else:
            out[key] = a if a == b else _join(a, b)
    return out


def _assigned_names(node: Any) -> list[str]:
    from jinja2 import nodes

    names: list[str] = []
    if isinstance(node, nodes.Import):
        names.append(node.target)
    elif isinstance(node, nodes.FromImport):
        for name in node.names:
            names.append(name[1] if isinstance(name, tuple) else name)
    return names
