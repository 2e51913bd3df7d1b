"""Small things the pages say and draw: counts with the right noun, messages as sentences, a
metrics table without "None", every face of a video on its own lane, the chosen confusion cell
outlined."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core import CLASS_NAMES
from fer_core.words import counted, sentence


def test_counts_take_the_singular_for_one():
    assert counted(1, "epoch") == "1 epoch" and counted(5, "epoch") == "5 epochs"
    assert counted(3589, "face") == "3,589 faces" and counted(2, "class", "classes") == "2 classes"


def test_messages_start_with_a_capital():
    assert sentence("dataset path does not exist: x") == "Dataset path does not exist: x"
    assert sentence(ValueError("no trained models yet")) == "No trained models yet"
    # A message that starts with a name keeps the name as written.
    for named in ("face.png: not an image", "trained/cnn exists", "cnn: no such model", "--epochs must be 1-10000"):
        assert sentence(named) == named
    assert sentence("") == ""


def test_a_metrics_table_shows_four_decimals_and_a_dash_for_what_is_not_known():
    from dashboard.shared import metrics_styler

    rows = [
        {"model": "cnn", "accuracy": 0.611, "macro-F1": 0.6102, "epochs": 50},
        {"model": "paper CNN", "accuracy": 0.7941, "macro-F1": None, "epochs": None},
    ]
    html = metrics_styler(rows, four_decimals=("accuracy", "macro-F1")).to_html()
    assert "0.6110" in html and "0.6102" in html and "0.7941" in html
    assert "None" not in html and "nan" not in html and "–" in html
    assert ">50<" in html  # a whole number stays whole
    data = metrics_styler(rows, four_decimals=("accuracy",)).data
    assert data["accuracy"].dtype == float  # a complete column sorts as numbers
    assert list(data["macro-F1"]) == ["0.6102", "–"] and list(data["epochs"]) == ["50", "–"]  # never "None"


def test_two_faces_with_the_same_emotion_at_the_same_time_both_show():
    from dashboard.charts import emotion_timeline

    times = [0.0, 0.2, 0.4]
    rows = pd.DataFrame(
        {
            "time": times * 2,
            "face": [1] * 3 + [2] * 3,
            "label": ["happy"] * 6,
            **{c: [1.0 if c == "happy" else 0.0] * 6 for c in CLASS_NAMES},
        }
    )
    figure = emotion_timeline(rows, title="t", classes=CLASS_NAMES)
    first, second = (np.asarray(trace.y, float) for trace in figure.data)
    happy = CLASS_NAMES.index("happy")
    assert np.all(np.abs(first - happy) < 0.5) and np.all(np.abs(second - happy) < 0.5)  # both in happy's row
    assert np.all(first != second)  # on lanes of their own
    assert list(figure.layout.yaxis.ticktext) == list(CLASS_NAMES)


def test_the_chosen_confusion_cell_is_outlined():
    from dashboard.charts import confusion_matrix_figure

    metrics = {"confusion_matrix": np.eye(7, dtype=int).tolist(), "classes": list(CLASS_NAMES)}
    plain = confusion_matrix_figure(metrics)
    chosen = confusion_matrix_figure(metrics, chosen=("sad", "happy"))
    assert not plain.layout.shapes
    [outline] = chosen.layout.shapes
    assert (outline.x0, outline.x1) == (CLASS_NAMES.index("happy") - 0.5, CLASS_NAMES.index("happy") + 0.5)
    assert (outline.y0, outline.y1) == (CLASS_NAMES.index("sad") - 0.5, CLASS_NAMES.index("sad") + 0.5)
