"""Static ONNX model parsing: producer, opsets, metadata, operators, external data.

The ``onnx`` package is not a runtime dependency, and ``onnx.load`` reads every weight into
memory (and, by default, follows external-data paths). This module walks the ModelProto with
the hand-written wire reader in :mod:`mlsec.formats.protobuf` over a memory map, descending
only into the messages it needs, so large initializers are skipped without being read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlsec.formats import FormatError
from mlsec.formats.protobuf import (
    LEN,
    MAX_DEPTH,
    VARINT,
    Buffer,
    Field,
    iter_fields,
    mapped,
    packed_varints,
    signed64,
    text,
)

MAX_NODES = 5_000_000

# Field numbers from onnx/onnx.proto (stable across IR versions).
_MODEL_IR_VERSION, _MODEL_OPSET, _MODEL_PRODUCER, _MODEL_PRODUCER_VERSION = 1, 8, 2, 3
_MODEL_DOMAIN, _MODEL_VERSION, _MODEL_DOC, _MODEL_GRAPH = 4, 5, 6, 7
_MODEL_METADATA, _MODEL_TRAINING, _MODEL_FUNCTIONS = 14, 20, 25
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 2, 5, 15
_NODE_OP_TYPE, _NODE_DOMAIN, _NODE_ATTRIBUTE, _NODE_NAME = 4, 7, 5, 3
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_F, _ATTR_I, _ATTR_FLOATS, _ATTR_INTS, _ATTR_SPARSE = 2, 3, 7, 8, 22
_TENSOR_DIMS, _TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 1, 8, 13, 14
_SPARSE_VALUES = 1
_FUNCTION_NAME, _FUNCTION_NODE, _FUNCTION_DOMAIN, _FUNCTION_OPSET = 1, 7, 10, 9
_TRAINING_INIT, _TRAINING_ALGO = 1, 3


@dataclass(frozen=True)
class ExternalData:
    tensor: str
    location: str
    offset: str | None = None
    length: str | None = None


@dataclass
class ONNXInfo:
    ir_version: int | None = None
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int | None = None
    doc_string: str = ""
    graph_name: str = ""
    opset_imports: dict[str, int] = field(default_factory=dict)
    metadata_props: dict[str, str] = field(default_factory=dict)
    # (domain, op_type) -> number of nodes; domain "" is the default ONNX domain
    operators: dict[tuple[str, str], int] = field(default_factory=dict)
    functions: list[tuple[str, str]] = field(default_factory=list)  # (domain, name)
    external_data: list[ExternalData] = field(default_factory=list)
    initializer_count: int = 0
    constant_count: int = 0  # Constant nodes (exporters such as torch.onnx put weights there)
    # Elements of the initializers and Constant-node tensors; None when the model holds
    # neither, or a tensor's shape is not known (a count mlsec cannot establish is absent).
    parameter_count: int | None = None

    @property
    def custom_domains(self) -> set[str]:
        """Operator domains outside the standard ONNX ones (and the model's own functions)."""
        local = {domain for domain, _name in self.functions}
        return {d for d, _op in self.operators if d not in STANDARD_DOMAINS and d not in local}

    def metadata_json(self) -> dict[str, object]:
        return {
            "ir_version": self.ir_version,
            "producer_name": self.producer_name,
            "producer_version": self.producer_version,
            "domain": self.domain,
            "model_version": self.model_version,
            "graph_name": self.graph_name,
            "opset_imports": dict(self.opset_imports),
            "metadata_props": {k[:128]: v[:512] for k, v in list(self.metadata_props.items())[:64]},
        }


STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
)


def read_onnx(path: str | os.PathLike[str]) -> ONNXInfo:
    """Parse the ONNX model at ``path`` without reading its weights."""
    with mapped(path) as buf:
        return parse_onnx(buf)


