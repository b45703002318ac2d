"""TensorFlow SavedModel (``saved_model.pb``): the operations its graphs use.

A SavedModel runs whatever operations its graphs contain when it is loaded and served; some
read or write files or call back into Python. TensorFlow is not a dependency, so the
protobuf is walked with :mod:`mlsec.formats.protobuf` (field numbers from
``tensorflow/core/protobuf/saved_model.proto``, ``meta_graph.proto``, ``graph.proto``,
``function.proto``, ``node_def.proto``, ``op_def.proto``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from mlsec.formats import FormatError
from mlsec.formats.protobuf import LEN, VARINT, Buffer, Field, iter_fields, mapped, signed64, text

_SAVED_MODEL_SCHEMA, _SAVED_MODEL_META_GRAPHS = 1, 2
_META_INFO, _META_GRAPH_DEF = 1, 2
_INFO_STRIPPED_OPS, _INFO_TAGS, _INFO_TF_VERSION = 2, 4, 5
_OPLIST_OP, _OPDEF_NAME = 1, 1
_GRAPH_NODE, _GRAPH_LIBRARY = 1, 2
_LIBRARY_FUNCTION = 1
_FUNCTION_SIGNATURE, _FUNCTION_NODE = 1, 3
_NODE_NAME, _NODE_OP = 1, 2
MAX_NODES = 10_000_000


@dataclass
class SavedModelInfo:
    schema_version: int | None = None
    tags: list[str] = field(default_factory=list)
    tensorflow_version: str | None = None
    # op name -> first node name using it ("" if only listed in stripped_op_list)
    ops: dict[str, str] = field(default_factory=dict)
    op_counts: dict[str, int] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)
    meta_graph_count: int = 0

    def metadata_json(self) -> dict[str, object]:
        return {
            "tags": sorted(set(self.tags))[:32],
            "tensorflow_version": self.tensorflow_version,
            "meta_graphs": self.meta_graph_count,
            "op_types": len(self.ops),
        }


def read_saved_model(path: str | os.PathLike[str]) -> SavedModelInfo:
    """Parse ``saved_model.pb`` at ``path`` (bounded; nothing is executed)."""
    with mapped(path) as buf:
        return parse_saved_model(buf)


def parse_saved_model(buf: Buffer) -> SavedModelInfo:
    info = SavedModelInfo()
    nodes = [0]
    for f in iter_fields(buf, 0, len(buf)):
        if f.number == _SAVED_MODEL_SCHEMA and f.wire_type == VARINT:
            info.schema_version = signed64(f.value)
        elif f.number == _SAVED_MODEL_META_GRAPHS and f.wire_type == LEN:
            info.meta_graph_count += 1
            _meta_graph(buf, f, info, nodes)
    if info.meta_graph_count == 0:
        raise FormatError("not a SavedModel (no meta graph)")
    return info


def read_graph_def(path: str | os.PathLike[str]) -> SavedModelInfo:
    """Parse a frozen ``GraphDef`` (``*.pb``): its nodes and function library."""
    with mapped(path) as buf:
        return parse_graph_def(buf)


def parse_graph_def(buf: Buffer) -> SavedModelInfo:
    info = SavedModelInfo()
    nodes = [0]
    for f in iter_fields(buf, 0, len(buf)):
        if f.wire_type != LEN:
            continue
        if f.number == _GRAPH_NODE:
            _node(buf, f, info, nodes)
        elif f.number == _GRAPH_LIBRARY:
            _library(buf, f, info, nodes)
    if not info.ops:
        raise FormatError("not a GraphDef (no nodes)")
    return info


_PBTXT_OP = re.compile(rb'\bop:\s*"([A-Za-z0-9_>.]+)"')
_PBTXT_TAG = re.compile(rb'\btags:\s*"([^"]{1,64})"')
MAX_PBTXT = 256 * 1024 * 1024


def read_saved_model_text(path: str | os.PathLike[str]) -> SavedModelInfo:
    """Op names from a text-format SavedModel (``saved_model.pbtxt``), by pattern."""
    with mapped(path) as buf:
        data = bytes(buf[:MAX_PBTXT])
    info = SavedModelInfo()
    for match in _PBTXT_OP.finditer(data):
        op = match.group(1).decode("ascii")
        info.ops.setdefault(op, "")
        info.op_counts[op] = info.op_counts.get(op, 0) + 1
    info.tags = sorted({m.group(1).decode("utf-8", "replace") for m in _PBTXT_TAG.finditer(data)})
    info.meta_graph_count = data.count(b"meta_graphs")
    if not info.meta_graph_count and not info.ops:
        raise FormatError("no meta graph or operation found in the text SavedModel")
    return info


def _meta_graph(buf: Buffer, f: Field, info: SavedModelInfo, nodes: list[int]) -> None:
    for g in iter_fields(buf, f.value, f.end):
        if g.wire_type != LEN:
            continue
        if g.number == _META_INFO:
            for h in iter_fields(buf, g.value, g.end):
                if h.wire_type != LEN:
                    continue
                if h.number == _INFO_TAGS:
                    info.tags.append(text(buf, h, 256))
                elif h.number == _INFO_TF_VERSION:
                    info.tensorflow_version = text(buf, h, 256)
                elif h.number == _INFO_STRIPPED_OPS:
                    for op in iter_fields(buf, h.value, h.end):
                        if op.number == _OPLIST_OP and op.wire_type == LEN:
                            for d in iter_fields(buf, op.value, op.end):
                                if d.number == _OPDEF_NAME and d.wire_type == LEN:
                                    info.ops.setdefault(text(buf, d, 256), "")
        elif g.number == _META_GRAPH_DEF:
            for h in iter_fields(buf, g.value, g.end):
                if h.wire_type != LEN:
                    continue
                if h.number == _GRAPH_NODE:
                    _node(buf, h, info, nodes)
                elif h.number == _GRAPH_LIBRARY:
                    _library(buf, h, info, nodes)


def _library(buf: Buffer, f: Field, info: SavedModelInfo, nodes: list[int]) -> None:
    for fn in iter_fields(buf, f.value, f.end):
        if fn.number != _LIBRARY_FUNCTION or fn.wire_type != LEN:
            continue
        for g in iter_fields(buf, fn.value, fn.end):
            if g.wire_type != LEN:
                continue
            if g.number == _FUNCTION_SIGNATURE:
                for d in iter_fields(buf, g.value, g.end):
                    if d.number == _OPDEF_NAME and d.wire_type == LEN:
                        info.functions.append(text(buf, d, 512))
            elif g.number == _FUNCTION_NODE:
                _node(buf, g, info, nodes)


def _node(buf: Buffer, f: Field, info: SavedModelInfo, nodes: list[int]) -> None:
    nodes[0] += 1
    if nodes[0] > MAX_NODES:
        raise FormatError(f"more than {MAX_NODES} nodes")
    name = op = ""
    for g in iter_fields(buf, f.value, f.end):
        if g.number == _NODE_NAME and g.wire_type == LEN:
            name = text(buf, g, 512)
        elif g.number == _NODE_OP and g.wire_type == LEN:
            op = text(buf, g, 256)
    if op:
        if not info.ops.get(op):
            info.ops[op] = name
        info.op_counts[op] = info.op_counts.get(op, 0) + 1
