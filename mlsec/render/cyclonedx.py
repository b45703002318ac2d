"""CycloneDX ML-BOM (1.6, or 1.5) of a scan: JSON, or XML for ``mlsec bom --format xml``.

Pure: built from ``report.facts["aibom"]`` (models, datasets, git provenance; the analyzer
took the timestamp and hashes), ``report.facts["dependencies"]`` (library components, the
graph, advisories as vulnerabilities), ``report.facts["signatures"]`` and the findings, with
cyclonedx-python-lib's model classes. ``modelCard`` and ``data`` are inserted as plain JSON
(:mod:`mlsec.render.cdx_ml`). Every document is validated against the library's strict
schema before it is returned (JSON: :mod:`mlsec.render.cdx_validate`, the library's validator
without its import cost; XML: the library's); an invalid BOM raises :class:`InvalidBomError`.

Fields without a CycloneDX home are properties in the ``mlsec:`` namespace.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec.aibom.facts import AibomFacts
from mlsec.errors import MlsecError
from mlsec.hashing import is_sha256_hex
from mlsec.report import ScanReport
from mlsec.safeopen import write_private

if TYPE_CHECKING:
    from cyclonedx.schema import SchemaVersion

NS = "mlsec"
SPEC_VERSIONS = ("1.5", "1.6")
# A fixed serial number and timestamp put in while the document is built, replaced in the
# text (the serial by a content hash when reproducible): the memoised document has neither.
_PLACEHOLDER_SERIAL = uuid.UUID(int=0)
_TIMESTAMP_STANDIN = datetime(1901, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
_SERIAL_NAMESPACE = uuid.UUID("6f1c1e2a-6d1b-5d2e-9a63-6d6c7365632d")


def schema_version(spec_version: str) -> SchemaVersion:
    from cyclonedx.schema import SchemaVersion

    return {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6}[spec_version]


def aibom_facts(report: ScanReport, spec_version: str) -> AibomFacts:
    """The scan's AIBOM facts, or the error that says why there is no BOM to write."""
    if spec_version not in SPEC_VERSIONS:
        raise MlsecError(
            f"unsupported CycloneDX version {spec_version}",
            hint=f"use one of: {', '.join(SPEC_VERSIONS)}",
        )
    facts = report.facts.get("aibom")
    if not isinstance(facts, AibomFacts):
        raise MlsecError(
            "the scan has no AI bill of materials data",
            hint="the aibom analyzer did not run (was it excluded, or did it fail? see "
            "'errors' in a JSON report)",
        )
    return facts


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: importing the library and its validator and
    loading the schema make tens of thousands of objects that live as long as the process,
    and the collections they trigger cost 25 ms of CPU for nothing. Everything alive is
    frozen on the way out (out of every later collection's sight: the BOM is the last thing a
    scan builds), or the first collection after the pause would walk it all at once (6 ms,
    measured with gc.callbacks on a BOM scan)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class InvalidBomError(MlsecError):
    """The BOM failed schema validation: a bug in mlsec, never written out."""


def _validate_json(text: str, spec_version: str) -> None:
    from mlsec.render.cdx_validate import first_error, json_validator

    with collector_paused():
        json_validator(spec_version)
    error = first_error(text, spec_version)
    if error is not None:
        raise InvalidBomError(
            f"internal error: the CycloneDX {spec_version} BOM does not validate: {error}",
            hint="please report this; no BOM was written",
        )


def _validate_xml(text: str, spec_version: str) -> None:
    from cyclonedx.exception import MissingOptionalDependencyException
    from cyclonedx.validation.xml import XmlValidator

    try:
        error = XmlValidator(schema_version(spec_version)).validate_str(text)
    except MissingOptionalDependencyException as exc:
        raise MlsecError(
            "XML output needs lxml to validate the BOM",
            hint="pip install 'cyclonedx-python-lib[xml-validation]', or use --format json",
        ) from exc
    if error is not None:
        raise InvalidBomError(
            f"internal error: the CycloneDX {spec_version} XML BOM does not validate: {error}",
            hint="please report this; no BOM was written",
        )


def _stamp_time(template: str, facts: AibomFacts, fmt: str) -> str:
    """The real timestamp in place of the stand-in: the first occurrence is metadata's
    (metadata precedes every component, and scanned text cannot hold the unescaped
    pattern)."""
    if not facts.timestamp:
        return template
    real = datetime.fromtimestamp(facts.timestamp, tz=timezone.utc).isoformat()
    standin = _TIMESTAMP_STANDIN.isoformat()
    pattern = '"timestamp": "{}"' if fmt == "json" else "<timestamp>{}</timestamp>"
    return template.replace(pattern.format(standin), pattern.format(real), 1)


