"""CycloneDX fields that cyclonedx-python-lib has no model classes for (as of 11.x): a
machine-learning-model component's ``modelCard`` and a data component's ``data``.

They are built as plain JSON (dicts in the shape of the 1.6 JSON schema) by the renderer and
inserted here, by ``bom-ref``, into the library's serialisation: into the JSON document, or
as elements (named as in the 1.6 XSD) into the XML one. The whole BOM is validated by the
library's strict validator afterwards, so a wrong shape here cannot reach the output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from xml.etree import ElementTree

Extras = Mapping[str, Mapping[str, Any]]  # bom-ref -> {"modelCard": {...}} or {"data": [...]}

CDX_XML_NS = {
    "1.5": "http://cyclonedx.org/schema/bom/1.5",
    "1.6": "http://cyclonedx.org/schema/bom/1.6",
}


def _components(node: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for component in node.get("components", ()):
        yield component
        yield from _components(component)


def insert_json(bom_json: str, extras: Extras) -> str:
    data = json.loads(bom_json)
    found: set[str] = set()
    for component in _components(data):
        ref = component.get("bom-ref")
        if isinstance(ref, str) and ref in extras:
            component.update(extras[ref])
            found.add(ref)
    missing = set(extras) - found
    if missing:
        raise AssertionError(f"BOM has no component for {sorted(missing)}")
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# -- XML --------------------------------------------------------------------------------------
# List fields and the element name of their items, per the XSD.
_ITEM_NAMES = {
    "performanceMetrics": "performanceMetric",
    "users": "user",
    "useCases": "useCase",
    "technicalLimitations": "technicalLimitation",
    "performanceTradeoffs": "performanceTradeoff",
    "ethicalConsiderations": "ethicalConsideration",
    "inputs": "input",
    "outputs": "output",
}
# What XML 1.0 cannot carry, even as a character reference: C0 controls but tab, newline and
# carriage return, lone surrogates, U+FFFE and U+FFFF. Text from scanned files may hold any.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML cannot carry written as a visible ``\\xNN`` (or
    ``\\uNNNN``) escape, so the report keeps the evidence and stays well-formed."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _NOT_XML.sub(escape, text)


# Elements a component's modelCard and data must come before (the XSD's sequence order).
_AFTER_EXTRAS = ("cryptoProperties", "tags", "signature")


def _to_xml(parent: ElementTree.Element, key: str, value: Any, ns: str) -> None:
    tag = f"{{{ns}}}{key}"
    if key == "properties":
        holder = ElementTree.SubElement(parent, tag)
        for prop in value:
            item = ElementTree.SubElement(holder, f"{{{ns}}}property", name=prop["name"])
            item.text = prop.get("value", "")
        return
    if key == "datasets":
        holder = ElementTree.SubElement(parent, tag)
        for dataset in value:
            if "ref" in dataset:
                ElementTree.SubElement(holder, f"{{{ns}}}ref").text = dataset["ref"]
            else:
                _to_xml(holder, "dataset", dataset, ns)
        return
    if key == "attachment":
        element = ElementTree.SubElement(parent, tag)
        element.set("content-type", value.get("contentType", "text/plain"))
        element.text = value.get("content", "")
        return
    if isinstance(value, list) and key in _ITEM_NAMES:
        holder = ElementTree.SubElement(parent, tag)
        for item in value:
            _to_xml(holder, _ITEM_NAMES[key], item, ns)
        return
    if isinstance(value, dict):
        element = ElementTree.SubElement(parent, tag)
        if "bom-ref" in value:
            element.set("bom-ref", value["bom-ref"])
        for sub, inner in value.items():
            if sub != "bom-ref":
                _to_xml(element, sub, inner, ns)
        return
    ElementTree.SubElement(parent, tag).text = str(value)


def insert_xml(bom_xml: str, extras: Extras, spec_version: str) -> str:
    ns = CDX_XML_NS[spec_version]
    ElementTree.register_namespace("", ns)
    # The XML is the library's own serialisation of our BOM, not untrusted input; only its
    # text (from scanned files) may hold characters XML cannot carry, which no markup does.
    root = ElementTree.fromstring(xml_safe(bom_xml))  # noqa: S314
    found: set[str] = set()
    for component in root.iter(f"{{{ns}}}component"):
        ref = component.get("bom-ref")
        if ref is None or ref not in extras:
            continue
        holder = ElementTree.Element("holder")
        for key, value in extras[ref].items():
            for item in value if key == "data" else [value]:
                _to_xml(holder, key, item, ns)
        children = list(component)
        position = next(
            (i for i, c in enumerate(children) if c.tag.split("}")[-1] in _AFTER_EXTRAS),
            len(children),
        )
        for offset, element in enumerate(holder):
            component.insert(position + offset, element)
        found.add(ref)
    missing = set(extras) - found
    if missing:
        raise AssertionError(f"BOM has no component for {sorted(missing)}")
    ElementTree.indent(root, space="  ")
    text = ElementTree.tostring(root, encoding="unicode")
    return '<?xml version="1.0" ?>\n' + xml_safe(text) + "\n"
