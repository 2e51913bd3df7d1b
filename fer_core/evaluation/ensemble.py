"""The ensemble of every trained model of the data's dataset and classes, as Home lists it beside its members: measured by
`fer-core ensemble --data DATA` into trained/ensemble.json, with each member's file hash, so a
record whose members have changed since is never shown as current."""

from __future__ import annotations

import os
from pathlib import Path

from fer_core.artifacts import list_trained, resolve_model
from fer_core.paths import trained_dir
from fer_core.errors import FerError
from fer_core.fileio import read_json, write_json_atomic

ENSEMBLE_FILE = "ensemble.json"
TTA_KEYS = {"none": None, "flip": "with_tta", "flip+zoom": "with_flip_zoom"}


def ensemble_file(root: str | os.PathLike | None = None) -> Path:
    return (Path(root) if root is not None else trained_dir()) / ENSEMBLE_FILE


def write_ensemble_record(dataset, split: str | None = None, root: str | os.PathLike | None = None) -> dict:
    """Evaluate the ensemble of all trained models (mean probabilities) on `split` without TTA,
    with flip and with flip+zoom TTA, and write trained/ensemble.json.

    Raises:
        FerError: fewer than two trained models, or a split the data does not have.
    """
    from fer_core.evaluation import ensemble_of, evaluate_model_file
    from fer_core.fileio import file_sha256

    from fer_core.catalog import dataset_name

    refs = _members(root, dataset.classes, dataset_name(dataset))
    names = [r.name for r in refs]
    if len(names) < 2:
        raise FerError(
            f"an ensemble needs two or more trained models of the data's classes; such models: {', '.join(names) or 'none'}"
        )
    from fer_core.evaluation.unseen import unseen_by

    dataset, split, _note = unseen_by(refs, dataset, split)  # less any face one of them learned
    record: dict = {}
    for mode, key in TTA_KEYS.items():
        members = [evaluate_model_file(r.model_file, dataset, split=split, tta=mode, name=r.name) for r in refs]
        metrics = ensemble_of(members, names=names).metrics
        if key is None:
            record = {k: metrics[k] for k in ("accuracy", "macro_f1", "loss", "split", "n", "data")}
        else:
            record[key] = {k: metrics[k] for k in ("accuracy", "macro_f1", "loss")}
    record["members"] = [{"name": r.name, "sha256": file_sha256(r.model_file)} for r in refs]
    record["classes"] = list(dataset.classes)
    record["dataset"] = dataset_name(dataset)
    record["command"] = f"fer-core ensemble --data {dataset.root} --split {record['split']}"
    write_json_atomic(ensemble_file(root), record)
    return record


def _members(root, classes, dataset: str | None = None) -> list:
    """The trained models (in `root`, default trained/) that predict `classes` and were measured
    on `dataset` (any, for a record from before datasets were recorded): an ensemble averages
    probabilities, so its members share their classes, and stays within one dataset's models."""
    from fer_core.artifacts import model_classes
    from fer_core.catalog import model_dataset

    names = list_trained() if root is None else sorted(p.parent.name for p in Path(root).glob("*/model.keras"))
    refs = [resolve_model(Path(root) / n if root is not None else n) for n in names if not n.startswith(".")]
    return [r for r in refs if model_classes(r) == tuple(classes) and dataset in (None, model_dataset(r).name)]


def read_ensemble_record(root: str | os.PathLike | None = None) -> tuple[dict | None, str | None]:
    """(the record, None) while its members are exactly the trained models as they are now;
    (None, why not) when it is missing or out of date."""
    from fer_core.fileio import file_sha256

    record = read_json(ensemble_file(root))
    if not isinstance(record, dict) or "members" not in record:
        return None, "not measured yet"
    from fer_core import CLASS_NAMES

    base = Path(root) if root is not None else trained_dir()
    current = sorted(r.name for r in _members(root, record.get("classes") or CLASS_NAMES, record.get("dataset")))
    recorded = {m.get("name"): m.get("sha256") for m in record["members"]}
    if sorted(recorded) != current:
        return None, "the trained models changed since it was measured"
    for name, digest in recorded.items():
        if file_sha256(base / name / "model.keras") != digest:
            return None, f"{name} was replaced since it was measured"
    return record, None
