"""Strict validation of CycloneDX JSON: cyclonedx-python-lib's own validator, without the
second its import costs.

``JsonStrictValidator`` is a jsonschema Draft 7 validator of the library's strict schema
(with the SPDX, JSF and cryptography schemas it references) and jsonschema's format checker.
Importing jsonschema imports rfc3987-syntax, which compiles ~38 lark grammars at import
(about a second on a 2-core runner) for the one format that needs them, ``iri-reference``
(``externalReferences[].url`` and a few others). Here:

- jsonschema is imported with rfc3987-syntax (and isoduration, see :data:`_DEFERRED`)
  deferred: its ``is_valid_syntax`` is bound to a stand-in that imports the real module on
  its first call, so every IRI check in the process (the library's validator's included)
  still runs the real grammar, only later;
- the library's validator is used as built (its schema file and reference registry: the one
  source of truth, never copied or edited), evolved with one format check changed: an
  ``iri-reference`` that rfc3986-validator (what jsonschema itself checks ``uri-reference``
  with) accepts as an ASCII URI reference passes without the IRI grammar, since every URI
  reference is an IRI reference (RFC 3987, section 2.2: the IRI grammar only widens the URI
  one's character sets). Anything else - non-ASCII, an IP literal, not a URI reference -
  goes to the real IRI grammar, so the verdict is the library's: the fast path only says
  yes where the grammar does (tested against it).

Every other format (``date-time``, ``idn-email``, ``uri``) keeps jsonschema's own check.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from functools import cache
from typing import Any

# Optional modules that jsonschema's format checks import at its own import, each bound to a
# stand-in that imports the real module on its first call: rfc3987-syntax builds ~38 lark
# grammars (about a second on a 2-core runner) for ``iri-reference``; the others serve formats
# no CycloneDX schema uses (``duration``: isoduration imports arrow and dateutil, 17 ms;
# ``hostname``, ``idn-hostname``, ``color``, ``json-pointer``, ``uri-template``: 4 ms more;
# `python -X importtime`). Name: (what jsonschema calls when checking, exception classes it
# names at import, raised by the stand-in for the real module's).
_DEFERRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rfc3987_syntax": (("is_valid_syntax",), ()),
    "isoduration": (("parse_duration",), ("DurationParsingException",)),
    "fqdn": (("FQDN",), ()),
    "idna": (("encode",), ("IDNAError",)),
    "webcolors": (("name_to_hex", "normalize_hex"), ()),
    "jsonpointer": (("JsonPointer",), ("JsonPointerException",)),
    "uri_template": (("validate",), ()),
}


def _stand_in(name: str, functions: tuple[str, ...], errors: tuple[str, ...]) -> types.ModuleType:
    """A module with ``functions`` that call the real module's (imported on the first call),
    raising this module's ``errors`` where the real module raises its own."""
    module = types.ModuleType(name)
    stand_in_errors = {error: type(error, (Exception,), {"__module__": name}) for error in errors}
    for error, cls in stand_in_errors.items():
        setattr(module, error, cls)

    def calling(function: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            real = importlib.import_module(name)
            try:
                return getattr(real, function)(*args, **kwargs)
            except tuple(getattr(real, error) for error in errors) as exc:
                error = next(e for e in errors if isinstance(exc, getattr(real, e)))
                raise stand_in_errors[error](*exc.args) from exc

        return call

    for function in functions:
        setattr(module, function, calling(function))
    return module


def _import_jsonschema() -> None:
    """Import jsonschema with the modules of :data:`_DEFERRED` imported on first use, not at
    import (the verdicts are the real modules': only the time of their import moves)."""
    if "jsonschema" in sys.modules:
        return
    stand_ins = {
        name: _stand_in(name, *names)
        for name, names in _DEFERRED.items()
        if name not in sys.modules and importlib.util.find_spec(name) is not None
    }
    sys.modules.update(stand_ins)
    try:
        import jsonschema  # noqa: F401 - binds the stand-ins' functions and errors
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]  # the next import of the name is the real module


def _uri_reference_check() -> Callable[[str], bool] | None:
    try:
        from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]
    except ImportError:  # jsonschema's format extra not installed: the grammar decides alone
        return None

    def is_uri_reference(value: str) -> bool:
        # IP literals ("[...]") are the grammar's: rfc3987-syntax rejects some IPv6 forms
        # RFC 3986 allows ("http://[::1]/"), and the verdict must stay the library's.
        return (
            value.isascii()
            and "[" not in value
            and bool(validate_rfc3986(value, rule="URI_reference"))
        )

    return is_uri_reference


