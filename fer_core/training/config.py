"""What determines a training run: `TrainConfig`, saved as the run's config.json, and the option
lists the CLI parser and the Train page offer (both derive their choices from `TrainConfig.OPTIONS`).

Light on purpose (no numpy, no Keras at import): the CLI builds its parser from it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from fer_core.errors import FerError

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
LR_SCHEDULES = ("constant", "cosine", "linear")
CLASS_WEIGHTING = ("none", "balanced")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; saved as the run's config.json.

    Defaults are the paper's protocol: [0,1] scaling (inside the model), flip/rotation/zoom
    augmentation, Adam 1e-3, batch 64, categorical cross-entropy, early stopping on validation
    loss, up to 50 epochs, the best validation accuracy checkpointed. A config validates itself
    when made, so one that exists can train.
    """

    # The settings with a fixed set of values, for the CLI's choices and the Train page's boxes.
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "optimizer": OPTIMIZERS,
        "lr_schedule": LR_SCHEDULES,
        "class_weights": CLASS_WEIGHTING,
        "precision": PRECISIONS,
    }

    model: str = "cnn"
    model_params: dict = field(default_factory=dict)
    data: str = ""
    seed: int = 1337
    epochs: int = 50  # a cap when `minutes` is set
    minutes: float | None = None  # time budget: the run ends by itself once it is spent
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    patience: int = 10  # epochs without a better validation loss before stopping; 0 = never
    label_smoothing: float = 0.0
    class_weights: str = "none"
    # Augmentation (applied on the fly in the training graph; the saved model has none of it).
    flip: bool = True
    rotation_degrees: float = 10.0
    zoom: float = 0.1
    shift: float = 0.0  # fraction of the side, both axes
    erasing: float = 0.0  # probability of random erasing per image
    validation_split: float = 0.1  # the stratified slice of Training that selects the best epoch (see prepare_data)
    limit: int | None = None  # first N images per split, for quick trials
    precision: str = "auto"  # resolved by resolve_precision before config.json is written
    # Devices to train on: a count, or "all" the backend sees; several train data-parallel on JAX
    # (fer_core.training.devices). Resolved to a count before config.json is written, with
    # `layout` recording where the run trained: backend, devices, their kind, the mesh.
    devices: int | str = 1
    layout: dict | None = None
    # Warm start: the saved model whose weights this run starts from (optimizer and schedule fresh),
    # as written by describe_init: its path, model, reported metrics and cumulative epochs/minutes.
    init_from: dict | None = None
    # Distillation: the saved models (the teachers) whose mean flip-TTA probabilities on each
    # training image are mixed into its one-hot target, as written by describe_teachers:
    # {"weight": share of the teachers' probabilities in the target, "tta": the views averaged,
    # "teachers": [{path, sha256, model, reported_accuracy, reported_split}, ...]}.
    distill_from: dict | None = None
    # The dataset's class names in label order, recorded when the data is loaded (None: not yet,
    # or a run from before classes were recorded, which are FER2013's).
    classes: list | None = None
    # Transfer: the first N epochs train only the new head, the warm-start body frozen; after them
    # every layer trains at FINE_TUNE_RATE times the schedule's rate.
    freeze_epochs: int = 0
    # Who each image shows (the first group of this regex on file names, e.g. a CK+ subject):
    # held-out and selection slices then never split one person's faces.
    group_by: str | None = None
    # A dataset of one pool (no test split, not FER2013) gets this share held out, seeded,
    # stratified and group-aware, to report on; recorded here, its files in held_out.txt.
    held_out: float | None = None
    # Photos that are not face crops: each image's largest face is found (the default detector),
    # levelled and cropped before training; images without one are skipped, named in the report.
    detect_faces: bool = False

    @property
    def class_names(self) -> tuple[str, ...]:
        from fer_core import CLASS_NAMES

        return tuple(self.classes) if self.classes else CLASS_NAMES

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse settings that cannot train, each with a one-line reason."""
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1. Received: epochs={self.epochs}"),
            (
                self.minutes is None or (self.minutes > 0 and math.isfinite(self.minutes)),
                f"minutes must be > 0. Received: minutes={self.minutes}",
            ),
            (
                isinstance(self.batch_size, int) and self.batch_size >= 1,
                f"batch size must be >= 1. Received: batch_size={self.batch_size}",
            ),
            (
                self.learning_rate > 0 and math.isfinite(self.learning_rate),
                f"learning rate must be > 0. Received: learning_rate={self.learning_rate}",
            ),
            (
                self.devices == "all" or (isinstance(self.devices, int) and self.devices >= 1),
                f"devices must be a count >= 1 or 'all'. Received: devices={self.devices}",
            ),
            (
                not (isinstance(self.devices, int) and self.devices >= 1 and isinstance(self.batch_size, int))
                or self.batch_size % self.devices == 0,
                f"batch size {self.batch_size} does not split evenly over {self.devices} devices: "
                f"give a multiple of {self.devices}",
            ),
            (
                isinstance(self.freeze_epochs, int) and 0 <= self.freeze_epochs < max(self.epochs, 1),
                f"freeze epochs must be 0 or more and fewer than epochs. Received: freeze_epochs={self.freeze_epochs}",
            ),
            (
                not self.freeze_epochs or self.init_from is not None,
                "--freeze-epochs freezes a warm-started body: give --init MODEL too",
            ),
            (
                self.classes is None or (isinstance(self.classes, list) and len(self.classes) >= 2),
                f"a model needs two or more classes. Received: classes={self.classes}",
            ),
            (self.weight_decay >= 0, f"weight decay must be >= 0. Received: weight_decay={self.weight_decay}"),
            (
                0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0,
                f"warmup epochs must be < epochs. Received: warmup_epochs={self.warmup_epochs}",
            ),
            (self.patience >= 0, f"patience must be >= 0. Received: patience={self.patience}"),
            (
                0 <= self.label_smoothing < 1,
                f"label smoothing must be in [0, 1). Received: label_smoothing={self.label_smoothing}",
            ),
            (
                0 <= self.rotation_degrees <= 180,
                f"rotation must be in [0, 180] degrees. Received: rotation_degrees={self.rotation_degrees}",
            ),
            (0 <= self.zoom < 1, f"zoom must be in [0, 1). Received: zoom={self.zoom}"),
            (0 <= self.shift < 1, f"shift must be in [0, 1). Received: shift={self.shift}"),
            (0 <= self.erasing <= 1, f"erasing must be a probability in [0, 1]. Received: erasing={self.erasing}"),
            (
                0 < self.validation_split < 1,
                f"validation split must be in (0, 1). Received: validation_split={self.validation_split}",
            ),
            (
                self.limit is None or self.limit >= 1,
                f"limit must be >= 1 image per split. Received: limit={self.limit}",
            ),
            (
                self.init_from is None or (isinstance(self.init_from, dict) and self.init_from.get("path")),
                f"init_from must name a saved model. Received: init_from={self.init_from}",
            ),
            (
                self.distill_from is None
                or (
                    isinstance(self.distill_from, dict)
                    and self.distill_from.get("teachers")
                    and all(isinstance(t, dict) and t.get("path") for t in self.distill_from["teachers"])
                ),
                f"distill_from must name saved teacher models. Received: distill_from={self.distill_from}",
            ),
            (
                self.distill_from is None
                or (
                    isinstance(self.distill_from, dict)
                    and isinstance(self.distill_from.get("weight"), (int, float))
                    and 0 < self.distill_from["weight"] <= 1
                ),
                "distillation weight must be in (0, 1]. Received: "
                f"weight={(self.distill_from or {}).get('weight') if isinstance(self.distill_from, dict) else None}",
            ),
        ]
        checks += [
            (
                getattr(self, key) in values,
                f"{key.replace('_', ' ')} must be one of {', '.join(values)}. Received: {key}={getattr(self, key)}",
            )
            for key, values in self.OPTIONS.items()
        ]
        for ok, message in checks:
            if not ok:
                raise FerError(message)
        from fer_core.models import check_model_name  # the names alone: Keras stays unloaded

        check_model_name(self.model)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FerError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)


def parse_params(items: list[str]) -> dict:
    """Model parameters given as KEY=VALUE (`--param`), each value read as JSON where it is JSON
    (`filters=[48,96,192]`, `width=96`), else kept as text."""
    import json

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FerError(f"--param takes KEY=VALUE. Received: {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params
