"""Home: what FER Studio does, the available models, where the data is. Imports nothing heavy."""

import streamlit as st

from fer_core.artifacts import saved_models
from fer_core.paths import trained_dir
from dashboard.shared import data_path, metrics_table


def _count(number) -> str:
    return f"{number:,}" if isinstance(number, int) else "?"


st.title("FER Studio")
st.write(
    "A workbench for facial-expression recognition on FER2013 (48x48 grayscale faces, 7 emotions): "
    "browse the data, train the paper's three models and our own vgg_fer, compare them honestly, "
    "see where they look, and classify your own faces."
)


@st.cache_data(show_spinner=False, max_entries=4)
def ensemble_record(versions: tuple):
    """trained/ensemble.json if its members are the trained models as they are (their file
    versions are the cache key: hashing ~70 MB of models once, not on every visit)."""
    from fer_core.evaluation.ensemble import read_ensemble_record

    return read_ensemble_record()


st.subheader("Models")
trained = saved_models()
if trained:
    rows = []
    for ref in trained:
        metrics = ref.metrics
        rows.append(
            {
                "model": ref.name,
                "accuracy": metrics.get("accuracy"),
                "flip TTA": (metrics.get("with_tta") or {}).get("accuracy"),
                "flip+zoom TTA": (metrics.get("with_flip_zoom") or {}).get("accuracy"),
                "macro-F1": metrics.get("macro_f1"),
                "reported on": f"{metrics.get('split', '?')} ({_count(metrics.get('n'))} images)",
                "selected on": {"validation": "a held-out slice of Training"}.get(
                    metrics.get("selection_split"), metrics.get("selection_split", "not recorded")
                ),
            }
        )
    record, why_not = ensemble_record(tuple((ref.name, ref.version) for ref in trained))
    if record is not None:
        rows.append(
            {
                "model": f"ensemble of all {len(record['members'])}",
                "accuracy": record["accuracy"],
                "flip TTA": record["with_tta"]["accuracy"],
                "flip+zoom TTA": record["with_flip_zoom"]["accuracy"],
                "macro-F1": record["macro_f1"],
                "reported on": f"{record['split']} ({_count(record['n'])} images)",
                "selected on": "each member's own",
            }
        )
    # Where each number was measured and what picked each model's epoch go under the table, said
    # once where the models share them: as two more columns they scrolled sideways at 800 px.
    numbers = ("model", "accuracy", "flip TTA", "flip+zoom TTA", "macro-F1")
    metrics_table([{k: row[k] for k in numbers} for row in rows], four_decimals=numbers[1:])
    models = rows[: len(trained)]

    def said(column: str) -> str:
        values = {row[column] for row in models}
        return values.pop() if len(values) == 1 else "; ".join(f"{row['model']}: {row[column]}" for row in models)

    st.caption(f"Accuracy and macro-F1 on {said('reported on')}, without test-time augmentation and with it.")
    ensemble = " (the ensemble: each member's own)" if record is not None else ""
    st.caption(f"Each model's epoch selected on {said('selected on')}{ensemble}.")
    if record is not None:
        st.caption(f"The ensemble averages its members' probabilities; reproduce it with `{record['command']}`.")
    elif len(trained) > 1:
        st.caption(f"Ensemble of all trained models: {why_not}; measure it with `fer-core ensemble --data DATA`.")
    st.caption(
        "Each model's best epoch was picked on its selection split; accuracy is reported on another "
        "split that played no part in training or selection. trained/RESULTS.md compares them with the paper."
    )
else:
    st.info(f"No trained models in {trained_dir()} yet: train one on the Train page and promote it.")

st.subheader("Data")
path = data_path()
st.write(f"Dataset: `{path}`" if path else "No dataset configured: set its path in the sidebar or FER_DATA.")

st.subheader("Pages")
# One a line: a link label is one line and cut where it does not fit (columns cut them at 800 px).
for page, label in (
    ("app_pages/dataset.py", "Dataset: distribution, samples, mean faces"),
    ("app_pages/train.py", "Train: launch and watch runs"),
    ("app_pages/evaluate.py", "Evaluate & compare: confusion matrices, curves"),
    ("app_pages/explain.py", "Explain: Grad-CAM and attention maps"),
    ("app_pages/predict.py", "Predict: classify uploaded faces"),
    ("app_pages/video.py", "Video: the faces of a video file over time"),
    ("app_pages/live.py", "Live: your webcam, classified"),
):
    st.page_link(page, label=label)
