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
that merely contains double underscores stays clean.

Values the interpreter cannot fold are of two kinds: render-time input (``messages``,
``tools``...: ``message[key]`` is how templates read data, so such keys are nothing) and the
template's own objects (``lipsum|string``, filters not folded: names spelt from their text
are hostile). Every bound (size, tokens, folding steps, nesting, time) that stops the
analysis is reported, never silent. Hand-written: no maintained library folds Jinja
expressions without rendering them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from mlsec.models.templatenames import (
    template_label,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mlsec.analyzers import AnalysisContext
    from mlsec.findings import Finding

# -- bounds (each one reached is an MLS170 finding naming it) ----------------------------------
MAX_TEMPLATE_BYTES = 2 * 1024 * 1024  # real chat templates are under 100 KB
MAX_TOKENS = 100_000  # Jinja parses ~150k tokens/s alone; real templates have under 10k
MAX_STEPS = 200_000  # interpreter steps (about 1 s; 178 real templates need at most 26k)
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
_WHITESPACE = re.compile(r"\s+")


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
    import hashlib

    encoded = source.encode("utf-8", "surrogatepass")
    # Every quantisation of a model carries the same template: analyse it once.
    limits = (MAX_TEMPLATE_BYTES, MAX_TOKENS, MAX_STEPS, MAX_NESTING, MAX_FOLDED, MAX_CHOICES)
    key = (hashlib.sha256(encoded).digest(), limits)
    cached = _CACHE.get(key)
    if cached is None:
        cached = _CACHE[key] = tuple(_analyse(source, len(encoded)))
        while len(_CACHE) > 256:
            try:
                del _CACHE[next(iter(_CACHE))]
            except (KeyError, RuntimeError, StopIteration):  # another thread evicted it
                break
    return list(cached)


_CACHE: dict[tuple[bytes, tuple[int, ...]], tuple[TemplateIssue, ...]] = {}


def _analyse(source: str, size: int) -> list[TemplateIssue]:
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


def template_file_findings(
    ctx: AnalysisContext, path: Path, relpath: str, member: str | None, name: str
) -> list[Finding]:
    """The findings for a Hugging Face template file (on disk at ``path``) named ``name``."""
    from mlsec.findings import join_member
    from mlsec.safeopen import open_regular

    with open_regular(path) as handle:
        data = handle.read(MAX_TEMPLATE_FILE + 1)
    lower = name.lower().replace("\\", "/")
    label = template_label(lower) or "chat_template"
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
    reads both); a Jinja file is one template.
    """
    label = template_label(name)
    if label is not None:
        return [(label, text)]
    try:
        document = json.loads(text, object_pairs_hook=_EveryValue)
    except (ValueError, RecursionError):
        return []  # not JSON: not a configuration a loader would read a template from
    if not isinstance(document, _EveryValue):
        return []
    out: list[tuple[str, str]] = []
    # Every value of a repeated key: JSON readers disagree on which one wins.
    for copy, value in enumerate(document.every.get("chat_template", ())):
        suffix = f"#{copy + 1}" if copy else ""
        if isinstance(value, str):
            out.append((f"chat_template{suffix}", value))
        elif isinstance(value, list):
            for index, entry in enumerate(value):
                if not isinstance(entry, _EveryValue):
                    continue
                entry_name = entry.get("name")
                label = entry_name if isinstance(entry_name, str) else str(index)
                for number, template in enumerate(entry.every.get("template", ())):
                    if isinstance(template, str):
                        again = f"#{number + 1}" if number else ""
                        out.append((f"chat_template.{label}{suffix}{again}", template))
        elif isinstance(value, dict):  # some tools write {name: template}
            out.extend(
                (f"chat_template.{k}{suffix}", v) for k, v in value.items() if isinstance(v, str)
            )
    return out


class _EveryValue(dict[str, Any]):
    """A JSON object that also keeps every value of a repeated key (``every``)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.every: dict[str, list[Any]] = {}
        for key, value in pairs:
            self.every.setdefault(key, []).append(value)


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

    # The options and extensions transformers and llama-cpp-python use, so templates parse as
    # they do there (other loaders keep the whitespace these options trim: names are judged
    # with whitespace removed too).
    return jinja2.Environment(  # noqa: S701 (never rendered: escaping is moot)
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols, jinja2.ext.do, GenerationTag, TokenBudget],
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
        for known in value.known:
            if not isinstance(known, str):
                continue
            parts = re.split(r"[.,]", known) if dotted else [known]
            # Whitespace differs between loaders that trim blocks and loaders that do not.
            parts += [squeezed for part in parts if (squeezed := _WHITESPACE.sub("", part)) != part]
            internal = [part for part in parts if is_internal(part)]
            reported = internal or (value.computed and known.isidentifier())
            how = _describe(node) if reported and value.computed else ""
            for part in internal:
                self.add("internals", part, line, how)
            if not internal and reported:
                self.add("dynamic", repr(known[:60]), line, how)
        if value.capped:
            self.add(
                "bound",
                f"a name computed at line {line} is too long or has too many possible values"
                f" to fold (limits {MAX_FOLDED} characters, {MAX_CHOICES} values)",
                line,
            )
        elif value.open and not value.input and value.computed:
            # Built from text no literal holds, such as characters sliced out of
            # ``lipsum|string``: a way to spell a name no reader can see.
            self.add("dynamic", f"{_describe(node)} (computed from the template's objects)", line)
        elif value.open and chosen_at_render:
            self.add("dynamic", f"{_describe(node)} (chosen at render time)", line)


