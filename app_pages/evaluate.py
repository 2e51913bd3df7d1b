"""Evaluate & compare: metrics from fer_core's one evaluation routine, cached; interactive views."""

import threading
import time
from collections import OrderedDict

import pandas as pd
import streamlit as st

from fer_core.artifacts import model_classes
from fer_core.catalog import dataset_name, model_dataset
from fer_core.data import default_evaluation_split
from fer_core.errors import FerError
from fer_core.evaluation import ensemble_of, selection_warning
from fer_core.evaluation.evaluate import unseen_by
from fer_core.evaluation.paper import MEASURED_SOURCE, comparison_rows
from fer_core.words import sentence
from dashboard.gallery import cell_gallery
from dashboard.charts import confusion_matrix_figure, history_curves, reliability_figure
from dashboard.shared import by_accuracy, dataset_or_stop, load_model, metrics_table, models_or_stop, tta_picker

ENSEMBLE = "ensemble of the selected"
MAX_EVALUATIONS = 32  # kept in this server, the least recently shown dropped first

st.title("Evaluate & compare")
dataset = dataset_or_stop()
refs = {ref.name: ref for ref in models_or_stop()}
# The trained models measured on this dataset by default (so the ensemble row is theirs), best
# first; the others and finished runs are there to pick.
here = dataset_name(dataset)
trained = [
    name
    for name in by_accuracy(refs.values())
    if not name.startswith("run ") and model_dataset(refs[name]).name == here
] or by_accuracy(refs.values())[:1]

selected = st.multiselect("Models", list(refs), default=trained)
c1, c2 = st.columns(2)
splits = dataset.split_names
split = c1.selectbox("Split", splits, index=splits.index(default_evaluation_split(dataset) or splits[0]))
tta = tta_picker(c2)
if not selected:
    st.info("Select at least one model.")
    st.stop()


@st.cache_resource(show_spinner=False)
def _evaluations() -> tuple[OrderedDict, threading.Lock]:
    """This server's evaluations, shared by its sessions: one per model file version, dataset,
    split and TTA setting (the probabilities are also kept once per machine, by fer_core's disk
    cache, keyed by the file's content). Not st.cache_data: an evaluation drives the page's
    progress bar, and Streamlit forbids updating an element from inside a cached function."""
    return OrderedDict(), threading.Lock()


def _key(label: str) -> tuple:
    ref = refs[label]
    return (str(ref.model_file), ref.version, dataset.root, len(dataset), split, tta, classes_of[label])


def evaluate_one(label: str, number: int, bar):
    """One model's evaluation, from this server's store or measured now with its faces counted
    on `bar` (a Cancel click reruns the page, which ends the measuring at the next count)."""
    store, lock = _evaluations()
    key = _key(label)
    with lock:
        if key in store:
            store.move_to_end(key)
            return store[key]
    ref, started = refs[label], time.monotonic()

    def progress(done: int, total: int) -> None:
        text = f"Evaluating {label} ({number + 1} of {len(selected)}) on {split}: {done:,} of {total:,} faces"
        elapsed = time.monotonic() - started
        if 0 < done < total and elapsed > 2:
            # The models after this one counted at this one's pace: a rough whole, said as one.
            faces_left = (total - done) + total * (len(selected) - number - 1)
            text += f", about {elapsed / done * faces_left:.0f} s left in all"
        bar.progress((number + done / max(total, 1)) / len(selected), text=text)

    from fer_core.evaluation import evaluate_model_file

    # The model loads before its first faces are counted: say which one it is meanwhile.
    bar.progress(number / len(selected), text=f"Evaluating {label} ({number + 1} of {len(selected)}) on {split}...")
    view, view_split, _note = unseen_by(ref, dataset, split)  # never the faces it trained on
    result = evaluate_model_file(
        ref.model_file,
        view,
        split=view_split,
        tta=tta,
        name=ref.name,
        load=lambda _file: load_model(ref),
        classes=classes_of[label],
        progress=progress,
    )
    with lock:
        store[key] = result
        while len(store) > MAX_EVALUATIONS:
            store.popitem(last=False)
    return result


for label in selected:
    warning = selection_warning(label, refs[label].metrics, dataset, split)
    try:
        note = unseen_by(refs[label], dataset, split)[2]
    except FerError as exc:
        st.error(sentence(exc))
        st.stop()
    if note:
        st.info(note + "; the table's other rows are on the split chosen above.")
    elif warning:
        st.warning(warning)

# One model at a time, with its faces counted: a cold ResNet50 with TTA takes minutes on 2 cores.
# A Cancel leaves the page with the models measured so far, until the choice changes or
# "Evaluate" is pressed.
settings = (tuple(selected), split, tta, dataset.root)
store, _lock = _evaluations()
try:  # each model's classes read once a run: they come from its records on disk
    classes_of = {label: model_classes(refs[label]) for label in selected}
    pending = [label for label in selected if _key(label) not in store]
except FerError as exc:  # a model whose records cannot be read
    st.error(sentence(exc))
    st.stop()
cancel_slot = st.empty()  # the Cancel button, while there is something to cancel
if pending and st.session_state.get("evaluation_cancelled") != settings:
    if cancel_slot.button("Cancel", help="Stops measuring; the models measured so far stay shown"):
        st.session_state["evaluation_cancelled"] = settings
        st.rerun()