def iri_reference(text: str) -> bool:
    """Whether ``text`` passes the validator's ``iri-reference`` check: the builder asks
    before writing a link taken from scanned text (a card's, a GGUF's). ASCII text is an IRI
    reference exactly when it is a URI reference (RFC 3987 only adds non-ASCII characters),
    so the IRI grammar is built only for non-ASCII text or IP literals."""
    uri_reference = _uri_reference_check()
    if uri_reference is not None and uri_reference(text):
        return True
    if uri_reference is not None and text.isascii() and "[" not in text:
        return False
    try:
        from rfc3987_syntax import is_valid_syntax  # type: ignore[import-untyped]
    except ImportError:  # jsonschema does not check the format without it
        return True
    verdict: bool = is_valid_syntax("iri_reference", text)
    return verdict


def _format_checker() -> Any:
    from jsonschema import Draft7Validator, FormatChecker

    library = Draft7Validator.FORMAT_CHECKER
    checker = FormatChecker(formats=())
    checker.checkers = dict(library.checkers)
    uri_reference = _uri_reference_check()
    iri = library.checkers.get("iri-reference")
    if uri_reference is None or iri is None:
        return checker
    grammar, raises = iri

    def is_iri_reference(instance: object) -> bool:
        if isinstance(instance, str) and uri_reference(instance):
            return True
        verdict: bool = grammar(instance)
        return verdict

    checker.checkers["iri-reference"] = (is_iri_reference, raises)
    return checker


class _NotJson(Exception):
    """A value :func:`_canonical` has no form for (not from JSON): the library decides."""


def _canonical(value: Any) -> Any:
    """A hashable form of a JSON value such that two values jsonschema's ``uniqueItems``
    holds equal (``jsonschema._utils.equal``: booleans apart from numbers at every depth,
    ``1 == 1.0``, objects equal as sets of members, arrays in order) have equal forms."""
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, bool):  # before int: True is an int to Python, not to JSON Schema
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if value is None:
        return ("z",)
    if isinstance(value, list | tuple):
        return ("l", tuple(_canonical(item) for item in value))
    if isinstance(value, dict):
        return ("d", frozenset((key, _canonical(item)) for key, item in value.items()))
    raise _NotJson(type(value).__name__)


def _unique_items_check(library: Callable[..., Any]) -> Callable[..., Any]:
    """jsonschema's ``uniqueItems``, whose check compares every pair of objects (a BOM of
    1,000 components took 1.1 s more to validate, of 10,000 about two minutes), with a linear pass
    first: items whose canonical forms all differ are unique, and the library's check (and
    its error) is left for arrays that may hold a duplicate. So this only says yes where
    the library does (tested against it)."""

    def unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Any:
        if unique and isinstance(instance, list):
            # Hashes of the forms, not the forms: a copy of every component would cost 57 MB
            # at 10,000 of them. Equal hashes (a duplicate, or a collision) go to the library.
            try:
                if len({hash(_canonical(item)) for item in instance}) == len(instance):
                    return
            except (_NotJson, RecursionError):
                pass
        yield from library(validator, unique, instance, schema)

    return unique_items


@cache
def json_validator(spec_version: str) -> Any:
    """The library's strict validator of ``spec_version`` ("1.5", "1.6") as a jsonschema
    validator with the format checker above and a linear ``uniqueItems`` first pass."""
    _import_jsonschema()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from jsonschema.validators import extend

    schema = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6}[spec_version]
    library = JsonStrictValidator(schema)._validator
    kind = type(library)
    # Built, not evolve()d: evolve() picks the class from the schema's "$schema" (Draft 7),
    # which would drop the keyword. Referenced schemas (SPDX, JSF) that name their own
    # "$schema" are checked by the library's class itself.
    faster = extend(kind, {"uniqueItems": _unique_items_check(kind.VALIDATORS["uniqueItems"])})
    return faster(library.schema, registry=library._registry, format_checker=_format_checker())


def first_error(text: str, spec_version: str) -> str | None:
    """The first schema violation of the JSON document ``text``, or None when it is valid."""
    import json

    error = next(json_validator(spec_version).iter_errors(json.loads(text)), None)
    return None if error is None else str(error)
