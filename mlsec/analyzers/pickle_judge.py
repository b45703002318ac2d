"""Judge what the pickles of one member make the unpickler do: every import by name AND use.

The static machine (:mod:`mlsec.formats.pickle`) records for every global what the unpickler
does with it: calls it, constructs it and gives it state, modifies it, hands it to another
callable at some position, or only keeps it as a value. This module merges that over all the
pickles of one member (a file, or one archive member) and turns it into findings with the
policy of :mod:`mlsec.analyzers.pickle_policy`:

- critical names (code, processes, files, network, imports, deserializers): MLS101, whatever
  their use, except the few whose constant calls the machine evaluated (``getattr`` on an
  import, ``torch.storage._load_from_bytes`` on constant bytes, which are scanned as a member);
- called and not allowed to be called (unlisted, or listed for less): MLS104 (high), and so is
  a global handed to a listed helper that calls it (``functools.partial``, ``map``,
  ``defaultdict``...) and a call whose callee is computed while loading;
- an imported object modified in place (BUILD, APPEND, SETITEM on it): MLS110 (high);
- constructed and given state, not listed: MLS108 (medium, one finding per member);
- only referenced, not listed: MLS109 (low, one finding per member);
- listed ML library objects used as allowed: MLS103 (medium, one finding per member).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mlsec.analyzers.pickle_policy import (
    LEVEL_CALL,
    LEVEL_CONSTRUCT,
    LEVEL_DATA,
    PicklePolicy,
    Tier,
    framework_of,
)
from mlsec.formats.pickle import (
    MAX_COMPUTED,
    STATE_POSITION,
    USE_CALL,
    USE_CONSTRUCT,
    USE_MUTATE,
    USE_STATE,
    USE_UNMODELLED,
    Call,
    Global,
    PickleResult,
    Unresolved,
    render,
)
from mlsec.records import Slotted

_LISTED = 6  # names shown in an aggregated message
_LEVEL_WORDS = {LEVEL_DATA: "as data", LEVEL_CONSTRUCT: "to be constructed", LEVEL_CALL: ""}


class Judged(NamedTuple):
    """One finding to report for the member (the caller adds path and member)."""

    rule_id: str
    message: str
    offset: int | None
    key: str
    details: dict[str, Any] | None = None


class Judgement(NamedTuple):
    findings: list[Judged]
    frameworks: frozenset[str]  # ML frameworks whose names the member uses
    joblib: bool  # joblib's array wrappers are used (the file is a joblib dump)


class _Seen(Slotted):
    """One global (by the name written in the pickle) over all pickles of a member."""

    __slots__ = ("call", "computed_args", "imp", "passed", "uses")

    def __init__(self, imp: Global | Unresolved) -> None:
        self.imp = imp
        self.call: Call | None = None
        self.uses = 0
        self.passed: set[tuple[str, str, int]] = set()
        self.computed_args: dict[int, list[Any]] = {}

    def merge(self, imp: Global | Unresolved) -> None:
        self.uses |= imp.uses
        if self.call is None and imp.calls:
            self.call = imp.calls[0]
        if imp.passed:
            self.passed.update(imp.passed)
        for position, values in imp.computed_args.items():
            kept = self.computed_args.setdefault(position, [])
            kept.extend(values[: max(0, 8 - len(kept))])


class MemberImports(Slotted):
    """What the pickles of one member import and call, merged; judged once at the end."""

    __slots__ = ("computed", "computed_total", "imports", "member", "pickles")

    def __init__(self, member: str | None) -> None:
        self.member = member
        self.pickles = 0
        self.imports: dict[str, _Seen] = {}
        self.computed: list[Call] = []
        self.computed_total = 0

    def add(self, res: PickleResult) -> None:
        self.pickles += 1
        for imp in res.imports:
            key = imp.qualname if isinstance(imp, Global) else f"unresolved:{imp.detail}"
            seen = self.imports.get(key)
            if seen is None:
                seen = self.imports[key] = _Seen(imp)
            seen.merge(imp)
        self.computed_total += res.computed_total
        room = MAX_COMPUTED - len(self.computed)
        if room > 0:
            self.computed.extend(res.computed[:room])


def judge(acc: MemberImports, policy: PicklePolicy) -> Judgement:
    """The findings for one member's imports and calls."""
    out: list[Judged] = []
    ml: list[str] = []
    constructed: list[str] = []
    referenced: list[str] = []
    frameworks: set[str] = set()
    joblib = False
    for key, seen in acc.imports.items():
        imp = seen.imp
        call = seen.call
        shown = render(call) if call is not None else None
        offset = call.offset if call is not None else imp.offset
        if isinstance(imp, Unresolved):
            out.append(
                Judged(
                    "MLS104",
                    "Pickle imports something that cannot be resolved statically:"
                    f" {imp.detail}" + (f"; called as {shown}" if shown else ""),
                    offset,
                    key,
                )
            )
            continue
        verdict = policy.classify(imp.module, imp.name)
        resolved = verdict.resolved
        if verdict.tier is not Tier.CRITICAL:
            fw = framework_of(resolved)
            if fw is not None:
                frameworks.add(fw)
        if resolved.startswith("joblib.numpy_pickle."):
            joblib = True
        level, helper = _effective_use(seen, policy)
        loads = "" if resolved == key else f" (loads {resolved})"
        details: dict[str, Any] = {"global": key, "resolved": resolved, "opcode": imp.opcode}
        if shown:
            details["call"] = shown
        what = f"Pickle {'calls ' + shown if shown else 'imports ' + key}{loads}"
        if helper is not None and not shown:
            what = f"Pickle hands {key}{loads} to {helper}, which calls it"
        if verdict.tier is Tier.CRITICAL:
            if _modelled_away(seen, resolved, level, helper, policy):
                continue
            out.append(Judged("MLS101", f"{what}: {verdict.reason}", offset, key, details))
            continue
        out.extend(_helper_arguments(seen, resolved, policy, offset, key))
        if seen.uses & USE_MUTATE:
            out.append(
                Judged(
                    "MLS110",
                    f"Pickle modifies the imported object {resolved} in place (BUILD, APPEND or"
                    " SETITEM on it): loading it patches a live module or class",
                    imp.offset,
                    key,
                    details,
                )
            )
            continue
        if level < LEVEL_CALL and (
            ("." in imp.name and "__" in imp.name)
            or (imp.name.startswith("__") and imp.name.endswith("__"))
        ):
            # an unlisted dunder (__globals__, __builtins__, __dict__...) or an attribute walk
            # through one is a gadget to everything its object holds
            level = LEVEL_CALL
        listed = verdict.tier in (Tier.SAFE, Tier.ML)
        if listed and verdict.level >= level:
            if verdict.tier is Tier.ML:
                ml.append(key)
            continue
        if level == LEVEL_CALL:
            if listed:
                why = f"listed only {_LEVEL_WORDS[verdict.level]} ({verdict.reason})"
            else:
                why = verdict.reason
            details["use"] = "call"
            if helper:
                details["helper"] = helper
            out.append(Judged("MLS104", f"{what}; {key} is {why}", offset, key, details))
        elif level == LEVEL_CONSTRUCT:
            constructed.append(key)
        else:
            referenced.append(key)
    out.extend(_computed_callees(acc, policy))
    if ml:
        out.append(
            Judged(
                "MLS103",
                f"Pickle reconstructs objects of ML/data libraries ({_names(ml)}); loading it"
                " runs their code and requires trusting the producer",
                None,
                "ml-globals",
                {"globals": ml},
            )
        )
    if constructed:
        out.append(
            Judged(
                "MLS108",
                f"Pickle constructs objects of classes that are not on the allowlist and gives"
                f" them state ({_names(constructed)}); loading it runs their __new__ and"
                " __setstate__ code. If you trust the producer, add them to models.trusted"
                " (or models.allow) in .mlsec.toml",
                None,
                "unlisted-classes",
                {"globals": constructed},
            )
        )
    if referenced:
        out.append(
            Judged(
                "MLS109",
                f"Pickle references globals that are not on the allowlist but never calls or"
                f" constructs them ({_names(referenced)}); loading it imports their modules",
                None,
                "unlisted-references",
                {"globals": referenced},
            )
        )
    return Judgement(out, frozenset(frameworks), joblib)