def parse_onnx(buf: Buffer) -> ONNXInfo:
    info = ONNXInfo()
    state = _State(info)
    saw_graph = False
    for f in iter_fields(buf, 0, len(buf)):
        n = f.number
        if n == _MODEL_IR_VERSION and f.wire_type == VARINT:
            info.ir_version = signed64(f.value)
        elif n == _MODEL_PRODUCER and f.wire_type == LEN:
            info.producer_name = text(buf, f, 4096)
        elif n == _MODEL_PRODUCER_VERSION and f.wire_type == LEN:
            info.producer_version = text(buf, f, 4096)
        elif n == _MODEL_DOMAIN and f.wire_type == LEN:
            info.domain = text(buf, f, 4096)
        elif n == _MODEL_VERSION and f.wire_type == VARINT:
            info.model_version = signed64(f.value)
        elif n == _MODEL_DOC and f.wire_type == LEN:
            info.doc_string = text(buf, f, 4096)
        elif n == _MODEL_OPSET and f.wire_type == LEN:
            domain, version = _opset(buf, f)
            info.opset_imports[domain] = version
        elif n == _MODEL_METADATA and f.wire_type == LEN:
            key, value = _string_pair(buf, f)
            info.metadata_props[key] = value
        elif n == _MODEL_GRAPH and f.wire_type == LEN:
            saw_graph = True
            state.graph(buf, f, depth=0, top=True)
        elif n == _MODEL_FUNCTIONS and f.wire_type == LEN:
            state.function(buf, f)
        elif n == _MODEL_TRAINING and f.wire_type == LEN:
            for g in iter_fields(buf, f.value, f.end):
                if g.number in (_TRAINING_INIT, _TRAINING_ALGO) and g.wire_type == LEN:
                    state.graph(buf, g, depth=1)
    if info.ir_version is None or not saw_graph:
        raise FormatError("not an ONNX model (no ir_version or no graph)")
    return info


