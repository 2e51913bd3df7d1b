"""What each trained model was measured on, and which model is the default.

Accuracies measured on different datasets never compare: a model's number belongs to its dataset
(`DatasetTag`: name, classes, fingerprint, split), models are listed per dataset
(`models_by_dataset`), and the default model (Predict, Video, Live, Explain, `Recognizer()`,
`fer-core predict/video`, the service) is a recorded choice (`set_default_model`, kept in
`trained/default.json`), else the best model measured on FER2013's reported split, never the best
accuracy of any dataset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fer_core import CLASS_NAMES, FER_SPLITS
from fer_core.artifacts import ModelRef, list_trained, model_classes, resolve_model, saved_models
from fer_core.errors import FerError
from fer_core.fileio import read_json, write_json_atomic
from fer_core.paths import trained_dir

DEFAULT_FILE = "default.json"
FER2013 = "FER2013"


@dataclass(frozen=True)
class DatasetTag:
    """The dataset a model's reported number was measured on."""

    name: str
    classes: tuple[str, ...]
    split: str
    fingerprint: str = ""  # a hash of the dataset's file list and labels; "" where not recorded

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """What makes two models' numbers comparable: the same dataset, with the same classes."""
        return self.name, self.classes

    @property
    def title(self) -> str:
        return f"{self.name} ({', '.join(self.classes)})" if self.name != FER2013 else FER2013

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes), "split": self.split, "fingerprint": self.fingerprint}


def dataset_name(dataset) -> str:
    """FER2013 for FER2013 (its seven classes and its splits), else the dataset's folder or file name."""
    if dataset.is_fer2013 and set(dataset.split_names) & set(FER_SPLITS):
        return FER2013
    return Path(str(dataset.root).rstrip("/")).name or "dataset"


def fingerprint(dataset) -> str:
    """A short hash of which images the dataset holds and how they are labelled (not their pixels:
    cheap, and a renamed, relabelled or regrouped dataset changes it)."""
    digest = hashlib.sha256("\n".join(dataset.classes).encode())
    for source, label, split in sorted(zip(dataset.sources.tolist(), dataset.labels.tolist(), dataset.splits.tolist())):
        digest.update(f"{source}\t{label}\t{split}\n".encode())
    return digest.hexdigest()[:16]


def dataset_tag(dataset, split: str) -> DatasetTag:
    """The record measure_best_model writes into metrics.json (`dataset`)."""
    return DatasetTag(dataset_name(dataset), tuple(dataset.classes), split, fingerprint(dataset))


def model_dataset(ref: ModelRef) -> DatasetTag:
    """The dataset a model's reported number was measured on: its metrics.json record, else
    inferred from its classes and split (FER2013's seven classes on a FER2013 split are FER2013;
    anything else is named by the data folder its config names)."""
    metrics = ref.metrics
    record = metrics.get("dataset")
    classes = model_classes(ref)
    if isinstance(record, dict) and isinstance(record.get("name"), str):
        return DatasetTag(
            record["name"],
            tuple(record.get("classes") or classes),
            str(record.get("split", "")),
            record.get("fingerprint", ""),
        )
    split = str(metrics.get("split") or "")
    if classes == CLASS_NAMES and split in FER_SPLITS:
        return DatasetTag(FER2013, classes, split)
    data = metrics.get("data") or ref.config.get("data") or ""
    return DatasetTag(Path(str(data).rstrip("/")).name or "unknown data", classes, split)


def models_by_dataset(refs: list[ModelRef]) -> dict[DatasetTag, list[ModelRef]]:
    """The models grouped by what their numbers were measured on (FER2013 first, then by name),
    each group best first. The group's tag is its first model's (split as that model's)."""
    groups: dict[tuple, tuple[DatasetTag, list[ModelRef]]] = {}
    for ref in refs:
        tag = model_dataset(ref)
        groups.setdefault(tag.key, (tag, []))[1].append(ref)
    ordered = sorted(groups.values(), key=lambda group: (group[0].name != FER2013, group[0].name, group[0].classes))
    return {tag: ranked(members) for tag, members in ordered}


def _accuracy(ref: ModelRef) -> float:
    accuracy = ref.metrics.get("accuracy")
    return float(accuracy) if isinstance(accuracy, (int, float)) else -1.0


def ranked(refs: list[ModelRef]) -> list[ModelRef]:
    """Best reported accuracy first (only meaningful within one dataset); ties by name."""
    return sorted(sorted(refs, key=lambda ref: ref.name), key=_accuracy, reverse=True)


def recorded_default() -> str | None:
    """The name `fer-core default NAME` recorded, if it still names a trained model."""
    name = read_json(trained_dir() / DEFAULT_FILE, {}).get("model")
    return name if isinstance(name, str) and name in list_trained() else None


def default_model(refs: list[ModelRef] | None = None) -> ModelRef | None:
    """The default model among `refs` (the trained models when None): the recorded choice where
    it is among them; else the best measured on a FER2013 test split (never on the split that
    selected its epoch); else, with no FER2013 model at all, the best of the dataset with most
    models. None without models."""
    refs = saved_models() if refs is None else list(refs)
    if not refs:
        return None
    chosen = recorded_default()
    for ref in refs:
        if ref.name == chosen and ref.folder is not None and ref.folder.parent == trained_dir():
            return ref
    tags = {ref.name: model_dataset(ref) for ref in refs}
    fer2013 = [
        ref
        for ref in refs
        if tags[ref.name].name == FER2013
        and tags[ref.name].split in FER_SPLITS[1:]
        and not ref.metrics.get("reported_on_selection_split")
    ]
    if fer2013:
        return ranked(fer2013)[0]
    groups = models_by_dataset(refs)
    return max(groups.values(), key=len)[0]


def default_reason(ref: ModelRef) -> str:
    """Why `ref` is the default, in words."""
    if recorded_default() == ref.name:
        return "chosen (fer-core default)"
    tag = model_dataset(ref)
    return f"the best measured on {tag.name}'s {tag.split or 'reported split'}"


def set_default_model(name: str | None) -> ModelRef | None:
    """Record `name` (a trained model) as the default; None clears the record.

    Raises:
        FerError: not a trained model's name.
    """
    path = trained_dir() / DEFAULT_FILE
    if name is None:
        path.unlink(missing_ok=True)
        return None
    if name not in list_trained():
        available = ", ".join(list_trained()) or "none yet"
        raise FerError(f"no trained model {name!r} to make the default (trained: {available})")
    write_json_atomic(path, {"model": name})
    return resolve_model(name)


def default_or_error() -> ModelRef:
    """The default model, or a one-line error saying how to get one."""
    ref = default_model()
    if ref is None:
        raise FerError("no trained models yet: name one (a trained model, a run folder or a .keras file)")
    return ref


def model_summary(ref: ModelRef, default_name: str | None = None) -> dict:
    """The one summary of a trained model that `fer-core models`, GET /v1/models and Home show:
    its numbers with the dataset and split they were measured on (never compared across
    datasets), what picked its epoch, and whether it answers when no model is named."""
    metrics = ref.metrics
    return {
        "name": ref.name,
        "family": ref.config.get("model"),
        "classes": list(model_classes(ref)),
        "dataset": model_dataset(ref).name,
        "split": metrics.get("split"),
        "n": metrics.get("n"),
        "accuracy": metrics.get("accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "flip_accuracy": (metrics.get("with_tta") or {}).get("accuracy"),
        "flip_zoom_accuracy": (metrics.get("with_flip_zoom") or {}).get("accuracy"),
        "selection_split": metrics.get("selection_split"),
        "default": default_name is not None and ref.name == default_name,
    }
