"""Which pickle imports are safe, trusted, unknown or code-running: policy as data.

The tiers and their reasons live in ``rules/lists/pickle_globals.toml``; users add to the safe
and trusted tiers under ``[models]`` in their configuration (validated here, together with the
other keys of that section). Names resolve the way the unpickler resolves them: CPython's
Python 2 mapping (``_compat_pickle``: ``__builtin__`` -> ``builtins``, ``commands`` ->
``subprocess``...) and module aliases (``posix``/``nt`` -> ``os``, ``_io`` -> ``io``...).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from mlsec.errors import ConfigError
from mlsec.findings import Severity

LIST_NAME = "pickle_globals"
_PATTERN = re.compile(r"^[A-Za-z_][\w.*]*$")


class Tier(enum.IntEnum):
    SAFE = 0
    ML = 1
    UNKNOWN = 2
    CRITICAL = 3


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


class _Entry(NamedTuple):
    """Patterns sharing one reason, pre-sorted so matching needs no regular expressions
    (compiling a few hundred fnmatch regexes would cost more than scanning a checkpoint)."""

    patterns: tuple[str, ...]
    reason: str
    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()  # from "module.*": the module and everything below it
    globs: tuple[tuple[str, ...], ...] = ()  # other patterns, split at "*"

    @classmethod
    def build(cls, patterns: Iterable[str], reason: str) -> _Entry:
        pats = tuple(patterns)
        exact = frozenset(p for p in pats if "*" not in p)
        prefixes = tuple(p[:-1] for p in pats if p.endswith(".*") and p.count("*") == 1)
        globs = tuple(
            tuple(p.split("*"))
            for p in pats
            if "*" in p and not (p.endswith(".*") and p.count("*") == 1)
        )
        return cls(pats, reason, exact, prefixes, globs)

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
    modelscan: bool = True  # run modelscan as a second opinion (read by the formats analyzer)


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
    modelscan = section.get("modelscan", True)
    if not isinstance(modelscan, bool):
        raise ConfigError(f"{origin}: models.modelscan must be true or false")
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
    ) -> None:
        self.aliases = aliases
        self.critical = critical
        self.safe = safe
        self.ml = ml
        self._cache: dict[tuple[str, str], Verdict] = {}

    @classmethod
    def load(cls, config: ModelsConfig | None = None) -> PicklePolicy:
        from mlsec.rules import load_list

        data = load_list(LIST_NAME)
        config = config or ModelsConfig()

        def entries(tier: str) -> list[_Entry]:
            return [
                _Entry.build((str(g) for g in e.get("globals", [])), str(e.get("reason", "")))
                for e in data.get(tier, [])
            ]

        safe = entries("safe")
        ml = entries("ml")
        if config.allow:
            safe.append(_Entry.build(config.allow, "allowed by configuration (models.allow)"))
        if config.trusted:
            ml.append(_Entry.build(config.trusted, "trusted by configuration (models.trusted)"))
        aliases = {str(k): str(v) for k, v in data.get("aliases", {}).items()}
        return cls(aliases, tuple(entries("critical")), tuple(safe), tuple(ml))

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
            segments = qualname.split(".")
            for i in range(1, len(segments) - 1):
                tail_module = self.resolve(".".join(segments[i:-1]), segments[-1])[0]
                hit = _match(self.critical, f"{tail_module}.{segments[-1]}", glob=True)
                if hit is not None:
                    break
        if hit is not None:
            return Verdict(Tier.CRITICAL, qualname, hit)
        # Dotted names reach attributes of what they import: only exact entries vouch for them.
        hit = _match(self.safe, qualname, glob=not dotted)
        if hit is not None:
            return Verdict(Tier.SAFE, qualname, hit)
        hit = _match(self.ml, qualname, glob=not dotted)
        if hit is not None:
            return Verdict(Tier.ML, qualname, hit)
        reason = "not on the allowlist"
        if dotted:
            reason = "attribute path (protocol 4 dotted name) not on the allowlist"
        return Verdict(Tier.UNKNOWN, qualname, reason)


def _match(entries: Iterable[_Entry], qualname: str, *, glob: bool) -> str | None:
    for entry in entries:
        if entry.matches(qualname, glob=glob):
            return entry.reason
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