def _effective_use(seen: _Seen, policy: PicklePolicy) -> tuple[int, str | None]:
    """The strongest use of a global, counting helpers that call or construct it."""
    helper: str | None = None
    called = bool(seen.uses & USE_CALL)
    built = bool(seen.uses & (USE_CONSTRUCT | USE_STATE))
    for module, name, position in seen.passed:
        if not module:
            continue  # handed to an unresolved callee: that callee is judged high already
        callee = policy.qualname(module, name)
        if position in policy.helper_calls.get(callee, ()):
            called = True
            helper = helper or callee
        elif position in policy.helper_constructs.get(callee, ()):
            built = True
    if called:
        return LEVEL_CALL, helper
    return (LEVEL_CONSTRUCT if built else LEVEL_DATA), None


def _modelled_away(
    seen: _Seen, resolved: str, level: int, helper: str | None, policy: PicklePolicy
) -> bool:
    """Whether every use of a critical callable was evaluated by the machine."""
    if seen.uses & (USE_MUTATE | USE_CONSTRUCT | USE_STATE) or helper is not None:
        return False
    if resolved in policy.lookups:
        return not seen.uses & USE_CALL  # each call was a constant lookup (USE_MODELLED)
    if resolved in policy.loaders:
        # called on constant bytes only: those are scanned as a nested member
        return not seen.uses & USE_UNMODELLED
    return False