def _describe(node: Any, depth: int = 0) -> str:
    """A short source-like rendering of an expression, for messages."""
    from jinja2 import nodes

    if depth > 6:
        return "..."
    inner = depth + 1
    if isinstance(node, nodes.Const):
        return repr(node.value)[:40]
    if isinstance(node, nodes.Name):
        return str(node.name)
    if isinstance(node, nodes.Concat):
        return " ~ ".join(_describe(n, inner) for n in node.nodes[:6])
    if isinstance(node, nodes.BinExpr):
        return f"{_describe(node.left, inner)} {node.operator} {_describe(node.right, inner)}"
    if isinstance(node, nodes.Filter):
        base = _describe(node.node, inner) if node.node is not None else "..."
        return f"{base}|{node.name}"
    if isinstance(node, nodes.Getattr):
        return f"{_describe(node.node, inner)}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        return f"{_describe(node.node, inner)}[...]"
    if isinstance(node, nodes.Call):
        return f"{_describe(node.node, inner)}(...)"
    if isinstance(node, nodes.List | nodes.Tuple):
        return "[" + ", ".join(_describe(n, inner) for n in node.items[:4]) + "]"
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
                    parts = [arg.value] if is_attr else re.split(r"[.,]", arg.value)
                    for part in parts:
                        judge.literal_name(part.strip(), line)
        stack.extend(node.iter_child_nodes())


# -- the abstract values -----------------------------------------------------------------------
class _Val(NamedTuple):
    """What an expression may evaluate to.

    ``known``: the concrete values it may take (str, int, float, bool, None, tuples for lists,
    and the markers below); ``open``: it may also be something not folded; ``input``: that
    something may come from render-time input (the messages, tools... a loader passes), as
    opposed to the template's own objects (whose text, like ``lipsum|string``, an author can
    predict and slice characters from); ``capped``: folding gave up at a bound; ``computed``:
    built by an operation, not a literal or a copy of one.
    """

    known: frozenset[Any]
    open: bool = False
    capped: bool = False
    computed: bool = False
    input: bool = False


class _KDict(tuple):  # type: ignore[type-arg]
    """A dict literal, as its (key, value) pairs (hashable, ordered)."""

    def lookup(self, key: Any) -> Any:
        for k, v in self:
            if k == key:
                return v
        raise _NoFold


class _View(tuple):  # type: ignore[type-arg]
    """``dict.items()``/``keys()``/``values()``: a sequence whose text says ``dict_items(...)``."""

    kind = "items"


class _KeysView(_View):
    kind = "keys"


class _ValuesView(_View):
    kind = "values"


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


class _Loop(NamedTuple):
    """The ``loop`` variable (``loop.cycle(...)`` returns one of its arguments)."""

    input: bool


class _Cycler(NamedTuple):
    items: tuple[Any, ...]


class _Joiner(NamedTuple):
    separator: Any


class _Caller(NamedTuple):
    position: int


class _Self(NamedTuple):
    pass


class _BlockRef(NamedTuple):
    name: str


class _NoFold(Exception):
    """This operation cannot be folded (the result is whatever the input makes it)."""


# Markers of the template's own objects (functions, namespaces, loop...), not data.
_TEMPLATE_OBJECTS = (_NS, _Method, _Global, _Macro, _Loop, _Cycler, _Joiner, _Caller, _Self)
INPUT = _Val(frozenset(), open=True, input=True)
OPAQUE = _Val(frozenset(), open=True, computed=True)
CAPPED = _Val(frozenset(), open=True, capped=True, computed=True)
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})


def _const(value: Any, computed: bool = False) -> _Val:
    try:
        return _Val(frozenset({value}), computed=computed)
    except TypeError:
        return OPAQUE


def _unknown(*values: _Val) -> _Val:
    """The result of an operation not folded on ``values``: input if any of them is."""
    return INPUT if any(v.input for v in values) else OPAQUE


def _join(*values: _Val) -> _Val:
    known: set[Any] = set()
    for value in values:
        known |= value.known
    open_ = any(v.open for v in values)
    capped = any(v.capped for v in values)
    computed = any(v.computed for v in values)
    input_ = any(v.input for v in values)
    if len(known) > MAX_CHOICES:
        # Too many strings to judge is a bound; too many numbers is no name at all.
        return CAPPED if any(isinstance(k, str) for k in known) else INPUT
    return _Val(frozenset(known), open_, capped, computed, input_)


_NS_PREFIX = "\0ns"


def _ns_key(ident: int, attr: str) -> str:
    return f"{_NS_PREFIX}{ident}.{attr}"


def _keep_namespaces(env: dict[str, _Val], scope: dict[str, _Val], *, surely: bool) -> None:
    """Namespace attributes set inside a scope outlive it (``surely``: the scope did run)."""
    for key, value in scope.items():
        if key.startswith(_NS_PREFIX) and env.get(key) != value:
            env[key] = value if surely else _join(env.get(key, INPUT), value)


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
    open_ = capped = input_ = False
    combos: list[tuple[Any, ...]] = [()]
    for value in values:
        open_ = open_ or value.open
        capped = capped or value.capped
        input_ = input_ or value.input
        if len(value.known) == 1:
            (only,) = value.known
            combos = [(*c, only) for c in combos]
        else:
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
    return _Val(frozenset(out), open_, capped, True, input_)


