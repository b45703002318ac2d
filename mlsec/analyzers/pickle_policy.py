"""Which pickle imports are safe, trusted, unknown or code-running: policy as data.

The tiers and their reasons live in ``rules/lists/pickle_globals.toml``: a critical tier
of patterns, and exact safe and ml entries each allowed up to a use (called, constructed, or
only referenced as data), the helpers that call or construct what they are handed, and the
few critical callables whose calls are evaluated (``getattr`` on constants, nested loaders).
Users add to the safe and trusted tiers under ``[models]`` in their configuration (validated
here, together with the other keys of that section). Names resolve the way the unpickler
resolves them: CPython's Python 2 mapping (``_compat_pickle``: ``__builtin__`` ->
``builtins``, ``commands`` -> ``subprocess``...) and module aliases (``posix``/``nt`` ->
``os``, ``_io`` -> ``io``...).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from mlsec.errors import ConfigError
from mlsec.findings import Severity

LIST_NAME = "pickle_globals"
_MAX_TAILS = 32  # tails of a dotted name judged against the critical tier
_GADGET_MODULES = frozenset(
    {"os", "sys", "subprocess", "builtins", "importlib", "ctypes", "pickle", "marshal",
     "shutil", "socket", "runpy", "pty", "posix", "nt"}
)  # fmt: skip
_PATTERN = re.compile(r"^[A-Za-z_][\w.*]*$")


class Tier(enum.IntEnum):
    SAFE = 0
    ML = 1
    UNKNOWN = 2
    CRITICAL = 3


# Use levels an entry allows (what the unpickler may do with the global).
LEVEL_DATA = 0  # only referenced
LEVEL_CONSTRUCT = 1  # created without a call and given state
LEVEL_CALL = 2  # called
_LEVELS = {"data": LEVEL_DATA, "construct": LEVEL_CONSTRUCT, "call": LEVEL_CALL}

TIER_SEVERITY = {
    Tier.SAFE: Severity.INFO,
    Tier.ML: Severity.MEDIUM,
    Tier.UNKNOWN: Severity.HIGH,
    Tier.CRITICAL: Severity.CRITICAL,
}


class Verdict(NamedTuple):
    tier: Tier
    resolved: str  # "module.name" after Python 2 mapping and aliases
    reason: str
    level: int = LEVEL_CALL  # for SAFE and ML: the most the entry allows (LEVEL_*)


class _Entry(NamedTuple):
    """Patterns sharing one reason, pre-sorted so matching needs no regular expressions
    (compiling a few hundred fnmatch regexes would cost more than scanning a checkpoint)."""

    patterns: tuple[str, ...]
    reason: str
    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()  # from "module.*": the module and everything below it
    globs: tuple[tuple[str, ...], ...] = ()  # other patterns, split at "*"
    level: int = LEVEL_CALL

    @classmethod
    def build(cls, patterns: Iterable[str], reason: str, level: int = LEVEL_CALL) -> _Entry:
        pats = tuple(patterns)
        exact = frozenset(p for p in pats if "*" not in p)
        prefixes = tuple(p[:-1] for p in pats if p.endswith(".*") and p.count("*") == 1)
        globs = tuple(
            tuple(p.split("*"))
            for p in pats
            if "*" in p and not (p.endswith(".*") and p.count("*") == 1)
        )
        return cls(pats, reason, exact, prefixes, globs, level)

    def matches(self, qualname: str, *, glob: bool) -> bool:
        if qualname in self.exact:
            return True
        if not glob:
            return False
        if qualname.startswith(self.prefixes):
            return True
        return any(_glob_match(parts, qualname) for parts in self.globs)


def _glob_match(parts: tuple[str, ...], text: str) -> bool:
    """fnmatch with "*" only (matching any text, dots included)."""
    first, *middle, last = parts
    if not text.startswith(first) or not text.endswith(last):
        return False
    if len(text) < len(first) + len(last):
        return False
    pos = len(first)
    end = len(text) - len(last)
    for part in middle:
        found = text.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return True


# -- [models] configuration ------------------------------------------------------------------
class ModelsConfig(NamedTuple):
    """The validated ``[models]`` section."""

    allow: tuple[str, ...] = ()  # extra safe globals ("module.name" or patterns)
    trusted: tuple[str, ...] = ()  # extra trusted-library globals (medium instead of high)
    # Where modelscan gives its second opinion (mlsec.analyzers.modelscan_opinion): "auto"
    # (files mlsec could not read fully), "always" or "off".
    modelscan: str = "auto"


MODELSCAN_MODES: Mapping[object, str] = {
    "auto": "auto",
    "always": "always",
    "off": "off",
    True: "auto",
    False: "off",
}
_MODELS_KEYS = {"allow", "trusted", "modelscan"}


def parse_models_config(section: Mapping[str, Any], origin: str = "[models]") -> ModelsConfig:
    """Validate the ``[models]`` section; raise :class:`ConfigError` naming the key."""
    unknown = sorted(set(section) - _MODELS_KEYS)
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(unknown)} in [models]",
            hint=f"known keys: {', '.join(sorted(_MODELS_KEYS))}",
        )
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("allow", "trusted"):
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{origin}: models.{key} must be a list of strings")
        for pattern in value:
            if not _PATTERN.match(pattern) or "." not in pattern:
                raise ConfigError(
                    f"{origin}: models.{key}: {pattern!r} is not a 'module.name' pattern",
                    hint="write globals as 'package.module.Class' or 'package.*'",
                )
        lists[key] = tuple(value)
    given = section.get("modelscan", "auto")
    modelscan = MODELSCAN_MODES.get(given) if isinstance(given, str | bool) else None
    if modelscan is None:
        raise ConfigError(
            f'{origin}: models.modelscan must be "auto", "always" or "off" (or true/false),'
            f" got {given!r}",
            hint='"auto" (the default) asks modelscan only about files mlsec could not read fully',
        )
    return ModelsConfig(allow=lists["allow"], trusted=lists["trusted"], modelscan=modelscan)


# -- the policy ----------------------------------------------------------------------------------
class PicklePolicy:
    """The tiers of pickle_globals.toml (plus configuration), and verdicts on imports."""

    def __init__(
        self,
        aliases: Mapping[str, str],
        critical: tuple[_Entry, ...],
        safe: tuple[_Entry, ...],
        ml: tuple[_Entry, ...],
        helper_calls: Mapping[str, frozenset[int]] | None = None,
        helper_constructs: Mapping[str, frozenset[int]] | None = None,
        lookups: frozenset[str] = frozenset(),
        loaders: frozenset[str] = frozenset(),
    ) -> None:
        self.aliases = aliases
        self.critical = critical
        self.safe = safe
        self.ml = ml
        self.helper_calls = dict(helper_calls or {})
        self.helper_constructs = dict(helper_constructs or {})
        self.lookups = lookups  # critical callables whose constant calls the machine evaluates
        self.loaders = loaders  # critical deserializers modelled on constant bytes
        self._cache: dict[tuple[str, str], Verdict] = {}
        self._names: dict[tuple[str, str], str] = {}

    @classmethod
    def load(cls, config: ModelsConfig | None = None) -> PicklePolicy:
        from mlsec.rules import load_list

        data = load_list(LIST_NAME)
        config = config or ModelsConfig()

        def entries(tier: str, exact: bool) -> list[_Entry]:
            out = []
            for e in data.get(tier, []):
                names = [str(g) for g in e.get("globals", [])]
                level = _LEVELS[str(e.get("use", "call"))]
                namespace = e.get("namespace")
                if namespace:  # a namespace that is not a Python package (see its reason)
                    names.append(f"{namespace}.*")
                elif exact and any("*" in n for n in names):
                    raise ValueError(f"{LIST_NAME}: [[{tier}]] entries must be exact names")
                out.append(_Entry.build(names, str(e.get("reason", "")), level))
            return out

        safe = entries("safe", exact=True)
        ml = entries("ml", exact=True)
        if config.allow:
            safe.append(_Entry.build(config.allow, "allowed by configuration (models.allow)"))
        if config.trusted:
            ml.append(_Entry.build(config.trusted, "trusted by configuration (models.trusted)"))
        aliases = {str(k): str(v) for k, v in data.get("aliases", {}).items()}
        helpers = data.get("helpers", {})

        def positions(table: Mapping[str, Any]) -> dict[str, frozenset[int]]:
            return {str(k): frozenset(int(i) for i in v) for k, v in table.items()}

        modelled = data.get("modelled", {})
        return cls(
            aliases,
            tuple(entries("critical", exact=False)),
            tuple(safe),
            tuple(ml),
            positions(helpers.get("calls", {})),
            positions(helpers.get("constructs", {})),
            frozenset(str(n) for n in modelled.get("lookup", [])),
            frozenset(str(n) for n in modelled.get("loaders", [])),
        )

    def qualname(self, module: str, name: str) -> str:
        """``module.name`` as the unpickler resolves it (aliases, Python 2 names)."""
        key = (module, name)
        found = self._names.get(key)
        if found is None:
            resolved = self.resolve(module.strip(), name.strip())
            found = f"{resolved[0]}.{resolved[1]}"
            self._names[key] = found
        return found

    # -- name resolution -----------------------------------------------------------------------
    def resolve(self, module: str, name: str) -> tuple[str, str]:
        """The module and name the unpickler would really load."""
        import _compat_pickle  # CPython's own Python 2 -> 3 table (what fix_imports applies)

        mapped = _compat_pickle.NAME_MAPPING.get((module, name))
        if mapped is not None:
            module, name = mapped
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        head = module
        rest = ""
        while True:
            if head in self.aliases:
                module = self.aliases[head] + rest
                break
            if "." not in head:
                break
            head, _, tail = head.rpartition(".")
            rest = "." + tail + rest
        return module, name

    def classify(self, module: str, name: str) -> Verdict:
        key = (module, name)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._classify(module.strip(), name.strip())
            self._cache[key] = cached
        return cached

    def _classify(self, module: str, name: str) -> Verdict:
        module, name = self.resolve(module, name)
        qualname = f"{module}.{name}"
        dotted = "." in name
        hit = _match(self.critical, qualname, glob=True)
        if hit is None and dotted:
            # Protocol 4 walks attributes: "pkg.mod" + "utils.os.system" reaches os.system.
            # Judge every tail of the path, with each segment also resolved as a module alias.
            # Only the last tails: what an attribute walk ends on is named by its last
            # segments (a hostile path of 20,000 segments must not cost quadratic time).
            segments = qualname.split(".")
            for i in range(max(1, len(segments) - 1 - _MAX_TAILS), len(segments) - 1):
                tail_module = self.resolve(".".join(segments[i:-1]), segments[-1])[0]
                hit = _match(self.critical, f"{tail_module}.{segments[-1]}", glob=True)
                if hit is not None:
                    break
        if hit is None:
            # A module reached as an attribute of another (collections.sys, x.y.os): pickles
            # never hold modules (they cannot be pickled), crafted ones do to reach them.
            last = self.resolve(name.rsplit(".", 1)[-1], "_")[0]
            if last in _GADGET_MODULES:
                hit = f"reaches the module {last} as an attribute"
        if hit is not None:
            return Verdict(Tier.CRITICAL, qualname, hit)
        # Dotted names reach attributes of what they import: only exact entries vouch for them.
        entry = _match_entry(self.safe, qualname, glob=not dotted)
        if entry is not None:
            return Verdict(Tier.SAFE, qualname, entry.reason, entry.level)
        entry = _match_entry(self.ml, qualname, glob=not dotted)
        if entry is not None:
            return Verdict(Tier.ML, qualname, entry.reason, entry.level)
        reason = "not on the allowlist"
        if dotted:
            reason = "attribute path (protocol 4 dotted name) not on the allowlist"
        return Verdict(Tier.UNKNOWN, qualname, reason)


def _match(entries: Iterable[_Entry], qualname: str, *, glob: bool) -> str | None:
    entry = _match_entry(entries, qualname, glob=glob)
    return None if entry is None else entry.reason


def _match_entry(entries: Iterable[_Entry], qualname: str, *, glob: bool) -> _Entry | None:
    for entry in entries:
        if entry.matches(qualname, glob=glob):
            return entry
    return None


def framework_of(qualname: str) -> str | None:
    """The ML framework a global belongs to, for the model facts."""
    top = qualname.split(".", 1)[0]
    return {
        "torch": "pytorch",
        "__torch__": "pytorch",
        "sklearn": "scikit-learn",
        "xgboost": "xgboost",
        "lightgbm": "lightgbm",
        "catboost": "catboost",
        "pandas": "pandas",
        "keras": "keras",
        "tensorflow": "tensorflow",
        "transformers": "transformers",
    }.get(top)
