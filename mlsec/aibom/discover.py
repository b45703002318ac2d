"""Which files form which model.

A Hugging Face style folder (weights beside a ``config.json``, a model card with front matter,
or a ``model_index.json``) is ONE model with all its files (weights, config, tokenizer, card).
A TensorFlow SavedModel is one model (``saved_model.pb`` plus ``variables/``). Shards such as
``model-00001-of-00003.safetensors`` outside such a folder form one model. Any other weight
file (a ``.gguf``, an ``.onnx``, a ``.pt``) is a model of its own.

A model folder holds every file a model-signing manifest of the folder would cover: its own
files and those of its sub-folders (``1_Pooling/config.json``, a diffusers ``scheduler/``,
``onnx/``), code included, save the git metadata files (``.gitattributes``...) and the
signature files, and save what belongs to a deeper model folder.

Arrays files (``.npy``, ``.npz``) are weights only when they are a model's weights: named so
(``model.npz``, ``weights.npz``, ``params.npz``) or the weights of a model folder; a constant
such as Whisper's ``mel_filters.npz`` is data.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mlsec.models.registry import ALWAYS_WEIGHTS, MAYBE_WEIGHTS, WEIGHT_EXTENSIONS, FileKind
from mlsec.walk import Target

# Which kinds are weights, always or by name: the format registry says (mlsec.models.registry).
_ALWAYS_WEIGHTS = ALWAYS_WEIGHTS
_MAYBE_WEIGHTS = MAYBE_WEIGHTS
# Arrays files are weights by name only when the name says weights.
_ARRAY_KINDS = {FileKind.NUMPY}
_ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})
_WEIGHTS_NAME = re.compile(
    r"(^|[-_.])(model|weights?|params|parameters|checkpoint|ckpt|state[-_]?dict)([-_.]|$)", re.I
)
_GIT_FILES = frozenset({".gitattributes", ".gitignore", ".gitmodules", ".gitkeep"})
_SIGNATURE_FILE = re.compile(r"(^|/)(model\.sig|[^/]*\.sigstore(\.json)?)$")
# Tokenizer files (vocabularies, merges, SentencePiece and tiktoken models, configurations).
_TOKENIZER_NAMES = frozenset(
    {
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
        "source.spm",
        "target.spm",
        "special_tokens_map.json",
        "added_tokens.json",
    }
)
# Files that make a folder a model folder.
_MARKERS = {"config.json", "model_index.json", "adapter_config.json"}
# Sidecar files of a model folder that belong to the model.
_NOT_MODEL = re.compile(
    r"(^|/)(requirements[^/]*\.txt|constraints[^/]*\.txt|pyproject\.toml|setup\.(py|cfg)|"
    r"[^/]*\.lock|package(-lock)?\.json|\.mlsec\.toml|model\.sig|[^/]*\.sigstore(\.json)?)$"
)
_SHARD = re.compile(r"^(?P<stem>.+?)-\d{5}-of-\d{5}(?P<ext>\.[A-Za-z0-9]+)$")


def _ext(relpath: str) -> str:
    name = relpath.rsplit("/", 1)[-1].lower()
    return name[name.rfind(".") :] if "." in name else ""


def is_array(target: Target) -> bool:
    return target.kind in _ARRAY_KINDS or _ext(target.relpath) in _ARRAY_EXTENSIONS


def is_weight(target: Target, known_models: Iterable[str] = ()) -> bool:
    if is_array(target):
        # Weights only when named so; arrays in a model folder join it (group_models).
        stem = target.relpath.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return bool(_WEIGHTS_NAME.search(stem))
    if target.relpath in known_models:
        return True
    if target.kind in _ALWAYS_WEIGHTS:
        return True
    return target.kind in _MAYBE_WEIGHTS and _ext(target.relpath) in WEIGHT_EXTENSIONS


def role_of(relpath: str, is_weights: bool) -> str:
    name = relpath.rsplit("/", 1)[-1].lower()
    ext = _ext(relpath)
    if is_weights:
        return "weights"
    if name == "readme.md":
        return "card"
    if "chat_template" in name:
        return "chat-template"
    if "tokenizer" in name or name in _TOKENIZER_NAMES or ext == ".tiktoken":
        return "tokenizer"
    if ext in (".py",):
        return "code"
    if ext in _ARRAY_EXTENSIONS:
        return "data"
    if ext in (".json", ".yaml", ".yml", ".toml", ".cfg"):
        return "config"
    return "other"


def is_loose_artifact(target: Target) -> bool:
    """A tokenizer vocabulary or an arrays file: listed as data when in no model (a
    tokenizer's configuration files alone are not)."""
    name = target.relpath.rsplit("/", 1)[-1].lower()
    if is_array(target):
        return True
    return (
        role_of(target.relpath, False) == "tokenizer"
        and not name.endswith("config.json")
        and (name not in ("special_tokens_map.json", "added_tokens.json"))
    )


@dataclass
class ModelGroup:
    path: str  # folder or file, relative to the scan root ("." for the root folder)
    folder: bool
    weights: list[Target] = field(default_factory=list)
    sidecars: list[Target] = field(default_factory=list)
    # Folders whose files belong to this model besides its own (a SavedModel's variables/ and
    # assets/, the component folders of a diffusers pipeline).
    subfolders: set[str] = field(default_factory=set)

    @property
    def files(self) -> list[Target]:
        return sorted([*self.weights, *self.sidecars], key=lambda t: t.relpath)


def _parent(relpath: str) -> str:
    return posixpath.dirname(relpath) or "."


def _inside(relpath: str, folder: str) -> bool:
    return folder == "." or relpath.startswith(folder + "/")


def group_models(
    targets: Sequence[Target],
    card_folders: Iterable[str],
    known_models: Iterable[str] = (),
    declared_folders: Iterable[str] = (),
) -> list[ModelGroup]:
    """Group the walked files into models. ``card_folders`` are folders whose README.md has
    model card front matter; ``known_models`` are paths the model analyzers recognised;
    ``declared_folders`` are folders that describe a model (a card naming a task or base
    model, a config naming an architecture) and are a model even with no weights present."""
    known = set(known_models)
    cards = set(card_folders)
    weights = [t for t in targets if is_weight(t, known)]
    declared = set(declared_folders)
    markers = {
        _parent(t.relpath) for t in targets if t.relpath.rsplit("/", 1)[-1] in _MARKERS
    } | cards
    # The repository root is a model folder only on real evidence (a model card, a config
    # naming an architecture, a pipeline index): any project may have a config.json at its
    # root, and a root model folder takes in every file one level down.
    if (
        "." in markers
        and "." not in cards
        and "." not in declared
        and not any(t.relpath in ("model_index.json", "adapter_config.json") for t in targets)
    ):
        markers.discard(".")
    # A SavedModel's folder is the one holding saved_model.pb; the files under its
    # variables/ folder are its weights, whatever their names.
    saved_models = {_parent(t.relpath) for t in weights if t.kind is FileKind.TF_SAVEDMODEL}
    weight_set = {t.relpath for t in weights}
    for target in targets:
        if target.relpath not in weight_set and any(
            target.relpath.startswith(posixpath.join(sm, "variables") + "/") for sm in saved_models
        ):
            weights.append(target)

    groups: dict[str, ModelGroup] = {}
    for target in weights:
        folder = _model_folder(target.relpath, markers | saved_models)
        if folder is None:
            match = _SHARD.match(target.relpath.rsplit("/", 1)[-1])
            if match:
                key = posixpath.join(_parent(target.relpath), match["stem"] + match["ext"])
                group = groups.setdefault(key, ModelGroup(path=key, folder=False))
            else:
                group = groups.setdefault(
                    target.relpath, ModelGroup(path=target.relpath, folder=False)
                )
        else:
            group = groups.setdefault(folder, ModelGroup(path=folder, folder=True))
        group.weights.append(target)

    for folder in saved_models:
        if folder in groups:
            groups[folder].subfolders |= {
                posixpath.join(folder, "variables"),
                posixpath.join(folder, "assets"),
            }

    # A model card's folder is one model with the model folders right under it (the
    # components of a diffusers pipeline: unet/, vae/, text_encoder/ with their configs).
    for folder in sorted(cards):
        children = [
            g
            for g in list(groups.values())
            if g.folder and g.path not in cards and g.path != folder and _parent(g.path) == folder
        ]
        if not children:
            continue
        parent = groups.setdefault(folder, ModelGroup(path=folder, folder=True))
        for child in children:
            parent.weights.extend(child.weights)
            parent.subfolders |= {child.path, *child.subfolders}
            del groups[child.path]

    for folder in sorted(declared):
        if folder not in groups and not any(
            g.folder and _inside(folder, g.path) for g in groups.values()
        ):
            groups[folder] = ModelGroup(path=folder, folder=True)

    # A folder's other files: everything a signature of the folder covers (sub-folders
    # included, two levels down as the weights), not git metadata or signature files, and
    # not the files of a deeper model folder. The repository root as a model leaves out the
    # repository's own manifests.
    folders = sorted((g for g in groups.values() if g.folder), key=lambda g: -len(g.path))
    weight_paths = {t.relpath for t in weights}
    for target in targets:
        name = target.relpath.rsplit("/", 1)[-1]
        if target.relpath in weight_paths or name in _GIT_FILES:
            continue
        if _SIGNATURE_FILE.search(target.relpath):
            continue
        folder_of = _parent(target.relpath)
        for group in folders:
            if folder_of in group.subfolders or _within(folder_of, group.path):
                if group.path == "." and _NOT_MODEL.search(target.relpath):
                    break
                group.sidecars.append(target)
                break
    return sorted(groups.values(), key=lambda g: g.path)


def _within(folder: str, group: str) -> bool:
    """Whether ``folder`` is ``group`` or a folder right under it."""
    if folder == group:
        return True
    if not _inside(folder, group):
        return False
    rest = folder if group == "." else folder[len(group) + 1 :]
    return "/" not in rest


def _model_folder(relpath: str, folders: set[str]) -> str | None:
    """The nearest model folder holding ``relpath`` (its own folder, or for SavedModels and
    sub-folders such as ``onnx/`` or ``variables/``, one level up)."""
    parent = _parent(relpath)
    if parent in folders:
        return parent
    grand = _parent(parent) if parent != "." else None
    if grand is not None and grand in folders:
        return grand
    return None


def card_candidates(targets: Sequence[Target]) -> Mapping[str, Target]:
    """README.md files by folder (the caller checks which have front matter). Whatever the
    sniffer made of the content: a card with a stray control byte is still the card."""
    return {
        _parent(t.relpath): t
        for t in targets
        if t.relpath.rsplit("/", 1)[-1].lower() == "readme.md"
        and t.kind is not FileKind.LFS_POINTER
    }
