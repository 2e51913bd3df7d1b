"""The paper's reported numbers (Sahi, Elgayar, Hikal 2024, Table 4), for side-by-side comparison.

Reported, not reproduced: its per-class tables are at chance level, the mark of metrics computed
on a shuffled evaluation order, and 79% is above the best published single models on FER2013.
"""

from fer_core.inference import tta_mode

PAPER_TABLE_4 = {
    "cnn": {"paper_name": "CNN", "accuracy": 0.7941, "loss": 0.5620, "epochs": 50},
    "resnet50": {"paper_name": "ResNet50", "accuracy": 0.7276, "loss": 0.7379, "epochs": 5},
    "attention_cnn": {"paper_name": "CNN + Attention", "accuracy": 0.5519, "loss": 1.2363, "epochs": None},
}

PAPER_SOURCE = "paper, Table 4 (reported)"
MEASURED_SOURCE = "FER Studio (measured)"


def _tta_suffix(tta) -> str:
    mode = tta_mode(tta)
    return "" if mode == "none" else f" +{mode} TTA"


def comparison_rows(results: dict, epochs: dict | None = None) -> list[dict]:
    """Our measured rows (label -> `Evaluation`; epochs trained where known) above the paper's
    reported ones, in the columns the Evaluate page shows: accuracy right after the model, so a
    narrow window shows it without scrolling the table."""
    epochs = epochs or {}
    rows = [
        {
            "model": label,
            "accuracy": result.metrics["accuracy"],
            "macro-F1": result.metrics["macro_f1"],
            "loss": result.metrics["loss"],
            "split": result.metrics["split"] + _tta_suffix(result.metrics.get("tta")),
            "source": MEASURED_SOURCE,
            "epochs": epochs.get(label),
        }
        for label, result in results.items()
    ]
    rows += [
        {
            "model": row["paper_name"],
            "accuracy": row["accuracy"],
            "macro-F1": None,
            "loss": row["loss"],
            "split": "test (unspecified)",
            "source": PAPER_SOURCE,
            "epochs": row["epochs"],
        }
        for row in PAPER_TABLE_4.values()
    ]
    return rows
