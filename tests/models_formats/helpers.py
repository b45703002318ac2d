"""Builders shared by the model-format tests."""

from __future__ import annotations

import base64
from typing import Any


def lambda_layer(code: bytes) -> dict[str, Any]:
    """A Keras 3 Lambda layer whose function is marshalled ``code``, base64 as Keras writes it
    (built as data; nothing here is ever unmarshalled)."""
    function = {"code": base64.b64encode(code).decode(), "defaults": None}
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {"name": "lam", "function": {"class_name": "__lambda__", "config": function}},
    }