def _pystr(value: Any) -> str:
    """``str()`` as Jinja's ``~`` and ``|string`` apply it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    if isinstance(value, _KDict):
        return str(dict(value))
    if isinstance(value, _View):
        return f"dict_{value.kind}({list(value)})"
    if isinstance(value, tuple) and type(value) is tuple:
        return str(list(value))
    raise _NoFold  # a template object or a generator: its text is not folded


def _small_int(value: Any, limit: int = MAX_FOLDED) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _NoFold
    if abs(value) > limit:
        raise _Capped
    return value


def _is_seq(value: Any) -> bool:
    """A folded list (the markers are tuples too, but no sequences)."""
    return type(value) in (tuple, _Iter, _View, _KeysView, _ValuesView)


def _as_list(value: Any) -> tuple[Any, ...]:
    if isinstance(value, _KDict):
        return tuple(k for k, _ in value)
    if isinstance(value, str) or _is_seq(value):
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
    for arg in args.values() if isinstance(args, dict) else args if _is_seq(args) else (args,):
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
    if isinstance(left, int) and not isinstance(left, bool):
        left, right = right, left  # 2 * 'ab' is 'ab' * 2
    if isinstance(left, bool | int | float) and isinstance(right, bool | int | float):
        return left * right
    sequence = isinstance(left, str) or _is_seq(left)
    if not sequence or isinstance(right, bool) or not isinstance(right, int):
        raise _NoFold
    if len(left) * max(right, 0) > MAX_FOLDED:
        raise _Capped
    return left * right


def _add(left: Any, right: Any) -> Any:
    if _is_seq(left) and _is_seq(right):
        return tuple(left) + tuple(right)
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(left, bool | int | float) and isinstance(right, bool | int | float):
        return left + right
    raise _NoFold


def _number(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return value
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


class _Iter(tuple):  # type: ignore[type-arg]
    """What a generator-returning filter gives: iterable, but its text is ``<generator...>``."""


def _reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    return _Iter(reversed(_as_list(value)))


def _min_max(pick: Callable[..., Any]) -> Callable[..., Any]:
    def apply(value: Any, case_sensitive: Any = False, *rest: Any) -> Any:
        items = _as_list(value)
        if rest or not items or not all(isinstance(i, str) for i in items):
            raise _NoFold
        return pick(items, key=None if case_sensitive else str.lower)

    return apply


def _tojson(value: Any) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, _KDict):
            return {str(k): plain(x) for k, x in v}
        if _is_seq(v):
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
    return _Iter(tuple(pair) for pair in value)


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
    "unique": lambda v, *a: _Iter(dict.fromkeys(_as_list(v))) if not a else _no_fold(),
    "min": _min_max(min),
    "max": _min_max(max),
    "default": _default,
    "d": _default,
}


def _no_fold() -> Any:
    raise _NoFold


# -- the interpreter ---------------------------------------------------------------------------


class _Interpreter:
    """Runs the template abstractly: every branch, every loop body, every macro."""

    def __init__(self, judge: _Judge) -> None:
        from jinja2 import nodes

        self.nodes = nodes  # imported once: the interpreter's methods are hot
        self.judge = judge
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS
        self.macros: dict[int, tuple[Any, dict[str, _Val], _Val, dict[str, _Val]]] = {}
        self.macro_depth = 0
        # (macro, arguments) -> (output, namespace attributes it leaves behind)
        self.macro_memo: dict[tuple[Any, ...], tuple[_Val, dict[str, _Val]]] = {}
        self.callers: list[_Val] = []  # the output of each enclosing {% call %} body
        self.blocks: dict[str, Any] = {}
        self.active_blocks: set[str] = set()

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
        nodes = self.nodes

        # Iteratively (jinja2's find_all recurses, and hostile trees are deep).
        stack = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, nodes.Block):
                self.blocks.setdefault(node.name, node)
            if isinstance(node, nodes.Stmt | nodes.Template):
                stack.extend(node.iter_child_nodes())
        self.body(tree.body, {}, 0, capture=False)

    # -- statements -----------------------------------------------------------------------
    def body(self, stmts: Iterable[Any], env: dict[str, _Val], depth: int, capture: bool) -> _Val:
        """Run statements in ``env`` (updated in place); their output when ``capture``."""
        out = _const("")
        for stmt in stmts:
            produced = self.stmt(stmt, env, depth + 1, capture)
            if capture:
                out = _lift(lambda a, b: a + _pystr(b), out, produced)._replace(
                    computed=out.computed or produced.computed
                )
        return out if capture else OPAQUE

    def stmt(self, node: Any, env: dict[str, _Val], depth: int, capture: bool) -> _Val:
        nodes = self.nodes

        self.tick(node, depth)
        copies = nodes.AssignBlock | nodes.CallBlock | nodes.FilterBlock | nodes.With | nodes.Macro
        if isinstance(node, copies):
            self.copying(env, node, depth)
        empty = _const("")
        if isinstance(node, nodes.Output):
            parts = [self.expr(child, env, depth + 1) for child in node.nodes]
            return self.concat(parts) if capture and parts else empty
        if isinstance(node, nodes.Assign):
            self.assign(node.target, self.expr(node.node, env, depth + 1), env)
            return empty
        if isinstance(node, nodes.AssignBlock):
            scope = dict(env)
            value = self.body(node.body, scope, depth, capture=True)
            _keep_namespaces(env, scope, surely=True)
            if node.filter is not None:
                value = self.filter(node.filter, value, env, depth + 1)
            self.assign(node.target, value, env)
            return empty
        if isinstance(node, nodes.If):
            return self.branch(node, env, depth, capture)
        if isinstance(node, nodes.For):
            return self.loop(node, env, depth, capture)
        if isinstance(node, nodes.Macro):
            self.define_macro(node, env, depth)
            return empty
        if isinstance(node, nodes.CallBlock):
            inner = dict(env)
            for arg in node.args:
                inner[arg.name] = INPUT
            for default in node.defaults:
                self.expr(default, env, depth + 1)
            self.callers.append(self.body(node.body, inner, depth, capture=True))
            _keep_namespaces(env, inner, surely=False)
            try:
                return self.expr(node.call, env, depth + 1)
            finally:
                self.callers.pop()
        if isinstance(node, nodes.FilterBlock):
            scope = dict(env)
            value = self.body(node.body, scope, depth, capture=True)
            _keep_namespaces(env, scope, surely=True)
            return self.filter(node.filter, value, env, depth + 1)
        if isinstance(node, nodes.With):
            inner = dict(env)
            for target, source in zip(node.targets, node.values, strict=False):
                self.assign(target, self.expr(source, env, depth + 1), inner)
            out = self.body(node.body, inner, depth, capture)
            _keep_namespaces(env, inner, surely=True)
            return out
        if isinstance(node, nodes.ExprStmt):
            self.expr(node.node, env, depth + 1)
            return empty
        if isinstance(node, nodes.Scope | nodes.OverlayScope | nodes.ScopedEvalContextModifier):
            return self.body(node.body, env, depth, capture)
        if isinstance(node, nodes.Block):
            return self.body(node.body, env, depth, capture)
        if isinstance(node, nodes.Break | nodes.Continue):
            return empty
        # Anything else (include, import, extends...): judge its expressions, assume nothing.
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Expr):
                self.expr(child, env, depth + 1)
            else:
                scope = dict(env)
                self.stmt(child, scope, depth + 1, capture=False)
                _keep_namespaces(env, scope, surely=False)
        for name in _assigned_names(node):
            env[name] = INPUT
        return OPAQUE

    def copying(self, env: dict[str, _Val], node: Any, depth: int) -> None:
        """Charge copying and joining ``env`` to the step budget (hostile templates set
        thousands of variables and then branch thousands of times)."""
        self.steps += len(env) // 8
        self.tick(node, depth)

    def branch(self, node: Any, env: dict[str, _Val], depth: int, capture: bool) -> _Val:
        self.copying(env, node, depth)
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

    def loop(self, node: Any, env: dict[str, _Val], depth: int, capture: bool) -> _Val:
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
        self.copying(env, node, depth)
        inner = dict(env)
        inner["loop"] = _const(_Loop(iterable.input))
        out = _const("")
        if items is not None:
            for item in items:
                element = _const(item, iterable.computed)
                self.assign(node.target, element, inner)
                inner["\0loop.item"] = element
                if node.test is not None:
                    self.expr(node.test, inner, depth + 1)
                produced = self.body(node.body, inner, depth, capture)
                if capture:
                    out = _lift(lambda a, b: a + _pystr(b), out, produced)
        else:
            elements, whole = _elements(iterable)
            element = _join(
                *(_const(k, iterable.computed) for k in elements),
                *([] if whole else [_unknown(iterable)]),
            )
            inner["\0loop.item"] = element
            for _ in range(3):
                self.copying(inner, node, depth)
                start = dict(inner)
                self.assign(node.target, element, inner)
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
                        inner[key] = CAPPED if strings else INPUT
                self.assign(node.target, element, inner)
                self.body(node.body, inner, depth, capture=False)
            out = _unknown(iterable)
        otherwise = dict(before)  # {% else %}: runs when there was nothing to loop over
        self.body(node.else_, otherwise, depth, capture=False)
        env.clear()
        env.update(_join_envs(_join_envs(before, inner), otherwise))
        for key in ("loop", "\0loop.item"):
            if key in before:
                env[key] = before[key]
            else:
                env.pop(key, None)
        return out

    def assign(self, target: Any, value: _Val, env: dict[str, _Val]) -> None:
        nodes = self.nodes

        if isinstance(target, nodes.Name):
            env[target.name] = value
        elif isinstance(target, nodes.NSRef):
            self.judge.literal_name(target.attr, getattr(target, "lineno", None))
            holders = env.get(target.name, INPUT)
            spaces = [k for k in holders.known if isinstance(k, _NS)]
            for space in spaces:
                key = _ns_key(space.ident, target.attr)
                env[key] = value if len(spaces) == 1 else _join(env.get(key, INPUT), value)
        elif isinstance(target, nodes.Tuple | nodes.List):
            unpacked: list[list[Any]] = [[] for _ in target.items]
            unfolded = value.open
            for known in value.known:
                try:
                    parts = _as_list(known)
                except _NoFold:
                    unfolded = True
                    continue
                if len(parts) != len(target.items):
                    unfolded = True
                    continue
                for slot, part in zip(unpacked, parts, strict=True):
                    slot.append(part)
            for item, slot in zip(target.items, unpacked, strict=True):
                parts_val = [_const(p, value.computed) for p in slot]
                if unfolded or not slot:
                    parts_val.append(_unknown(value))
                self.assign(item, _join(*parts_val), env)

    def define_macro(self, node: Any, env: dict[str, _Val], depth: int) -> None:
        ident = id(node)
        env[node.name] = _const(_Macro(ident))
        inner = dict(env)
        defaults = self.defaults(node, env, depth)
        for arg in node.args:
            inner[arg.name] = _join(defaults[arg.name], INPUT) if arg.name in defaults else INPUT
        for name in ("caller", "varargs", "kwargs"):
            inner[name] = INPUT
        self.macros[ident] = (node, dict(env), INPUT, defaults)
        output = self.body(node.body, inner, depth, capture=True)
        self.macros[ident] = (node, dict(env), output, defaults)
        _keep_namespaces(env, inner, surely=False)  # as if called: it may be

    def defaults(self, node: Any, env: dict[str, _Val], depth: int) -> dict[str, _Val]:
        """A macro's default argument values (they belong to its last arguments)."""
        values = [self.expr(default, env, depth + 1) for default in node.defaults]
        names = [arg.name for arg in node.args][len(node.args) - len(values) :]
        return dict(zip(names, values, strict=True))

    def call_macro(
        self,
        macro: _Macro,
        args: list[_Val],
        kwargs: dict[str, _Val],
        env: dict[str, _Val],
        depth: int,
    ) -> _Val:
        node, defined_env, output, defaults = self.macros[macro.ident]
        values = [*args, *kwargs.values()]
        if not self.callers and all(v.input and not v.known for v in values):
            return output  # already analysed with every argument unknown
        if self.macro_depth >= MAX_MACRO_DEPTH:
            return CAPPED if output.capped or any(v.known for v in values) else output
        caller = self.callers[-1] if self.callers else None
        memo_key = (macro.ident, tuple(args), tuple(sorted(kwargs.items())), caller)
        if memo_key in self.macro_memo:
            result, effects = self.macro_memo[memo_key]
            _keep_namespaces(env, effects, surely=True)
            return result
        self.copying(defined_env, node, depth)
        inner = dict(defined_env)
        inner[node.name] = _const(macro)
        names = [arg.name for arg in node.args]
        for index, name in enumerate(names):
            if index < len(args):
                inner[name] = args[index]
            else:
                inner[name] = kwargs.get(name, defaults.get(name, INPUT))
        extra = args[len(names) :]
        inner["varargs"] = _lift(lambda *xs: tuple(xs), *extra) if extra else _const(())
        rest = {k: v for k, v in kwargs.items() if k not in names}
        keys = list(rest)
        inner["kwargs"] = _lift(lambda *vs: _KDict(zip(keys, vs, strict=True)), *rest.values())
        inner["caller"] = _const(_Caller(len(self.callers) - 1)) if caller else INPUT
        self.macro_depth += 1
        try:
            result = self.body(node.body, inner, depth, capture=True)
        finally:
            self.macro_depth -= 1
        _keep_namespaces(env, inner, surely=True)
        effects = {k: v for k, v in inner.items() if k.startswith(_NS_PREFIX)}
        self.macro_memo[memo_key] = (result, effects)
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
        nodes = self.nodes

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
            if node.name == "self":
                return _const(_Self())
            return INPUT  # a variable the loader passes (messages, tools, bos_token...)
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
            second = self.expr(node.expr2, env, d) if node.expr2 is not None else INPUT
            return _join(first, second)
        if isinstance(node, nodes.And | nodes.Or):
            return _join(self.expr(node.left, env, d), self.expr(node.right, env, d))
        if isinstance(node, nodes.BinExpr):
            left, right = self.expr(node.left, env, d), self.expr(node.right, env, d)
            operation = _BINARY.get(type(node).__name__)
            return _lift(operation, left, right) if operation else _unknown(left, right)
        if isinstance(node, nodes.Neg | nodes.Pos):
            value = self.expr(node.node, env, d)
            sign = -1 if isinstance(node, nodes.Neg) else 1
            return _lift(lambda v: sign * _number(v), value)
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
            base = self.expr(node.node, env, d) if node.node is not None else INPUT
            return self.filter(node, base, env, d)
        if isinstance(node, nodes.Call):
            return self.call(node, env, d)
        # Test, Compare, Not, Slice and anything new: judge the parts; a truth value is no name.
        for child in node.iter_child_nodes():
            self.expr(child, env, d)
        return INPUT

    def attribute(self, obj: _Val, attr: str, env: dict[str, _Val]) -> _Val:
        """``obj.attr`` (Jinja falls back to ``obj['attr']``)."""
        results: list[_Val] = [_unknown(obj)] if obj.open else []
        for known in obj.known:
            results.append(self.attribute_of(known, attr, env, obj.computed))
        return _join(*results) if results else INPUT

    def attribute_of(self, known: Any, attr: str, env: dict[str, _Val], computed: bool) -> _Val:
        if isinstance(known, _NS):
            return env.get(_ns_key(known.ident, attr), INPUT)
        if isinstance(known, str) and (attr in _STR_METHODS or attr in _FORMATTERS):
            return _const(_Method(known, attr), computed)
        if isinstance(known, _KDict) and attr in ("items", "keys", "values", "get"):
            return _const(_Method(known, attr), computed)
        if isinstance(known, _KDict):
            try:
                return _const(known.lookup(attr), computed)
            except _NoFold:
                return INPUT  # undefined
        if isinstance(known, _Loop):
            if attr == "cycle":
                return _const(_Method(known, attr))
            if attr in ("previtem", "nextitem"):
                return env.get("\0loop.item", INPUT)
            return INPUT  # counters and flags: never names
        if isinstance(known, _Cycler):
            if attr == "current":
                return _join(*(_const(i, True) for i in known.items)) if known.items else INPUT
            if attr == "next":
                return _const(_Method(known, attr))
        if isinstance(known, _Self):
            return _const(_BlockRef(attr)) if attr in self.blocks else OPAQUE
        return OPAQUE  # an attribute of one of the template's own objects

    def item(self, node: Any, env: dict[str, _Val], depth: int) -> _Val:
        nodes = self.nodes

        obj = self.expr(node.node, env, depth)
        if isinstance(node.arg, nodes.Slice):
            bounds = [
                self.expr(p, env, depth) if p is not None else _const(None)
                for p in (node.arg.start, node.arg.stop, node.arg.step)
            ]
            return _lift(_slice, obj, *bounds)
        key = self.expr(node.arg, env, depth)
        # A plain literal key (message['content']) is a copy, not a computation; a key from
        # input reads data, unless what it indexes is one of the template's own objects.
        on_object = any(isinstance(k, _TEMPLATE_OBJECTS) for k in obj.known)
        self.judge.key(key, node.arg, chosen_at_render=on_object, dotted=False)
        if obj.known and all(isinstance(k, _Self) for k in obj.known):
            names = [k for k in key.known if isinstance(k, str) and k in self.blocks]
            return _join(*(_const(_BlockRef(n)) for n in names)) if names else OPAQUE
        # Picking from a literal list or dict is selection; picking characters is spelling.
        spelled = obj.computed or any(isinstance(k, str) for k in obj.known)
        result = _lift(_subscript, obj, key)._replace(computed=spelled)
        if key.open:  # an index not folded may pick any element: judge them all
            picks = [_const(p, spelled) for k in obj.known for p in _picks(k)]
            result = _join(result, *picks)
        return result

    def filter(self, node: Any, base: _Val, env: dict[str, _Val], depth: int) -> _Val:
        args = [self.expr(arg, env, depth) for arg in node.args]
        kwargs = {kw.key: self.expr(kw.value, env, depth) for kw in node.kwargs}
        extras = self.dyn(node, env, depth)
        found = _attribute_argument(node)
        if found is not None:
            arg_node, is_attr = found
            value = self.expr(arg_node, env, depth)
            self.judge.key(value, arg_node, chosen_at_render=True, dotted=not is_attr)
        name = node.name
        everything = [base, *args, *kwargs.values(), *extras]
        if name == "map" and len(args) >= 2 and "attr" in args[0].known:
            # map('at' ~ 'tr', name): the name is an attribute however the filter is spelt.
            self.judge.key(args[1], node.args[1], chosen_at_render=True, dotted=False)
        if name == "map" and args and not kwargs:
            return self.map_filter(node, base, args)
        if name in ("default", "d"):
            fallback = args[0] if args else _const("")
            return _join(base, fallback)
        if name == "random":
            elements, whole = _elements(base)
            picked = [_const(k, base.computed) for k in elements]
            return _join(*picked, *([] if whole and picked else [_unknown(base)]))
        if name == "format" and kwargs and not args and not extras:
            keys = list(kwargs)  # '%(u)s'|format(u='_'): printf with a mapping
            return _lift(
                lambda fmt, *vs: _printf(fmt, _KDict(zip(keys, vs, strict=True))),
                base,
                *kwargs.values(),
            )
        function = _FILTERS.get(name)
        if function is None or kwargs or extras:
            if name in ("select", "reject", "map") and args:
                self.judge_filter_name(node, args[0])
            return _unknown(*everything)
        return _lift(function, base, *args)

    def map_filter(self, node: Any, base: _Val, args: list[_Val]) -> _Val:
        self.judge_filter_name(node, args[0])
        name = next(iter(args[0].known)) if len(args[0].known) == 1 else None
        function = _FILTERS.get(name) if isinstance(name, str) else None
        if function is None or args[0].open:
            return _unknown(base, *args)
        return _lift(lambda seq, *a: _Iter(function(x, *a) for x in _as_list(seq)), base, *args[1:])

    def judge_filter_name(self, node: Any, name: _Val) -> None:
        """``map(name)``/``select(name)`` look a filter or test up by a string."""
        if name.open:
            self.judge.add("dynamic", f"{node.name}(<filter chosen at render time>)", node.lineno)

    def dyn(self, node: Any, env: dict[str, _Val], depth: int) -> list[_Val]:
        return [
            self.expr(extra, env, depth)
            for extra in (node.dyn_args, node.dyn_kwargs)
            if extra is not None
        ]

    def call(self, node: Any, env: dict[str, _Val], depth: int) -> _Val:
        nodes = self.nodes

        if isinstance(node.node, nodes.Getattr) and node.node.attr in _MUTATORS:
            mutated = self.mutation(node, env, depth)
            if mutated is not None:
                return mutated
        callee = self.expr(node.node, env, depth)
        args = [self.expr(arg, env, depth) for arg in node.args]
        kwargs = {kw.key: self.expr(kw.value, env, depth) for kw in node.kwargs}
        extras = self.dyn(node, env, depth)
        results: list[_Val] = []
        if callee.open:
            results.append(_unknown(callee, *args, *kwargs.values(), *extras))
        for known in callee.known:
            if extras:
                results.append(_unknown(*args, *kwargs.values(), *extras))
            else:
                results.append(self.apply(node, known, args, kwargs, env, depth))
        return _join(*results) if results else INPUT

    def apply(
        self,
        node: Any,
        callee: Any,
        args: list[_Val],
        kwargs: dict[str, _Val],
        env: dict[str, _Val],
        depth: int,
    ) -> _Val:
        everything = [*args, *kwargs.values()]
        if isinstance(callee, _Macro):
            return self.call_macro(callee, args, kwargs, env, depth)
        if isinstance(callee, _Caller):
            return self.callers[callee.position] if callee.position < len(self.callers) else INPUT
        if isinstance(callee, _BlockRef):
            return self.render_block(callee.name, env, depth)
        if isinstance(callee, _Global):
            return self.call_global(node, callee.name, args, kwargs, env)
        if isinstance(callee, _Joiner):
            return _join(_const("", True), _const(callee.separator, True))
        if isinstance(callee, _Method):
            if isinstance(callee.receiver, _Loop | _Cycler):
                if isinstance(callee.receiver, _Loop):
                    chosen = args
                else:
                    chosen = [_const(i, True) for i in callee.receiver.items]
                return _join(*chosen)._replace(computed=True) if chosen else INPUT
            return self.method(node, callee, args, kwargs)
        return _unknown(*everything)

    def mutation(self, node: Any, env: dict[str, _Val], depth: int) -> _Val | None:
        """``l.append(x)``, ``d.update(e)``, ``l.pop(0)``...: the container held by a variable
        (or a namespace attribute) changes; the result is what the method returns."""
        nodes = self.nodes

        target = node.node.node
        container = self.expr(target, env, depth)
        if not container.known or node.kwargs or node.dyn_args or node.dyn_kwargs:
            return None
        name = node.node.attr
        self.judge.literal_name(name, node.lineno)
        args = [self.expr(arg, env, depth) for arg in node.args]
        changed = _lift(lambda c, *a: _mutate(name, c, *a)[0], container, *args)
        returned = _lift(lambda c, *a: _mutate(name, c, *a)[1], container, *args)
        changed = changed._replace(computed=container.computed or any(a.computed for a in args))
        if changed.open and not changed.known:
            changed = _join(changed, *(_const(p, True) for k in container.known for p in _picks(k)))
        if isinstance(target, nodes.Name):
            env[target.name] = changed
        elif isinstance(target, nodes.Getattr) and isinstance(target.node, nodes.Name):
            holders = env.get(target.node.name, INPUT)
            for space in (k for k in holders.known if isinstance(k, _NS)):
                env[_ns_key(space.ident, target.attr)] = changed
        return returned._replace(computed=changed.computed)

    def call_global(
        self,
        node: Any,
        name: str,
        args: list[_Val],
        kwargs: dict[str, _Val],
        env: dict[str, _Val],
    ) -> _Val:
        if name == "dict" and len(args) <= 1:
            keys = list(kwargs)
            return _lift(
                lambda *vs: _KDict(
                    {
                        **_as_mapping(vs[0] if args else ()),
                        **dict(zip(keys, vs[len(args) :], strict=True)),
                    }.items()
                ),
                *args,
                *kwargs.values(),
            )
        if name == "namespace":
            space = _NS(id(node))
            for arg in args[:1]:  # namespace({'k': v}) or namespace([('k', v)])
                for known in arg.known:
                    try:
                        pairs = _as_mapping(known)
                    except _NoFold:
                        continue
                    for key, value in pairs.items():
                        if isinstance(key, str):
                            slot = _ns_key(space.ident, key)
                            env[slot] = _join(env.get(slot, _Val(frozenset())), _const(value))
            for key, value in kwargs.items():
                env[_ns_key(space.ident, key)] = value
            return _const(space)
        if name == "range" and not kwargs:
            return _lift(lambda *a: tuple(range(*(_small_int(x) for x in a))), *args)
        if name == "cycler" and not kwargs:
            return _lift(lambda *xs: _Cycler(tuple(xs)), *args)
        if name == "joiner" and not kwargs:
            return _lift(_Joiner, *args) if args else _const(_Joiner(", "))
        return _unknown(*args, *kwargs.values())  # lipsum(): text nobody can fold

    def render_block(self, name: str, env: dict[str, _Val], depth: int) -> _Val:
        """``self.name()``: the output of the template's block ``name``."""
        if name in self.active_blocks or name not in self.blocks:
            return OPAQUE
        self.copying(env, self.blocks[name], depth)
        self.active_blocks.add(name)
        scope = dict(env)
        try:
            return self.body(self.blocks[name].body, scope, depth, capture=True)
        finally:
            self.active_blocks.discard(name)
            _keep_namespaces(env, scope, surely=True)

    def method(self, node: Any, method: _Method, args: list[_Val], kwargs: dict[str, _Val]) -> _Val:
        receiver = method.receiver
        if isinstance(receiver, _KDict):
            if method.name == "items":
                return _const(_View(tuple(pair) for pair in receiver), True)
            if method.name == "keys":
                return _const(_KeysView(_as_list(receiver)), True)
            if method.name == "values":
                return _const(_ValuesView(v for _, v in receiver), True)
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
            return _unknown(*args, *kwargs.values())
        function = _STR_METHODS[method.name]
        return _lift(lambda *a: function(receiver, *a), *args)


