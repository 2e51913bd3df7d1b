"""The evaluation wing: the one evaluation routine and what is built on it.

Modules: `evaluate` (evaluate, evaluate_model_file, ensemble_of, ensemble_refusal, selection_warning), `predict`
(probabilities in input order), `metrics` (accuracy, F1, confusion, calibration), `cache` (a saved
model's probabilities kept on disk by content), `ensemble` (trained/ensemble.json), `paper` (its
Table 4 beside ours), `unseen` (the faces a model trained or selected on, recognised by their
pixels and left out), `label_review` (suspect labels from out-of-fold probabilities). This face
re-exports the routine; the others are imported by name.
"""

from fer_core.evaluation.cache import cached_probabilities, read_cached_probabilities
from fer_core.evaluation.evaluate import (
    Evaluation,
    ensemble_of,
    ensemble_refusal,
    evaluate,
    evaluate_model_file,
    selection_warning,
)
from fer_core.evaluation.metrics import CALIBRATION_BINS, calibration, compute_metrics
from fer_core.evaluation.predict import classifier_for, predict_probabilities

__all__ = [
    "CALIBRATION_BINS",
    "Evaluation",
    "cached_probabilities",
    "calibration",
    "classifier_for",
    "compute_metrics",
    "ensemble_of",
    "ensemble_refusal",
    "evaluate",
    "evaluate_model_file",
    "predict_probabilities",
    "read_cached_probabilities",
    "selection_warning",
]
