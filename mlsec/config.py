"""Scan options: defaults, configuration files and command-line flags, merged in that order.

Configuration comes from ``--config FILE``, else the first ``.mlsec.toml`` or
``pyproject.toml`` with a ``[tool.mlsec]`` table found from the scanned path up to the
repository root (the git top level, else the working directory). Flags override files.
Unknown keys, bad values and unknown rule ids are errors naming the file and the key.
Sections owned by analyzers (``signatures``, ``dependencies``, ``models``, ``bom``) are passed
through and validated by their owners.

Trust model (DESIGN.md): flags and a ``--config`` file outside the scanned tree are the
operator's. Configuration inside the tree is the repository's own: it may scope and tune the
scan, but what its ``select``, ``ignore``, ``include``, ``exclude``, ``severity`` (downgrades)
and ``[[suppress]]`` entries remove stays in the report as suppressed (:class:`RepoTuning`),
and an in-tree file that cannot be used is reported (exit 2) while the scan goes on with the
defaults.
"""

# No `from __future__ import annotations` here: NamedTuple turns string annotations into
# ForwardRefs by compiling each one, which doubles the cost of creating ScanOptions at start-up.
import datetime
import os
import re
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlsec.errors import ConfigError, MlsecError
from mlsec.findings import EMPTY_MAPPING, Severity
from mlsec.rules import RULE_ID

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ANALYZER_SECTIONS = ("signatures", "dependencies", "models", "bom")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(value: object) -> int:
    """Bytes from an int or a string such as ``"512MiB"``, ``"2GB"`` or ``"4096"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str) or not (m := _SIZE.match(value)):
        raise ValueError(f"expected a size such as 4096, '512MiB' or '2GB', got {value!r}")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    scale = _UNITS[unit[:1]] if base == 1000 else base ** "bkmgt".index(unit[0])
    return int(number * scale)


class Limits(NamedTuple):
    """Bounds on what one scan reads; hitting one is reported (MLS904), never silent."""

    max_file_size: int = 64 * 1024**3
    max_files: int = 1_000_000
    max_archive_depth: int = 5
    max_archive_members: int = 100_000
    max_expansion_ratio: int = 200
    max_uncompressed_size: int = 16 * 1024**3
    # a backstop only: the per-file time budget bounds a pickle (no real checkpoint reaches
    # either; 50M opcodes was reached by large pickles of many small objects)
    max_pickle_ops: int = 2_000_000_000
    file_timeout_seconds: float = 120.0


_LIMIT_KEYS = {name.replace("_", "-"): name for name in Limits._fields}
_SIZE_LIMITS = {"max_file_size", "max_uncompressed_size"}

DEFAULT_EXCLUDED_DIRS = (
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".venv",
    "venv",
)


class SuppressRule(NamedTuple):
    """One ``[[suppress]]`` entry: findings it matches are suppressed, with its reason."""

    reason: str
    rule: str | None = None  # rule id or prefix
    path: str | None = None  # glob, relative to the folder of the file that says it
    package: str | None = None
    advisory: str | None = None  # an advisory id or any of its aliases
    expires: datetime.date | None = None
    kind: str = "external"  # SARIF suppression kind: "inSource" (in the tree) or "external"
    source: str = ""  # where it is said, e.g. "ml/.mlsec.toml: suppress[0]"
    base: str = ""  # that file's folder relative to the repository root ("" at the root)


class RepoTuning(NamedTuple):
    """What configuration inside the scanned tree removes from the gate (kept as suppressed).

    ``source`` is the file relative to the repository root; ``base`` its folder, from which
    its globs match. ``said`` holds each key as written, for the justification text.
    """

    source: str
    base: str = ""
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    severity: Mapping[str, Severity] = EMPTY_MAPPING
    said: Mapping[str, str] = EMPTY_MAPPING


def default_cache_dir() -> Path:
    """mlsec's folder in the user's cache directory (``$XDG_CACHE_HOME/mlsec``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlsec"


class ScanOptions(NamedTuple):
    """Everything one scan needs; built by :func:`build_options` or directly by library users."""

    path: Path
    fail_on: Severity | None = Severity.HIGH
    offline: bool = False
    vuln_db: Path | None = None
    trusted_root: Path | None = None
    baseline: Path | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    severity_overrides: Mapping[str, Severity] = EMPTY_MAPPING
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    limits: Limits = Limits()
    sections: Mapping[str, Mapping[str, Any]] = EMPTY_MAPPING
    config_file: Path | None = None
    use_git: bool = True
    # Read symlinks that point out of the scanned tree (off: they are findings, not read).
    follow_symlinks: bool = False
    # Leave gitignored files out of a work-tree scan (each listed in ``skipped``).
    respect_gitignore: bool = False
    show_progress: bool = False
    reproducible: bool = False
    # Build the AI bill of materials (hash every model file, read cards and git): needed for
    # `--format cyclonedx` and `mlsec bom`, skipped otherwise unless BOM findings are on.
    build_bom: bool = False
    # Findings paths are relative to this folder (None: ``root``); see find_repo_root.
    repo_root: Path | None = None
    # Findings below this are not reported (--fail-on stays the gate).
    min_severity: Severity = Severity.INFO
    category: str = "mlsec/"  # SARIF automationDetails.id: one per kind of scan of a repo
    jobs: int = 0  # processes for per-file analysis (mlsec.pool); 0: one per CPU
    shard: tuple[int, int] | None = None  # (K, N): the K-th of N deterministic parts, 1-based
    cache_dir: Path | None = None
    use_cache: bool = True
    diff_ref: str | None = None  # only files changed since this git revision (and their needs)
    suppress: tuple[SuppressRule, ...] = ()
    repo_tuning: RepoTuning | None = None
    baseline_kind: str = "external"  # "inSource" when the tree's own configuration names it
    # In-tree configuration that could not be used: reported, exit 2, scanned with defaults.
    config_problems: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        """The directory the walk starts from (the file's folder for a single file)."""
        return self.path if self.path.is_dir() else self.path.parent

    @property
    def base(self) -> Path:
        """The folder report paths are relative to: the repository root."""
        return self.repo_root or self.root

    @property
    def prefix(self) -> str:
        """``root`` relative to ``base``, ``/``-separated ("" when they are the same)."""
        try:
            rel = self.root.resolve().relative_to(self.base.resolve()).as_posix()
        except ValueError:
            return ""
        return "" if rel == "." else rel

    def cache_root(self) -> Path | None:
        """Where this scan may keep caches (hashes, database indexes, HTTP), or None for no
        cache (``--no-cache``); default: mlsec's folder in the user's cache directory."""
        if not self.use_cache:
            return None
        if self.cache_dir is not None:
            return self.cache_dir
        return default_cache_dir()

    def data_root(self) -> Path:
        """Where downloaded data lives (the offline database): ``--cache-dir``, else the
        default cache directory; ``--no-cache`` does not hide it (it is data, not a cache)."""
        if self.cache_dir is not None:
            return self.cache_dir
        return default_cache_dir()

    def section(self, name: str) -> Mapping[str, Any]:
        return self.sections.get(name, {})

    def config_dir(self) -> Path:
        """Relative paths in configuration resolve from the config file's folder."""
        return self.config_file.parent if self.config_file else self.root

    def rule_enabled(self, rule_id: str) -> bool:
        if self.select and not any(rule_id.startswith(p) for p in self.select):
            return False
        return not any(rule_id.startswith(p) for p in self.ignore)


def find_repo_root(path: Path) -> Path:
    """The repository root of ``path``: the git top level, else the working directory.

    Found by looking for ``.git`` (a folder, or a file in worktrees and submodules) rather
    than by running git: a scan outside git must not pay for it. A path outside both is its
    own root (its folder, for a file).
    """
    absolute = Path(os.path.abspath(path))
    start = absolute if absolute.is_dir() else absolute.parent
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    cwd = Path.cwd()
    return cwd if start == cwd or start.is_relative_to(cwd) else start


def find_config_file(root: Path, stop: Path | None = None) -> tuple[Path, Mapping[str, Any]] | None:
    """The configuration that applies to ``root``: from it up to ``stop`` (inclusive), the first
    folder with .mlsec.toml, or a pyproject.toml with a [tool.mlsec] table."""
    start = Path(os.path.abspath(root))
    folders = [start]
    if stop is not None and start.is_relative_to(end := Path(os.path.abspath(stop))):
        folders.extend(p for p in start.parents if p.is_relative_to(end))
    tree = Path(os.path.abspath(stop)) if stop is not None else start
    for folder in folders:
        dedicated = folder / ".mlsec.toml"
        if dedicated.is_file():
            _inside_tree(dedicated, tree)
            return dedicated, _read_toml(dedicated)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _resolves_inside(pyproject, tree):
            try:
                data = _read_toml(pyproject)
            except ConfigError:
                # A broken pyproject.toml in a scanned repo is the dependency analyzer's
                # finding, not a reason to refuse the scan.
                continue
            tool = data.get("tool", {})
            if isinstance(tool, dict) and isinstance(tool.get("mlsec"), dict):
                return pyproject, tool["mlsec"]
    return None


def _resolves_inside(path: Path, tree: Path) -> bool:
    try:
        return path.resolve().is_relative_to(tree.resolve())
    except (OSError, RuntimeError):
        return False


def _inside_tree(path: Path, tree: Path) -> None:
    """The tree's configuration is read only from the tree (a link out of it is refused)."""
    if not _resolves_inside(path, tree):
        raise ConfigError(
            f"{path}: a symlink out of the scanned tree; it was not read",
            hint="replace the link with the file, or pass the file with --config",
        )


def load_config_file(path: Path) -> Mapping[str, Any]:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        section = tool.get("mlsec", {}) if isinstance(tool, dict) else {}
        return section if isinstance(section, dict) else {}
    return data


MAX_CONFIG_BYTES = 4 * 1024**2
MAX_SUPPRESSIONS = 10_000  # each is matched against every finding
MAX_LIST = 10_000  # entries of one list (include, exclude, select, ignore)
MAX_GLOB = 256  # characters of one glob
MAX_CONFIG_DEPTH = 32


def _depth(value: object) -> int:
    """How deeply tables and arrays nest (iteratively: the input may be hostile)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_CONFIG_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _read_toml(path: Path) -> dict[str, Any]:
    from mlsec.safeopen import open_regular

    try:
        with open_regular(path) as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot read configuration file {path}: {reason}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: configuration file over {MAX_CONFIG_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    if _depth(data) > MAX_CONFIG_DEPTH:
        raise ConfigError(f"{path}: nested deeper than {MAX_CONFIG_DEPTH} levels")
    return data


def _str_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    if len(value) > MAX_LIST:
        raise ConfigError(f"{where}: more than {MAX_LIST} entries")
    return tuple(v.strip() for v in value)


def _globs(value: object, where: str) -> tuple[str, ...]:
    patterns = _str_list(value, where)
    for pattern in patterns:
        _check_glob(pattern, where)
    return patterns


def _check_glob(pattern: str, where: str) -> None:
    # Matching costs pattern length times path length, for every file or finding.
    if len(pattern) > MAX_GLOB or "\0" in pattern:
        raise ConfigError(
            f"{where}: {pattern[:40]!r}... is not a usable glob (over {MAX_GLOB} characters "
            "or a NUL byte)"
        )


RULES_HINT = "`mlsec rules` lists every rule id (prefixes such as MLS1 select a topic)"


def known_rule_ids() -> Collection[str]:
    from mlsec.rules import load_rules

    return load_rules()


def check_rule_ids(ids: Collection[str], where: str) -> None:
    """Refuse ids and prefixes that name no rule: a typo must not turn every check off."""
    known = known_rule_ids()
    unknown = [i for i in ids if not any(k.startswith(i) for k in known)]
    if unknown:
        raise ConfigError(
            f"{where}: unknown rule id{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            hint=RULES_HINT,
        )


def _rule_ids(value: object, where: str) -> tuple[str, ...]:
    ids = tuple(v.upper() for v in _str_list(value, where))
    for rule_id in ids:
        if not re.fullmatch(r"MLS\d{0,3}", rule_id):
            raise ConfigError(
                f"{where}: {rule_id!r} is not a rule id or prefix",
                hint="use ids such as MLS101 or prefixes such as MLS1; " + RULES_HINT,
            )
    check_rule_ids(ids, where)
    return ids


def _severity(value: object, where: str) -> Severity:
    try:
        return Severity.parse(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _fail_on(value: object, where: str) -> Severity | None:
    if str(value).strip().lower() == "none":
        return None
    return _severity(value, where)


_SUPPRESS_KEYS = ("rule", "path", "package", "advisory", "reason", "expires")


def _suppress(
    value: object, where: str, *, kind: str, shown: str, base: str
) -> tuple[SuppressRule, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: expected [[suppress]] tables")
    if len(value) > MAX_SUPPRESSIONS:
        raise ConfigError(f"{where}: more than {MAX_SUPPRESSIONS} entries")
    rules: list[SuppressRule] = []
    for index, entry in enumerate(value):
        at = f"{where}[{index}]"
        unknown = sorted(set(entry) - set(_SUPPRESS_KEYS))
        if unknown:
            raise ConfigError(
                f"{at}: unknown key {unknown[0]!r}", hint=f"known keys: {', '.join(_SUPPRESS_KEYS)}"
            )
        texts: dict[str, str | None] = {}
        for key in ("rule", "path", "package", "advisory", "reason"):
            item = entry.get(key)
            if item is not None and (not isinstance(item, str) or not item.strip()):
                raise ConfigError(f"{at}.{key}: expected a non-empty string")
            texts[key] = item.strip() if isinstance(item, str) else None
        reason = texts["reason"]
        if reason is None:
            raise ConfigError(f"{at}: a suppression needs a reason", hint='add reason = "why"')
        if not any(texts[k] for k in ("rule", "path", "package", "advisory")):
            raise ConfigError(f"{at}: say what it suppresses (rule, path, package or advisory)")
        if texts["path"] is not None:
            _check_glob(texts["path"], f"{at}.path")
        rule = texts["rule"]
        if rule is not None:
            rule = _rule_ids([rule], f"{at}.rule")[0]
        expires = entry.get("expires")
        if isinstance(expires, str):
            try:
                expires = datetime.date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"{at}.expires: expected a date such as 2027-03-31") from None
        if isinstance(expires, datetime.datetime):
            expires = expires.date()
        if expires is not None and not isinstance(expires, datetime.date):
            raise ConfigError(f"{at}.expires: expected a date such as 2027-03-31")
        rules.append(
            SuppressRule(
                reason=reason,
                rule=rule,
                path=texts["path"],
                package=texts["package"],
                advisory=texts["advisory"],
                expires=expires,
                kind=kind,
                source=f"{shown}: suppress[{index}]",
                base=base,
            )
        )
    return tuple(rules)


_KNOWN_KEYS = (
    "fail-on",
    "include",
    "exclude",
    "select",
    "ignore",
    "severity",
    "suppress",
    "offline",
    "vuln-db",
    "baseline",
    "trusted-root",
    "limits",
    *ANALYZER_SECTIONS,
)
# Keys whose effect stays visible as suppressed findings when the tree's own file says them.
_TUNING_KEYS = ("select", "ignore", "include", "exclude", "severity")


def _relative(path: Path, base: Path) -> str:
    try:
        rel = Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(base))).as_posix()
    except ValueError:
        return path.as_posix()
    return "" if rel == "." else rel


def apply_config(
    options: ScanOptions,
    data: Mapping[str, Any],
    origin: Path,
    *,
    in_tree: bool = False,
) -> ScanOptions:
    """Overlay one configuration mapping on ``options``; ``origin`` names it in errors.

    ``in_tree``: the file is the scanned repository's own, so what it removes from the gate
    goes to ``repo_tuning`` (kept visible as suppressed) rather than to the walk and filters.
    """
    changes: dict[str, Any] = {}
    base = origin.parent
    # The tree's own files by their repository path; the operator's by name (no machine paths).
    shown = _relative(origin, options.base) if in_tree else origin.name
    shown_base = _relative(base, options.base)
    tuning: dict[str, Any] = {}
    said: dict[str, str] = {}

    def where(key: str) -> str:
        prefix = "[tool.mlsec] " if origin.name == "pyproject.toml" else ""
        return f"{origin}: {prefix}{key}"

    for key, value in data.items():
        if key == "fail-on":
            changes["fail_on"] = _fail_on(value, where(key))
        elif key in ("include", "exclude"):
            changes[key] = _globs(value, where(key))
        elif key in ("select", "ignore"):
            changes[key] = _rule_ids(value, where(key))
        elif key == "severity":
            if not isinstance(value, dict):
                raise ConfigError(f"{where(key)}: expected a table such as {{ MLS104 = 'low' }}")
            overrides: dict[str, Severity] = {}
            for rule_id, sev in value.items():
                if not RULE_ID.match(str(rule_id)):
                    raise ConfigError(f"{where(key)}: {rule_id!r} is not a rule id")
                overrides[str(rule_id)] = _severity(sev, f"{where(key)}.{rule_id}")
            check_rule_ids(overrides, where(key))
            changes["severity_overrides"] = overrides
        elif key == "suppress":
            changes["suppress"] = options.suppress + _suppress(
                value,
                where(key),
                kind="inSource" if in_tree else "external",
                shown=shown,
                base=shown_base if in_tree else "",
            )
        elif key == "offline":
            if not isinstance(value, bool):
                raise ConfigError(f"{where(key)}: expected true or false")
            changes["offline"] = value
        elif key in ("vuln-db", "baseline", "trusted-root"):
            if not isinstance(value, str):
                raise ConfigError(f"{where(key)}: expected a path")
            changes[key.replace("-", "_")] = (base / value).resolve()
            if key == "baseline":
                changes["baseline_kind"] = "inSource" if in_tree else "external"
        elif key == "limits":
            changes["limits"] = _limits(options.limits, value, where(key))
        elif key in ANALYZER_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where(key)}: expected a table")
            # Several sections in one file: add to those already taken from it.
            sections = dict(changes.get("sections", options.sections))
            sections[key] = value
            changes["sections"] = sections
        else:
            known = ", ".join(sorted(_KNOWN_KEYS))
            raise ConfigError(f"{where(key)}: unknown key", hint=f"known keys: {known}")
    if in_tree:
        for key in _TUNING_KEYS:
            name = "severity_overrides" if key == "severity" else key
            if name in changes:
                tuning[key] = changes.pop(name)
                said[key] = f"{shown}: {key} = {_said(data[key])}"
        # Raising a severity is always allowed: it only makes the gate stricter.
        raised = {
            r: s for r, s in tuning.get("severity", {}).items() if s.rank > known_severity(r).rank
        }
        if raised:
            changes["severity_overrides"] = raised
        if tuning:
            changes["repo_tuning"] = RepoTuning(source=shown, base=shown_base, said=said, **tuning)
    changes["config_file"] = origin
    return options._replace(**changes)


def known_severity(rule_id: str) -> Severity:
    from mlsec.rules import load_rules

    return load_rules()[rule_id].severity


def _said(value: object) -> str:
    """A configuration value as TOML-ish text, for a justification (short)."""
    if isinstance(value, dict):
        text = "{ " + ", ".join(f"{k} = {_said(v)}" for k, v in value.items()) + " }"
    elif isinstance(value, list):
        text = "[" + ", ".join(_said(v) for v in value) + "]"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _limits(current: Limits, value: object, where: str) -> Limits:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table")
    changes: dict[str, Any] = {}
    for key, raw in value.items():
        name = _LIMIT_KEYS.get(key)
        if name is None:
            raise ConfigError(
                f"{where}.{key}: unknown limit", hint=f"known limits: {', '.join(_LIMIT_KEYS)}"
            )
        try:
            if name in _SIZE_LIMITS:
                changes[name] = parse_size(raw)
            elif name == "file_timeout_seconds":
                if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
                    raise ValueError(f"expected a positive number of seconds, got {raw!r}")
                changes[name] = float(raw)
            else:
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                    raise ValueError(f"expected a whole number, got {raw!r}")
                changes[name] = raw
        except ValueError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
    return current._replace(**changes)


def _inside(path: Path, folders: Collection[Path]) -> bool:
    absolute = Path(os.path.abspath(path))
    return any(absolute.is_relative_to(Path(os.path.abspath(f))) for f in folders)


def build_options(
    path: Path,
    *,
    config_file: Path | None = None,
    no_config: bool = False,
    **flags: Any,
) -> ScanOptions:
    """Defaults, then the configuration file, then every flag that is not None.

    ``no_config``: leave out configuration inside the scanned tree (an explicit
    ``config_file`` outside it still applies).
    """
    if not path.exists() and not path.is_symlink():
        raise MlsecError(f"path not found: {path}", hint="pass a directory or a file to scan")
    repo_root = flags.pop("repo_root", None) or find_repo_root(path)
    options = ScanOptions(path=path, repo_root=repo_root)
    tree = (repo_root, options.root)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"configuration file not found: {config_file}")
        in_tree = _inside(config_file, tree)
        if in_tree and no_config:
            raise ConfigError(
                f"--no-config leaves out configuration inside the scanned tree, and "
                f"{config_file} is inside it",
                hint="pass a configuration file outside the repository, or drop --no-config",
            )
        options = apply_config(
            options, load_config_file(config_file), config_file.resolve(), in_tree=in_tree
        )
    elif not no_config:
        try:
            found = find_config_file(options.root, repo_root)
            if found is not None:
                options = apply_config(options, found[1], found[0].resolve(), in_tree=True)
        except ConfigError as exc:
            # The repository's own file: scan with the defaults rather than end without a
            # report; the report says why and the exit code is 2 whatever the findings (the
            # file's own policies, such as required signatures, were not applied).
            options = ScanOptions(
                path=path, repo_root=repo_root, config_problems=(exc.diagnostic(),)
            )
    given = {k: v for k, v in flags.items() if v is not None}
    for key in ("select", "ignore"):
        if key in given:
            given[key] = _rule_ids(list(given[key]), f"--{key}")
    tuning = options.repo_tuning
    if tuning is not None:
        # A flag replaces what any file says for the same key.
        overridden: dict[str, Any] = {
            k: () for k in ("select", "ignore", "include", "exclude") if k in given
        }
        if "severity_overrides" in given:
            overridden["severity"] = EMPTY_MAPPING
        if overridden:
            given["repo_tuning"] = tuning._replace(**overridden)
    return options._replace(**given)
