"""The one evaluation routine: metrics, confusion matrices, flip TTA and ensembles.

Predictions are always made in the dataset's fixed order and compared with labels in that same
order; the paper's chance-level per-class tables are what a shuffled evaluation order produces.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from fer_core.data import Dataset, default_evaluation_split, default_training_split
from fer_core.errors import FerError
from fer_core.evaluation.cache import cached_probabilities
from fer_core.evaluation.metrics import compute_metrics
from fer_core.evaluation.predict import predict_probabilities
from fer_core.evaluation.unseen import unseen_by
from fer_core.inference import tta_mode


def selection_warning(name: str, metrics: dict, dataset: Dataset, split: str | None) -> str | None:
    """Why an accuracy on `split` would be optimistic for this model, or None: the split trained it,
    or it picked the model's best epoch (as recorded in the model's metrics.json)."""
    if split is not None and split == default_training_split(dataset):
        return (
            f"{name} was trained on {split} (its best epoch picked on a slice of it): accuracy here says "
            f"little about new faces; evaluate on {default_evaluation_split(dataset) or 'a held-out split'}"
        )
    selected_on = metrics.get("selection_split")
    if split is not None and split == selected_on:
        return (
            f"{split} picked {name}'s best epoch, so its accuracy there is optimistic; "
            f"the honest figure is on {metrics.get('split', 'the reported split')}"
        )
    return None


@dataclass
class Evaluation:
    """Metrics plus the arrays they came from (same order as the evaluated split)."""

    metrics: dict
    probabilities: np.ndarray
    labels: np.ndarray
    sources: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def class_matches(model_classes, data_classes) -> dict[str, tuple[str, str]]:
    """Each data class the model knows: data name -> (model name, "name" or "synonym"). The same
    name first, then a synonym (anger/angry, sadness/sad, ...; `canonical_class`)."""
    from fer_core.data.dataset import canonical_class

    exact = set(model_classes)
    by_canonical = {canonical_class(name): name for name in model_classes}
    matches = {}
    for name in data_classes:
        if name in exact:
            matches[name] = (name, "name")
        elif canonical_class(name) in by_canonical:
            matches[name] = (by_canonical[canonical_class(name)], "synonym")
    return matches


def align_to_model(dataset: Dataset, classes) -> tuple[Dataset, list[str]]:
    """The dataset as a model with these classes sees it: the images of the classes it knows (by
    name or synonym, `class_matches`), labelled in the model's order; and the dataset's classes
    it left out.

    Raises:
        FerError: the model and the data share no class.
    """
    classes = tuple(classes)
    if classes == tuple(dataset.classes):
        return dataset, []
    index = {name: k for k, name in enumerate(classes)}
    matches = class_matches(classes, dataset.classes)
    mapping = np.array([index[matches[name][0]] if name in matches else -1 for name in dataset.classes])
    if (mapping < 0).all():
        raise FerError(
            f"the model's classes ({', '.join(classes)}) and the data's ({', '.join(dataset.classes)}) "
            "have none in common"
        )
    labels = mapping[dataset.labels]
    kept = dataset.subset(labels >= 0)
    aligned = dataclasses.replace(kept, labels=labels[labels >= 0], classes=classes)
    return aligned, [name for name in dataset.classes if name not in matches]


def evaluate(
    models: list,
    dataset: Dataset,
    split: str | None = None,
    tta=False,
    names: list[str] | None = None,
    classes=None,
) -> Evaluation:
    """Evaluate one model, or the ensemble (mean probabilities) of several, on one split, through
    the same fast classifier as predictions (so `fer-core bench`'s throughput is evaluation's).

    Args:
        models: loaded Keras models (or classifiers); more than one means their ensemble.
        dataset: the loaded dataset.
        split: a split name; None picks PrivateTest, else PublicTest, else test, else all images.
        tta: one of `inference.TTA_MODES` (True = "flip"): average each face over those views.
        names: how to name the models in the metrics.
        classes: the models' classes, when they may not be the dataset's: the images of classes
            they do not know are left out (said in the metrics' `left_out_classes`; those matched
            by synonym in `matched_by_synonym`).

    Returns:
        An `Evaluation` whose `metrics` is what `fer-core evaluate --json` prints.
    """
    if not models:
        raise FerError("no model to evaluate")
    split = dataset.split_name(split) if split is not None else default_evaluation_split(dataset)
    subset = dataset.split(split) if split is not None else dataset
    subset_classes = subset.classes
    subset, left_out = align_to_model(subset, classes) if classes is not None else (subset, [])
    per_model = [predict_probabilities(m, subset.images, tta=tta) for m in models]
    names = list(names) if names else [getattr(m, "name", "model") for m in models]
    return _with_left_out(
        left_out,
        _evaluation(
            np.mean(per_model, axis=0),
            subset.labels,
            subset.sources,
            split or "all",
            tta,
            names,
            dataset.root,
            subset.classes,
        ),
        class_matches(classes, subset_classes) if classes is not None else None,
    )


def _with_left_out(left_out: list[str], evaluation: Evaluation, matches: dict | None = None) -> Evaluation:
    """Say which of the data's classes the model left out and, where names differ, which it
    matched by synonym."""
    if left_out:
        evaluation.metrics["left_out_classes"] = left_out
    by_synonym = {data: model for data, (model, how) in (matches or {}).items() if how == "synonym"}
    if by_synonym:
        evaluation.metrics["matched_by_synonym"] = by_synonym
    return evaluation


def evaluate_model_file(
    model_file,
    dataset: Dataset,
    split: str | None = None,
    tta=False,
    name: str | None = None,
    load=None,
    classes=None,
    progress=None,
) -> Evaluation:
    """One saved model's evaluation, its probabilities kept on disk for next time.

    The dashboard evaluates whole splits (ResNet50 on PublicTest is over a minute on the 2-core
    CPU); the cache (`cached_probabilities`) makes that once per model file and machine instead of
    once per server.

    Args:
        model_file: a `.keras` file.
        load: how to load it when needed (default `fer_core.artifacts.load_model`).
        classes: the model's classes (see `evaluate`).
        progress: `progress(faces done, faces)` while the faces are classified (see
            `predict_probabilities`).
    """
    import os

    split = dataset.split_name(split) if split is not None else default_evaluation_split(dataset)
    subset = dataset.split(split) if split is not None else dataset
    subset_classes = subset.classes
    subset, left_out = align_to_model(subset, classes) if classes is not None else (subset, [])
    probabilities = cached_probabilities(
        model_file, subset.images, subset.labels, tta=tta, load=load, progress=progress
    )
    names = [name] if name else [os.path.splitext(os.path.basename(str(model_file)))[0]]
    return _with_left_out(
        left_out,
        _evaluation(
            probabilities, subset.labels, subset.sources, split or "all", tta, names, dataset.root, subset.classes
        ),
        class_matches(classes, subset_classes) if classes is not None else None,
    )


def ensemble_refusal(evaluations: list[Evaluation]) -> str | None:
    """Why these evaluations cannot be averaged into an ensemble's, or None: its members must
    predict the same classes and have been measured on the same images with the same TTA."""
    first = evaluations[0]
    for other in evaluations[1:]:
        if other.metrics.get("classes") != first.metrics.get("classes"):
            return "an ensemble needs models with the same classes; these predict different ones"
        keys = ("split", "tta", "data", "n")
        if any(other.metrics.get(k) != first.metrics.get(k) for k in keys) or not np.array_equal(
            other.labels, first.labels
        ):
            return (
                "an ensemble needs its models measured on the same images with the same TTA setting "
                "(a model's own held-out images differ from another's)"
            )
    return None


def ensemble_of(evaluations: list[Evaluation], names: list[str] | None = None) -> Evaluation:
    """The ensemble of models already evaluated on the same images: their mean probabilities,
    exactly what `evaluate` computes for those models together, without predicting again.

    Raises:
        FerError: the evaluations are not of the same split, images and TTA setting.
    """
    if not evaluations:
        raise FerError("no model to evaluate")
    refusal = ensemble_refusal(evaluations)
    if refusal:
        raise FerError(refusal)
    first = evaluations[0]
    names = list(names) if names else [n for e in evaluations for n in e.metrics.get("models", [])]
    probabilities = np.mean([e.probabilities for e in evaluations], axis=0)
    return _evaluation(
        probabilities,
        first.labels,
        first.sources,
        first.metrics["split"],
        first.metrics["tta"],
        names,
        first.metrics.get("data"),
        first.metrics.get("classes"),
    )


def _evaluation(probabilities, labels, sources, split, tta, names, data, classes=None) -> Evaluation:
    metrics = compute_metrics(labels, probabilities, classes)
    metrics = {
        "accuracy": metrics.pop("accuracy"),
        "macro_f1": metrics.pop("macro_f1"),
        "n": metrics.pop("n"),
        "split": split,
        **metrics,
        "tta": tta_mode(tta),
        "models": names,
        "data": data,
    }
    return Evaluation(metrics, probabilities.astype(np.float32), labels.copy(), sources.copy())


def zero_shot(dataset: Dataset, refs: list, progress=None) -> list[dict]:
    """Each model (ModelRefs of other datasets) on every image of `dataset` whose class it knows
    by name or synonym, as trained elsewhere: the baseline a transfer to this dataset must beat.
    Models that share no class with the data are left out.

    Returns:
        A row per model: model, its dataset, accuracy, macro-F1, images, the data's classes it
        knows (matched by synonym named), those it left out.
    """
    from fer_core.artifacts import model_classes
    from fer_core.catalog import model_dataset

    rows = []
    for ref in refs:
        classes = model_classes(ref)
        matches = class_matches(classes, dataset.classes)
        if not matches:
            continue
        try:  # never on faces it learned, should the data hold some (a copy of FER2013's)
            view, split, _note = unseen_by(ref, dataset, None)
        except FerError:
            continue
        metrics = evaluate_model_file(ref.model_file, view, split=split, name=ref.name, classes=classes).metrics
        rows.append(
            {
                "model": ref.name,
                "trained on": model_dataset(ref).name,
                "accuracy": metrics["accuracy"],
                "macro-F1": metrics["macro_f1"],
                "images": metrics["n"],
                "classes known": ", ".join(
                    name if how == "name" else f"{name} (as {known})" for name, (known, how) in matches.items()
                ),
                "left out": ", ".join(metrics.get("left_out_classes", [])) or "none",
            }
        )
        if progress is not None:
            progress(len(rows), len(refs))
    return rows
