"""What a Hugging Face ``pipeline_tag`` determines about a model: the format of its inputs and
outputs and, for the tasks that are only learnt one way, its learning approach.

The tags are the Hub's task ids (huggingface.js ``pipelines.ts``). A task's inputs and outputs
are what the task is defined by (automatic-speech-recognition maps audio to text); the approach
is given only where the task itself fixes it: a classifier or detector is trained on labels
(supervised), a reinforcement-learning policy by reward. Nothing is said for other tasks (a
text-generation model may be self-supervised, instruction-tuned or RL-tuned).
"""

from __future__ import annotations

from typing import NamedTuple


class TaskFacts(NamedTuple):
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    approach: str | None = None  # a CycloneDX modelParameters.approach.type


_SUPERVISED = "supervised"
_TASKS: dict[str, TaskFacts] = {
    # text
    "text-classification": TaskFacts(("string",), ("string",), _SUPERVISED),
    "token-classification": TaskFacts(("string",), ("string",), _SUPERVISED),
    "zero-shot-classification": TaskFacts(("string",), ("string",)),
    "question-answering": TaskFacts(("string",), ("string",)),
    "table-question-answering": TaskFacts(("tabular", "string"), ("string",)),
    "translation": TaskFacts(("string",), ("string",)),
    "summarization": TaskFacts(("string",), ("string",)),
    "text-generation": TaskFacts(("string",), ("string",)),
    "text2text-generation": TaskFacts(("string",), ("string",)),
    "fill-mask": TaskFacts(("string",), ("string",)),
    "feature-extraction": TaskFacts(("string",), ("embedding",)),
    "sentence-similarity": TaskFacts(("string",), ("embedding",)),
    "text-ranking": TaskFacts(("string",), ("score",)),
    "multiple-choice": TaskFacts(("string",), ("string",)),
    # audio
    "automatic-speech-recognition": TaskFacts(("audio",), ("string",)),
    "audio-classification": TaskFacts(("audio",), ("string",), _SUPERVISED),
    "voice-activity-detection": TaskFacts(("audio",), ("time-series",)),
    "text-to-speech": TaskFacts(("string",), ("audio",)),
    "text-to-audio": TaskFacts(("string",), ("audio",)),
    "audio-to-audio": TaskFacts(("audio",), ("audio",)),
    "audio-text-to-text": TaskFacts(("audio", "string"), ("string",)),
    # vision
    "image-classification": TaskFacts(("image",), ("string",), _SUPERVISED),
    "zero-shot-image-classification": TaskFacts(("image", "string"), ("string",)),
    "object-detection": TaskFacts(("image",), ("bounding-boxes",), _SUPERVISED),
    "zero-shot-object-detection": TaskFacts(("image", "string"), ("bounding-boxes",)),
    "image-segmentation": TaskFacts(("image",), ("image",), _SUPERVISED),
    "mask-generation": TaskFacts(("image",), ("image",)),
    "depth-estimation": TaskFacts(("image",), ("image",)),
    "keypoint-detection": TaskFacts(("image",), ("keypoints",)),
    "image-feature-extraction": TaskFacts(("image",), ("embedding",)),
    "image-to-text": TaskFacts(("image",), ("string",)),
    "image-text-to-text": TaskFacts(("image", "string"), ("string",)),
    "visual-question-answering": TaskFacts(("image", "string"), ("string",)),
    "document-question-answering": TaskFacts(("image", "string"), ("string",)),
    "text-to-image": TaskFacts(("string",), ("image",)),
    "image-to-image": TaskFacts(("image",), ("image",)),
    "unconditional-image-generation": TaskFacts((), ("image",)),
    "image-to-video": TaskFacts(("image",), ("video",)),
    "text-to-video": TaskFacts(("string",), ("video",)),
    "video-classification": TaskFacts(("video",), ("string",), _SUPERVISED),
    "video-text-to-text": TaskFacts(("video", "string"), ("string",)),
    "text-to-3d": TaskFacts(("string",), ("3d-model",)),
    "image-to-3d": TaskFacts(("image",), ("3d-model",)),
    # tabular, time series, control
    "tabular-classification": TaskFacts(("tabular",), ("string",), _SUPERVISED),
    "tabular-regression": TaskFacts(("tabular",), ("number",), _SUPERVISED),
    "time-series-forecasting": TaskFacts(("time-series",), ("time-series",)),
    "reinforcement-learning": TaskFacts(("observation",), ("action",), "reinforcement-learning"),
}


def task_facts(pipeline_tag: str | None) -> TaskFacts | None:
    return _TASKS.get(pipeline_tag.strip().lower()) if pipeline_tag else None
