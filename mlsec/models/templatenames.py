"""Which files carry chat templates, by name: what the walk and the registry need to know of
templates without importing their interpreter (:mod:`mlsec.analyzers.chat_template`, a large
module: ~16 ms to import, paid only when there is a template to judge)."""

from __future__ import annotations

# Hugging Face JSON files that carry chat templates (rendered by loaders as Jinja).
TEMPLATE_JSON_NAMES = (
    "tokenizer_config.json",
    "chat_template.json",
    "processor_config.json",
    "preprocessor_config.json",
)
TEMPLATE_EXTENSIONS = ("jinja", "j2", "jinja2")  # of Jinja files that may be chat templates
_EXTRA_TEMPLATES_DIR = "additional_chat_templates/"  # transformers: <dir>/<name>.jinja


def template_label(lower: str) -> str | None:
    """The label of a Jinja file that is a chat template (by its lower-case path), or None.

    ``chat_template.jinja`` (transformers), ``additional_chat_templates/<name>.jinja``
    (transformers' named templates) and any ``*chat_template*.jinja``/``.j2`` (the
    ``--chat-template`` files of serving tools); other Jinja files are web pages.
    """
    folder, _, base = lower.rpartition("/")
    stem, dot, extension = base.rpartition(".")
    if not dot or extension not in TEMPLATE_EXTENSIONS:
        return None
    if stem == "chat_template":
        return "chat_template"
    if f"/{folder}/".endswith(f"/{_EXTRA_TEMPLATES_DIR}") or "chat_template" in stem.replace(
        "-", "_"
    ):
        return f"chat_template.{stem}"
    return None


def is_template_file(name: str) -> bool:
    """Whether a file or member called ``name`` carries chat templates loaders render."""
    lower = name.lower().replace("\\", "/")
    return lower.endswith(TEMPLATE_JSON_NAMES) or template_label(lower) is not None