def _lookup_or(mapping: _KDict, key: Any, default: tuple[Any, ...]) -> Any:
    try:
        return mapping.lookup(key)
    except _NoFold:
        return default[0] if default else None


_MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"}
    | {"update", "setdefault", "popitem"}
)


def _mutate(name: str, container: Any, *args: Any) -> tuple[Any, Any]:
    """What a list or dict method does to a folded ``container``: (new container, result)."""
    if isinstance(container, _KDict):
        pairs = dict(container)
        if name == "update" and len(args) == 1 and isinstance(args[0], _KDict):
            pairs.update(dict(args[0]))
            return _KDict(pairs.items()), None
        if name == "setdefault" and len(args) in (1, 2):
            value = pairs.setdefault(args[0], args[1] if len(args) == 2 else None)
            return _KDict(pairs.items()), value
        if name == "pop" and len(args) in (1, 2):
            value = pairs.pop(args[0], *args[1:])
            return _KDict(pairs.items()), value
        if name == "popitem" and not args and pairs:
            return _KDict(list(pairs.items())[:-1]), list(pairs.items())[-1]
        if name == "clear" and not args:
            return _KDict(), None
        raise _NoFold
    if not _is_seq(container):
        raise _NoFold
    items = list(container)
    result: Any = None
    if name == "append" and len(args) == 1:
        items.append(args[0])
    elif name == "extend" and len(args) == 1:
        items.extend(_as_list(args[0]))
    elif name == "insert" and len(args) == 2:
        items.insert(_small_int(args[0]), args[1])
    elif name == "pop" and len(args) <= 1:
        result = items.pop(*(_small_int(a) for a in args))
    elif name == "remove" and len(args) == 1:
        items.remove(args[0])
    elif name == "clear" and not args:
        items.clear()
    elif name == "reverse" and not args:
        items.reverse()
    elif name == "sort" and not args and all(isinstance(i, str) for i in items):
        items.sort()
    else:
        raise _NoFold
    return tuple(items), result


