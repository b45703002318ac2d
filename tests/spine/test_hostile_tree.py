"""A repository of garbage behind every magic number goes through every analyzer, whole.

The parser-level fuzz tests mutate one format at a time; this one checks the pipeline: the
walker, each analyzer (models, formats, modelscan, dependencies, signatures, the AIBOM) and
the renderers, on a tree where every file is a plausible header followed by random bytes.
No analyzer may crash (an "internal error" entry) and the process must not print a traceback.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.conftest import FIXTURES

# A header per sniffed kind (mlsec/sniff.py), under names that also route by extension.
HEADS: dict[str, bytes] = {
    "model.pt": b"PK\x03\x04",
    "weights.pkl": b"\x80\x04\x95",
    "old.pkl": b"(dp0\n",
    "archive.tar": b"",  # "ustar" is written at offset 257 below
    "state.gz": b"\x1f\x8b\x08\x00",
    "state.bz2": b"BZh91AY&SY",
    "state.xz": b"\xfd7zXZ\x00",
    "model.joblib": b"\x5d\x00\x00\x10\x00\xff\xff\xff\xff\xff\xff\xff\xff",
    "state.lz4": b"\x04\x22\x4d\x18",
    "zfile.pkl": b"ZF0x",
    "array.npy": b"\x93NUMPY\x01\x00",
    "chat.gguf": b"GGUF\x03\x00\x00\x00",
    "model.h5": b"\x89HDF\r\n\x1a\n",
    "model.keras": b"PK\x03\x04",
    "weights.safetensors": b"\x40\x00\x00\x00\x00\x00\x00\x00{",
    "blob.zlib": b"\x78\x9c",
    "model.onnx": b"\x08\x07\x12",
    "saved_model.pb": b"\x12",
    "keras_metadata.pb": b"\x0a",
    "frozen.pb": b"\x0a\x0b",
    "model.sig": b"{",
    "model.sigstore.json": b'{"mediaType": ',
    "tokenizer_config.json": b'{"chat_template": "{{ ',
    "requirements.txt": b"torch==",
    "uv.lock": b"version = 1\n[[package]]\nname = ",
    "environment.yml": b"dependencies:\n  - pip:\n    - ",
    "README.md": b"---\nlicense: ",
    "notes.bin": b"",
}


def _build_tree(root: Path, copies: int, seed: int) -> int:
    rng = random.Random(seed)
    count = 0
    for index in range(copies):
        folder = root / f"model-{index}"
        folder.mkdir(parents=True)
        for name, head in HEADS.items():
            tail = rng.randbytes(rng.choice((0, 1, 7, 64, 700, 3000)))
            data = head + tail
            if name == "archive.tar":
                data = data.ljust(300, b"\0")
                data = data[:257] + b"ustar" + data[262:]
            (folder / name).write_bytes(data)
            count += 1
    return count


def _assert_clean_run(proc: CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("seed", [1, 2])
def test_garbage_tree_scans_without_internal_errors(
    tmp_path: Path, cli: Callable[..., CompletedProcess[str]], seed: int
) -> None:
    files = _build_tree(tmp_path / "repo", copies=3, seed=seed)
    common = ["--offline", "--vuln-db", str(FIXTURES / "osv-mini"), "--no-git", "--fail-on"]
    proc = cli("scan", tmp_path / "repo", "--format", "json", *common, "none", timeout=600)
    _assert_clean_run(proc)
    report = json.loads(proc.stdout)
    assert report["summary"]["files_scanned"] == files
    crashes = [e for e in report["errors"] if "internal error" in e["message"]]
    assert crashes == []
    # Hostile files are findings: pickle family, safetensors, GGUF, ONNX, Keras, SavedModel,
    # manifests and signatures each said what is wrong with theirs.
    fired = {f["rule_id"] for f in report["findings"]}
    assert fired >= {"MLS100", "MLS140", "MLS142", "MLS146", "MLS149", "MLS154", "MLS212"}
    assert "MLS400" in fired

    # The BOM path (hashing, cards, grouping) and its validation take the same tree.
    bom = cli("scan", tmp_path / "repo", "--format", "cyclonedx", *common, "none", timeout=600)
    _assert_clean_run(bom)
    assert json.loads(bom.stdout)["bomFormat"] == "CycloneDX"
