"""File names a model loader would open: the one list the walker and the signature check use.

A link or a file with one of these names is what ``from_pretrained``, ``torch.load``,
``joblib.load``, ``keras.models.load_model``, ONNX Runtime or llama.cpp would read, so not
scanning it is a high finding, where not scanning a README is medium.
"""

from __future__ import annotations

from mlsec.models.sniff import PICKLE_EXTENSIONS

MODEL_EXTENSIONS = frozenset(
    {
        *PICKLE_EXTENSIONS,
        ".safetensors",
        ".gguf",
        ".ggml",
        ".onnx",
        ".h5",
        ".hdf5",
        ".keras",
        ".pb",
        ".tflite",
        ".msgpack",
        ".mlmodel",
        ".npy",
        ".npz",
        ".pdparams",
        ".nemo",
        ".llamafile",
        ".mar",
        ".model",
    }
)
# Names loaders open whatever their extension says (or that have none).
MODEL_NAMES = frozenset(
    {
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "model.safetensors",
        "saved_model.pb",
        "saved_model.pbtxt",
        "keras_metadata.pb",
        "fingerprint.pb",
        "tokenizer.model",
        "training_args.bin",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
    }
)
_COMPRESSION = (".gz", ".bz2", ".xz", ".lzma", ".zst", ".lz4", ".zip", ".tar")


def loader_would_open(name: str) -> bool:
    """Whether a file called ``name`` (a path's last part) looks like a model file."""
    lower = name.rsplit("/", 1)[-1].lower()
    if lower in MODEL_NAMES:
        return True
    for suffix in _COMPRESSION:  # joblib and torch read compressed pickles by name
        if lower.endswith(suffix) and lower[: -len(suffix)].rfind(".") > 0:
            lower = lower[: -len(suffix)]
            break
    dot = lower.rfind(".")
    return dot >= 0 and lower[dot:] in MODEL_EXTENSIONS