def _as_mapping(value: Any) -> dict[Any, Any]:
    """``dict(value)`` for a folded dict or list of pairs."""
    if isinstance(value, _KDict):
        return dict(value)
    pairs = _as_list(value)
    if not all(_is_seq(pair) and len(pair) == 2 for pair in pairs):
        raise _NoFold
    return {pair[0]: pair[1] for pair in pairs}


def _picks(value: Any) -> list[Any]:
    """What ``value[i]`` may give for an unknown ``i`` (bounded)."""
    if isinstance(value, _KDict):
        return [v for _, v in value][: MAX_CHOICES + 1]
    if isinstance(value, str) or _is_seq(value):
        return list(dict.fromkeys(value))[: MAX_CHOICES + 1]
    return []


def _elements(value: _Val) -> tuple[list[Any], bool]:
    """The elements of every known sequence ``value`` may be (bounded), and whether that is
    all of them."""
    out: list[Any] = []
    whole = not value.open
    for known in value.known:
        try:
            listed = _as_list(known)
        except _NoFold:
            whole = False
            continue
        whole = whole and len(listed) <= MAX_CHOICES
        out.extend(listed[: MAX_CHOICES + 1])
    return out, whole


def _slice(value: Any, start: Any, stop: Any, step: Any) -> Any:
    if not (isinstance(value, str) or _is_seq(value)):
        raise _NoFold
    for bound in (start, stop, step):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise _NoFold
    return value[start:stop:step]


def _subscript(value: Any, key: Any) -> Any:
    if isinstance(value, _KDict):
        return value.lookup(key)
    if (
        (isinstance(value, str) or _is_seq(value))
        and isinstance(key, int)
        and not isinstance(key, bool)
    ):
        return value[key]
    raise _NoFold


_BINARY: Mapping[str, Callable[[Any, Any], Any]] = {
    "Add": _add,
    "Sub": lambda a, b: _number(a) - _number(b),
    "Mul": _multiply,
    "Div": lambda a, b: _number(a) / _number(b),
    "FloorDiv": lambda a, b: _number(a) // _number(b),
    "Mod": lambda a, b: _printf(a, b) if isinstance(a, str) else _number(a) % _number(b),
    "Pow": lambda a, b: _power(_number(a), _number(b)),
}


def _join_envs(first: dict[str, _Val], second: dict[str, _Val]) -> dict[str, _Val]:
    """The environment after either of two paths (a name unset on one may be input)."""
    out: dict[str, _Val] = {}
    for key in first.keys() | second.keys():
        a, b = first.get(key), second.get(key)
        if a is None or b is None:
            present = a if a is not None else b
            assert present is not None
            out[key] = _join(present, INPUT)
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