class _State:
    def __init__(self, info: ONNXInfo) -> None:
        self.info = info
        self.nodes = 0
        self.unknown_size = False

    def graph(self, buf: Buffer, f: Field, depth: int, top: bool = False) -> None:
        if depth > MAX_DEPTH:
            raise FormatError("subgraphs nested too deeply")
        for g in iter_fields(buf, f.value, f.end):
            if g.wire_type != LEN:
                continue
            if g.number == _GRAPH_NODE:
                self.node(buf, g, depth)
            elif g.number == _GRAPH_NAME and top:
                self.info.graph_name = text(buf, g, 4096)
            elif g.number == _GRAPH_INITIALIZER:
                self.tensor(buf, g, count=True, initializer=True)
            elif g.number == _GRAPH_SPARSE_INITIALIZER:
                for s in iter_fields(buf, g.value, g.end):
                    if s.number == _SPARSE_VALUES and s.wire_type == LEN:
                        self.tensor(buf, s, count=True, initializer=True)

    def node(self, buf: Buffer, f: Field, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FormatError(f"more than {MAX_NODES} nodes")
        op_type = domain = ""
        attributes: list[Field] = []
        for g in iter_fields(buf, f.value, f.end):
            if g.wire_type != LEN:
                continue
            if g.number == _NODE_OP_TYPE:
                op_type = text(buf, g, 1024)
            elif g.number == _NODE_DOMAIN:
                domain = text(buf, g, 1024)
            elif g.number == _NODE_ATTRIBUTE:
                attributes.append(g)
        # A Constant node's value is a weight like an initializer (its op_type may follow
        # its attributes on the wire, hence the second pass).
        constant = op_type == "Constant" and domain in ("", "ai.onnx")
        if constant:
            self.info.constant_count += 1
        for g in attributes:
            self.attribute(buf, g, depth, constant)
        key = (domain, op_type)
        self.info.operators[key] = self.info.operators.get(key, 0) + 1

    def attribute(self, buf: Buffer, f: Field, depth: int, constant: bool = False) -> None:
        for g in iter_fields(buf, f.value, f.end):
            if g.wire_type != LEN:
                # value_float / value_int, and value_floats / value_ints written unpacked
                # (onnx.proto is proto2: one field per element)
                if constant and g.number in (_ATTR_F, _ATTR_I, _ATTR_FLOATS, _ATTR_INTS):
                    self._count(1)
                continue
            if g.wire_type != LEN:
                continue
            if g.number in (_ATTR_G, _ATTR_GRAPHS):
                self.graph(buf, g, depth + 1)
            elif g.number in (_ATTR_T, _ATTR_TENSORS):
                self.tensor(buf, g, count=constant and g.number == _ATTR_T)
            elif g.number == _ATTR_SPARSE and constant:
                for s in iter_fields(buf, g.value, g.end):
                    if s.number == _SPARSE_VALUES and s.wire_type == LEN:
                        self.tensor(buf, s, count=True)
            elif g.number == _ATTR_FLOATS and constant:
                self._count(g.length // 4)  # packed 32-bit floats
            elif g.number == _ATTR_INTS and constant:
                self._count(len(packed_varints(buf, g)))

    def _count(self, elements: int | None) -> None:
        """Add to the parameter count; an unknown size makes the whole count unknown."""
        if self.unknown_size:
            return
        if elements is None:
            self.unknown_size = True
            self.info.parameter_count = None
            return
        self.info.parameter_count = (self.info.parameter_count or 0) + elements

    def tensor(self, buf: Buffer, f: Field, count: bool, initializer: bool = False) -> None:
        name = ""
        dims: list[int] = []
        external: dict[str, str] = {}
        for g in iter_fields(buf, f.value, f.end):
            if g.number == _TENSOR_NAME and g.wire_type == LEN:
                name = text(buf, g, 4096)
            elif g.number == _TENSOR_DIMS:
                if g.wire_type == VARINT:
                    dims.append(signed64(g.value))
                elif g.wire_type == LEN:
                    dims.extend(packed_varints(buf, g))
            elif g.number == _TENSOR_EXTERNAL and g.wire_type == LEN:
                key, value = _string_pair(buf, g)
                external[key] = value
        if initializer:
            self.info.initializer_count += 1
        if count:
            self._count(math.prod(dims) if all(d >= 0 for d in dims) else None)
        if external:
            self.info.external_data.append(
                ExternalData(
                    tensor=name,
                    location=external.get("location", ""),
                    offset=external.get("offset"),
                    length=external.get("length"),
                )
            )

    def function(self, buf: Buffer, f: Field) -> None:
        name = domain = ""
        for g in iter_fields(buf, f.value, f.end):
            if g.wire_type != LEN:
                continue
            if g.number == _FUNCTION_NAME:
                name = text(buf, g, 1024)
            elif g.number == _FUNCTION_DOMAIN:
                domain = text(buf, g, 1024)
            elif g.number == _FUNCTION_NODE:
                self.node(buf, g, depth=1)
        self.info.functions.append((domain, name))


def _opset(buf: Buffer, f: Field) -> tuple[str, int]:
    domain, version = "", 0
    for g in iter_fields(buf, f.value, f.end):
        if g.number == 1 and g.wire_type == LEN:
            domain = text(buf, g, 1024)
        elif g.number == 2 and g.wire_type == VARINT:
            version = signed64(g.value)
    return domain, version


def _string_pair(buf: Buffer, f: Field) -> tuple[str, str]:
    key = value = ""
    for g in iter_fields(buf, f.value, f.end):
        if g.number == 1 and g.wire_type == LEN:
            key = text(buf, g, 4096)
        elif g.number == 2 and g.wire_type == LEN:
            value = text(buf, g, 64 * 1024)
    return key, value


def operator_summary(info: ONNXInfo) -> Mapping[str, int]:
    """Node counts per ``domain:op_type`` (``op_type`` alone for the default domain)."""
    return {(f"{d}:{o}" if d else o): n for (d, o), n in sorted(info.operators.items())}