def _serial(document: str, facts: AibomFacts) -> str:
    """The serial number: a UUIDv5 of the JSON document's content (with the placeholder
    serial in it) when reproducible, else the run's random one."""
    if facts.reproducible or not facts.serial:
        digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
        return uuid.uuid5(_SERIAL_NAMESPACE, digest).urn
    return uuid.UUID(facts.serial.removeprefix("urn:uuid:")).urn


def _stamp(template: str, facts: AibomFacts) -> str:
    """The JSON document of this run from its template."""
    timed = _stamp_time(template, facts, "json")
    return timed.replace(_PLACEHOLDER_SERIAL.urn, _serial(timed, facts), 1)


class ValidationMemo:
    """Digests of BOMs that passed strict validation, so an unchanged repository's BOM is not
    validated again (walking the schema costs tens of milliseconds per hundred components,
    and the XML validator's import more). The key is the document without its serial number
    and timestamp (which the library writes in valid formats), plus the mlsec,
    cyclonedx-python-lib and spec versions and the output format. A miss, or no memo,
    validates.

    Beside it, the last few rendered JSON documents (``bom-render/``, serial and timestamp
    left as stand-ins), keyed on everything the renderer reads from the report: the BOM of
    an unchanged repository is not rebuilt (the library's model classes cost about a
    millisecond per model)."""

    LIMIT = 256
    RENDERED = 8
    MAX_MEMO_BYTES = 1024**2  # 256 digests take 17 KB
    MAX_RENDERED_BYTES = 256 * 1024**2

    def __init__(self, file: Path) -> None:
        """The memo in ``file``; read as untrusted (bounded, a regular file of this user's
        that no one else may write): anything else is an empty memo, never an error."""
        from mlsec import boundedjson

        self.file = file
        self.digests: list[str] = []
        try:
            data = boundedjson.read_file(
                file, max_bytes=self.MAX_MEMO_BYTES, max_depth=3, private=True
            )
        except (OSError, ValueError):  # missing, not a file, not private, damaged
            return
        digests = data.get("digests") if isinstance(data, dict) else None
        if isinstance(digests, list):
            self.digests = [d for d in digests if isinstance(d, str) and is_sha256_hex(d)]
            self.digests = self.digests[-self.LIMIT :]

    @staticmethod
    def key(text: str, fmt: str, spec_version: str, tool_version: str) -> str:
        """The memo key of the BOM ``text``; "" (in no memo) if it is not a BOM's JSON (a
        damaged rendered document)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return ""
        metadata = data.get("metadata", {}) if isinstance(data, dict) else None
        if not isinstance(metadata, dict):
            return ""
        data.pop("serialNumber", None)
        metadata.pop("timestamp", None)
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False)
        salt = f"{tool_version}\0{_library_version()}\0{spec_version}\0{fmt}\0"
        return hashlib.sha256((salt + canonical).encode("utf-8")).hexdigest()

    @staticmethod
    def render_key(report: ScanReport, fmt: str, spec_version: str) -> str:
        """A digest of every input of the renderer (what :class:`BomBuilder` reads)."""
        facts = report.facts.get("aibom")
        aibom = None
        if isinstance(facts, AibomFacts):
            # The repr of the frozen dataclasses names every field of every record, in order
            # (only strings, numbers, booleans, tuples and insertion-ordered dicts inside):
            # ten times cheaper than the JSON form for a BOM of 1,000 models. The serial and
            # the time are the run's, stamped in after.
            aibom = repr(replace(facts, serial=None, timestamp=bool(facts.timestamp)))
        inputs = {
            "aibom": aibom,
            "dependencies": _to_json(report.facts.get("dependencies")),
            "signatures": _to_json(report.facts.get("signatures")),
            "findings": [f.to_dict() for f in report.findings],
            "versions": [report.tool_version, _library_version(), spec_version, fmt],
        }
        canonical = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def _rendered_file(self, key: str) -> Path:
        return self.file.parent / "bom-render" / f"{key}.json"

    def rendered(self, key: str) -> str | None:
        """The document kept for ``key``, read as untrusted like the memo (its content is
        checked by :meth:`key`: a damaged one is in no memo, so it is built anew)."""
        from mlsec import boundedjson

        try:
            data = boundedjson.read_capped(
                self._rendered_file(key), self.MAX_RENDERED_BYTES, private=True
            )
            return data.decode("utf-8")
        except (OSError, ValueError):  # UnicodeDecodeError and JsonLimitError included
            return None

    def keep(self, key: str, template: str) -> None:
        target = self._rendered_file(key)
        try:
            write_private(target, template)
            kept = sorted(target.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for old in kept[: -self.RENDERED]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a memo that cannot be written only costs time

    def __contains__(self, digest: object) -> bool:
        return bool(digest) and digest in self.digests

    def add(self, digest: str) -> None:
        self.digests = [*(d for d in self.digests if d != digest), digest][-self.LIMIT :]
        with contextlib.suppress(OSError):  # a memo that cannot be written only costs time
            write_private(self.file, json.dumps({"version": 1, "digests": self.digests}))


def _library_version() -> str:
    """cyclonedx-python-lib's version, from the package (importlib.metadata's lookup costs
    ten milliseconds of every run, the memoised one included)."""
    import cyclonedx

    return str(cyclonedx.__version__)


def _to_json(facts: object) -> Any:
    to_json = getattr(facts, "to_json", None)
    return to_json() if callable(to_json) else None


def render_bom(
    report: ScanReport,
    *,
    fmt: str = "json",
    spec_version: str = "1.6",
    memo: ValidationMemo | None = None,
) -> str:
    """The validated BOM document as text (``fmt`` is "json" or "xml")."""
    import warnings

    facts = aibom_facts(report, spec_version)
    render_key = ValidationMemo.render_key(report, fmt, spec_version) if memo else ""
    template = memo.rendered(render_key) if memo is not None and fmt == "json" else None
    if memo is not None and template is not None:
        text = _stamp(template, facts)
        if ValidationMemo.key(text, fmt, spec_version, report.tool_version) in memo:
            return text
    # A BOM to build: only now the library's model classes and serialisers.
    with collector_paused():
        from cyclonedx.output import make_outputter
        from cyclonedx.schema import OutputFormat

        from mlsec.render import cdx_ml
        from mlsec.render.cdx_build import BomBuilder

    builder = BomBuilder(report, spec_version)
    bom = builder.build()
    schema = schema_version(spec_version)
    with warnings.catch_warnings():
        # The library warns about components it considers incomplete; validation decides.
        warnings.simplefilter("ignore")
        # The JSON form is always built: it is the one the memo keys on, and it carries the
        # same content as the XML one.
        raw = make_outputter(bom, OutputFormat.JSON, schema).output_as_string()
        template = cdx_ml.insert_json(raw, builder.extras)
        xml = ""
        if fmt == "xml":
            raw_xml = make_outputter(bom, OutputFormat.XML, schema).output_as_string()
            xml = cdx_ml.insert_xml(raw_xml, builder.extras, spec_version)
    text = _stamp(template, builder.facts)
    if fmt == "xml":
        serial = json.loads(text)["serialNumber"]
        xml = _stamp_time(xml, builder.facts, "xml").replace(_PLACEHOLDER_SERIAL.urn, serial, 1)
    digest = ValidationMemo.key(text, fmt, spec_version, report.tool_version) if memo else ""
    if memo is None or digest not in memo:
        if fmt == "xml":
            _validate_xml(xml, spec_version)
        else:
            _validate_json(text, spec_version)
        if memo is not None:
            memo.add(digest)
    if memo is not None and fmt == "json":
        memo.keep(render_key, template)
    return xml if fmt == "xml" else text


def warm_up() -> None:
    """Import what rendering a JSON BOM takes and build its validator, while the scan has
    other work for the CPU (the AIBOM analyzer calls it while the weights hash)."""
    try:
        with collector_paused():
            from cyclonedx.output import make_outputter  # noqa: F401

            from mlsec.render import cdx_build  # noqa: F401
            from mlsec.render.cdx_validate import json_validator

            json_validator("1.6")
    except Exception:  # noqa: S110 - whatever fails here fails again, reported, in render_bom
        pass


def report_memo(report: ScanReport) -> ValidationMemo | None:
    """The validation memo in the scan's cache folder (``--cache-dir``, else the user cache),
    shared by `scan --format cyclonedx` and `mlsec bom`; None with ``--no-cache``."""
    if report.cache_root is None:
        return None
    return ValidationMemo(Path(report.cache_root) / "bom-validated.json")


def render(report: ScanReport) -> str:
    """``mlsec scan --format cyclonedx``: CycloneDX 1.6 JSON, validated unless the same
    document validated before (the memo)."""
    return render_bom(report, memo=report_memo(report))