if pending and st.session_state.get("evaluation_cancelled") == settings:
    st.info(
        f"Evaluation cancelled: {', '.join(pending)} not measured. Press Evaluate to measure "
        f"{'it' if len(pending) == 1 else 'them'}, or change the models, split or TTA."
    )
    if st.button("Evaluate"):
        st.session_state.pop("evaluation_cancelled", None)
        st.rerun()
    selected = [label for label in selected if label not in pending]
    if not selected:
        st.stop()
else:
    st.session_state.pop("evaluation_cancelled", None)

results, bar = {}, st.progress(0.0)
for number, label in enumerate(selected):
    try:
        results[label] = evaluate_one(label, number, bar)
    except FerError as exc:
        st.error(sentence(exc))
        st.stop()
bar.empty()
cancel_slot.empty()
for label, result in results.items():
    if result.metrics.get("left_out_classes"):
        st.warning(
            f"{label} does not know {', '.join(result.metrics['left_out_classes'])}: those faces were left out "
            "of its numbers"
        )
    if result.metrics.get("matched_by_synonym"):
        pairs = ", ".join(f"{data} as {model}" for data, model in result.metrics["matched_by_synonym"].items())
        st.caption(f"{label}: the data's classes matched by synonym: {pairs}; the others by name.")
same_classes = len({tuple(r.metrics["classes"]) for r in results.values()}) == 1
same_images = len({(r.metrics["split"], r.metrics["n"]) for r in results.values()}) == 1
if len(selected) > 1 and not same_classes:
    st.info("No ensemble row: the chosen models predict different classes.")
elif len(selected) > 1 and not same_images:
    st.info("No ensemble row: the chosen models were measured on different images (a model's own held-out ones).")
elif len(selected) > 1:
    # The members' cached probabilities, averaged: the same numbers as `fer-core evaluate
    # --model a,b,c` without predicting every image again.
    results[ENSEMBLE] = ensemble_of(list(results.values()), names=selected)

# ---- comparison with the paper
st.subheader("Comparison")
epochs = {label: len(refs[label].history) or None for label in selected}
rows = comparison_rows(results, epochs)
# Two tables of five and four columns rather than one of seven: one with a source and a split
# column scrolled sideways at 800 px. The split and the source go in the captions.
measured = [row for row in rows if row["source"] == MEASURED_SOURCE]
first = next(iter(results.values())).metrics
st.caption(f"Measured here on {measured[0]['split']} ({first['n']:,} images)")
metrics_table(
    [{k: row[k] for k in ("model", "accuracy", "macro-F1", "loss", "epochs")} for row in measured],
    four_decimals=("accuracy", "macro-F1", "loss"),
)
st.caption("The paper's Table 4, as reported (its test split not named, no macro-F1)")
metrics_table(
    [{k: row[k] for k in ("model", "accuracy", "loss", "epochs")} for row in rows if row["source"] != MEASURED_SOURCE],
    four_decimals=("accuracy", "loss"),
)
st.caption(
    "The paper's numbers are as reported; its per-class tables are at chance level, which a shuffled "
    "evaluation order produces. Ours are computed in the dataset's fixed order."
)

focus = st.selectbox("Details for", list(results), index=0)  # the best model (first by accuracy)
chosen = results[focus]
metrics = chosen.metrics

# ---- confusion matrix (click a cell to see those faces)
st.subheader("Confusion matrix")
normalised = st.radio("Values", ["counts", "row-normalised"], horizontal=True) == "row-normalised"
# A click (read from the chart's state before it is drawn again) picks the gallery's cell, once:
# the pickers under the matrix can move on from it. The gallery's cell is outlined.
points = (st.session_state.get(f"cm-{focus}") or {}).get("selection", {}).get("points", [])
clicked = (points[0]["y"], points[0]["x"]) if points else None
if clicked and clicked != st.session_state.get("clicked_cell"):
    st.session_state["true_class"], st.session_state["predicted_class"] = clicked
st.session_state["clicked_cell"] = clicked
matrix_classes = list(metrics["classes"])
chosen_cell = (
    st.session_state.get("true_class") or matrix_classes[0],
    st.session_state.get("predicted_class") or matrix_classes[0],
)
figure = confusion_matrix_figure(metrics, normalised, chosen=chosen_cell)
st.plotly_chart(figure, on_select="rerun", selection_mode="points", key=f"cm-{focus}")

cell_gallery(dataset, chosen)  # the chosen cell's faces, under the matrix

# ---- per class
st.subheader("Per class")
st.dataframe(pd.DataFrame(metrics["per_class"]).T.reset_index(names="class"), hide_index=True)
st.write(
    f"Accuracy **{metrics['accuracy']:.4f}**, macro-F1 **{metrics['macro_f1']:.4f}**, "
    f"weighted-F1 {metrics['weighted_f1']:.4f}, loss {metrics['loss']:.4f} on {metrics['n']:,} images."
)

# ---- curves
history = refs[focus].history if focus != ENSEMBLE else []
if history:
    st.subheader("Training curves")
    st.plotly_chart(history_curves(history), width="stretch")

# ---- calibration
st.subheader("Reliability diagram")
st.plotly_chart(reliability_figure(metrics["calibration"]), width="stretch")
st.write(f"Expected calibration error: {metrics['calibration']['ece']:.4f}")

# ---- cross-validations (fer-core crossval), with their suspect labels
from dashboard.crossval_views import crossval_results  # noqa: E402

crossval_results()
