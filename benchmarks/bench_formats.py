"""Time and peak memory of the non-pickle format parsers on large files, side by side.

Run from the repository root: ``/work/venv/bin/python benchmarks/bench_formats.py``.
Inputs are generated under ``benchmarks/.work/formats`` (git-ignored):

- a 1 GiB safetensors file (sparse: header plus a hole; the parsers never read the payload),
- a GGUF with a 256k-token vocabulary and 1 GiB of tensor data (sparse),
- an ONNX model with a 512 MiB initializer stored inline (raw_data).

Each measurement runs in a fresh process (wall time and peak RSS of that process): mlsec's
parser, the reference library's reader (safetensors.safe_open, gguf.GGUFReader, onnx.load),
and the whole ``mlsec scan`` CLI on the file.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / ".work" / "formats"
GIB = 1024**3


def make_safetensors(path: Path) -> None:
    n = 16
    size = GIB // n
    header = {
        f"layer{i}.weight": {
            "dtype": "F32",
            "shape": [size // 4],
            "data_offsets": [i * size, (i + 1) * size],
        }
        for i in range(n)
    }
    raw = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + n * size)


def make_gguf(path: Path) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("bench")
    writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    writer.add_token_list([f"token-{i}" for i in range(256_000)])
    writer.add_tensor_info("blob", (GIB // 4,), np.dtype(np.float32), GIB)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with open(path, "r+b") as handle:  # the tensor data: a hole of 1 GiB, aligned
        end = handle.seek(0, 2)
        handle.truncate((end + 31) // 32 * 32 + GIB)


def make_onnx(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((512 * 1024**2 // 4,), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "bench",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None])],
        [weight],
    )
    onnx.save(helper.make_model(graph), str(path))


CASES = {
    "safetensors": (
        "model.safetensors",
        make_safetensors,
        "from mlsec.formats.safetensors import read_header; read_header(P).parameter_count",
        "from safetensors import safe_open\n"
        "with safe_open(P, 'numpy') as f: list(f.keys()); f.metadata()",
    ),
    "gguf": (
        "model.gguf",
        make_gguf,
        "from mlsec.formats.gguf import read_gguf; read_gguf(P).parameter_count",
        "import gguf; r = gguf.GGUFReader(P); len(r.fields)",
    ),
    "onnx": (
        "model.onnx",
        make_onnx,
        "from mlsec.formats.onnx import read_onnx; read_onnx(P).parameter_count",
        "import onnx; onnx.load(P)",
    ),
}


def measure(code: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``python -c code`` in a fresh process."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"{'format':<12} {'reader':<28} {'seconds':>8} {'peak MiB':>9}")
    for name, (filename, make, ours, reference) in CASES.items():
        path = WORK / filename
        if not path.exists():
            make(path)
        assign = f"P = {str(path)!r}\n"
        cli = (
            "import sys; from mlsec.cli import main; "
            f"sys.argv = ['mlsec', 'scan', {str(path)!r}, '--format', 'json', '--offline', "
            "'--fail-on', 'none']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass"
        )
        for label, code in (
            ("mlsec parser", assign + ours),
            ("reference library", assign + reference),
            ("mlsec scan (whole CLI)", cli),
        ):
            try:
                seconds, peak = measure(code)
            except subprocess.CalledProcessError:
                print(f"{name:<12} {label:<28} {'failed':>8}")
                continue
            print(f"{name:<12} {label:<28} {seconds:8.2f} {peak:9.0f}")


if __name__ == "__main__":
    main()
