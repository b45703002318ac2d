"""Scan options: defaults, configuration files and command-line flags, merged in that order.

Configuration comes from ``--config FILE``, else ``.mlsec.toml`` in the scanned directory, else
``[tool.mlsec]`` in its ``pyproject.toml``. Flags override files. Unknown keys and bad values
are errors naming the file and the key. Sections owned by analyzers (``signatures``,
``dependencies``, ``models``, ``bom``) are passed through and validated by their owners.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlsec.errors import ConfigError, MlsecError
from mlsec.findings import EMPTY_MAPPING, Severity
from mlsec.rules import RULE_ID

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMATS = ("table", "json", "sarif", "cyclonedx", "markdown")
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
    show_progress: bool = False
    reproducible: bool = False
    # Build the AI bill of materials (hash every model file, read cards and git): needed for
    # `--format cyclonedx` and `mlsec bom`, skipped otherwise unless BOM findings are on.
    build_bom: bool = False

    @property
    def root(self) -> Path:
        """The directory findings are relative to (the file's folder for a single file)."""
        return self.path if self.path.is_dir() else self.path.parent

    def section(self, name: str) -> Mapping[str, Any]:
        return self.sections.get(name, {})

    def config_dir(self) -> Path:
        """Relative paths in configuration resolve from the config file's folder."""
        return self.config_file.parent if self.config_file else self.root

    def rule_enabled(self, rule_id: str) -> bool:
        if self.select and not any(rule_id.startswith(p) for p in self.select):
            return False
        return not any(rule_id.startswith(p) for p in self.ignore)


def find_config_file(root: Path) -> tuple[Path, Mapping[str, Any]] | None:
    """The configuration that applies to ``root``: .mlsec.toml, else pyproject [tool.mlsec]."""
    dedicated = root / ".mlsec.toml"
    if dedicated.is_file():
        return dedicated, _read_toml(dedicated)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = _read_toml(pyproject)
        except ConfigError:
            # A broken pyproject.toml in a scanned repo is the dependency analyzer's finding,
            # not a reason to refuse the scan.
            return None
        tool = data.get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("mlsec"), dict):
            return pyproject, tool["mlsec"]
    return None


def load_config_file(path: Path) -> Mapping[str, Any]:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        section = tool.get("mlsec", {}) if isinstance(tool, dict) else {}
        return section if isinstance(section, dict) else {}
    return data


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _str_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(v.strip() for v in value)


def _rule_ids(value: object, where: str) -> tuple[str, ...]:
    ids = tuple(v.upper() for v in _str_list(value, where))
    for rule_id in ids:
        if not re.fullmatch(r"MLS\d{0,3}", rule_id):
            raise ConfigError(
                f"{where}: {rule_id!r} is not a rule id or prefix",
                hint="use ids such as MLS101 or prefixes such as MLS1; `mlsec rules` lists them",
            )
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


def apply_config(options: ScanOptions, data: Mapping[str, Any], origin: Path) -> ScanOptions:
    """Overlay one configuration mapping on ``options``; ``origin`` names it in errors."""
    changes: dict[str, Any] = {}
    base = origin.parent

    def where(key: str) -> str:
        prefix = "[tool.mlsec] " if origin.name == "pyproject.toml" else ""
        return f"{origin}: {prefix}{key}"

    for key, value in data.items():
        if key == "fail-on":
            changes["fail_on"] = _fail_on(value, where(key))
        elif key in ("include", "exclude"):
            changes[key] = _str_list(value, where(key))
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
            changes["severity_overrides"] = overrides
        elif key == "offline":
            if not isinstance(value, bool):
                raise ConfigError(f"{where(key)}: expected true or false")
            changes["offline"] = value
        elif key in ("vuln-db", "baseline", "trusted-root"):
            if not isinstance(value, str):
                raise ConfigError(f"{where(key)}: expected a path")
            changes[key.replace("-", "_")] = (base / value).resolve()
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
            known = ", ".join(
                sorted(
                    [
                        "fail-on",
                        "include",
                        "exclude",
                        "select",
                        "ignore",
                        "severity",
                        "offline",
                        "vuln-db",
                        "baseline",
                        "trusted-root",
                        "limits",
                        *ANALYZER_SECTIONS,
                    ]
                )
            )
            raise ConfigError(f"{where(key)}: unknown key", hint=f"known keys: {known}")
    changes["config_file"] = origin
    return options._replace(**changes)


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


def build_options(
    path: Path,
    *,
    config_file: Path | None = None,
    **flags: Any,
) -> ScanOptions:
    """Defaults, then the configuration file, then every flag that is not None."""
    if not path.exists() and not path.is_symlink():
        raise MlsecError(f"path not found: {path}", hint="pass a directory or a file to scan")
    options = ScanOptions(path=path)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"configuration file not found: {config_file}")
        options = apply_config(options, load_config_file(config_file), config_file.resolve())
    else:
        found = find_config_file(options.root)
        if found is not None:
            options = apply_config(options, found[1], found[0].resolve())
    given = {k: v for k, v in flags.items() if v is not None}
    for key in ("select", "ignore"):
        if key in given:
            given[key] = _rule_ids(list(given[key]), f"--{key}")
    return options._replace(**given)