def _helper_arguments(
    seen: _Seen, resolved: str, policy: PicklePolicy, offset: int | None, key: str
) -> list[Judged]:
    """Computed values handed to a helper at a position it calls: proved harmless or high."""
    positions = policy.helper_calls.get(resolved)
    if not positions or not seen.computed_args:
        return []
    for position in sorted(positions):
        for value in seen.computed_args.get(position, ()):
            if not _proved_callable(value, policy):
                where = (
                    f"state item {position - STATE_POSITION}"
                    if position >= STATE_POSITION
                    else f"argument {position}"
                )
                return [
                    Judged(
                        "MLS104",
                        f"Pickle hands {resolved} a callable computed while loading"
                        f" ({where}: {render(value)}), and {resolved} calls it",
                        offset,
                        f"computed-argument:{key}",
                        {"helper": resolved, "value": render(value)},
                    )
                ]
    return []


def _computed_callees(acc: MemberImports, policy: PicklePolicy) -> list[Judged]:
    unproved = [c for c in acc.computed if not _proved_callable(c.func, policy)]
    if not unproved and acc.computed_total <= len(acc.computed):
        return []
    if not unproved:  # more computed calls than kept: the rest cannot be proved harmless
        unproved = acc.computed[:1]
    first = unproved[0]
    return [
        Judged(
            "MLS104",
            "Pickle calls a callee computed while loading (the result of another call or a"
            f" value the scanner cannot resolve): {render(first)}",
            first.offset,
            "computed-callee",
            {"call": render(first), "computed_calls": acc.computed_total},
        )
    ]


def _proved_callable(value: Any, policy: PicklePolicy, depth: int = 0) -> bool:
    """Whether a computed callable is a functools.partial of a callable listed for calls."""
    if depth > 8:
        return False
    if isinstance(value, Global):
        verdict = policy.classify(value.module, value.name)
        return verdict.tier in (Tier.SAFE, Tier.ML) and verdict.level >= LEVEL_CALL
    if not isinstance(value, Call) or not isinstance(value.func, Global):
        return False
    if policy.qualname(value.func.module, value.func.name) != "functools.partial":
        return False
    target: Any = None
    if isinstance(value.args, tuple) and value.args:
        target = value.args[0]
    state = value.state
    if isinstance(state, tuple) and state and state[0] is not target:
        # partial.__setstate__ replaces the function: both must be proved
        if target is not None and not _proved_callable(target, policy, depth + 1):
            return False
        target = state[0]
    return target is not None and _proved_callable(target, policy, depth + 1)


def _names(names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more
