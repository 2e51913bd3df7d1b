"""Evaluate & compare: metrics from fer_core's one evaluation routine, cached; interactive views."""

import pandas as pd
import streamlit as st

from fer_core.catalog import dataset_name, model_dataset
from fer_core.data import default_evaluation_split
from fer_core.errors import FerError
from fer_core.evaluation import ensemble_of, ensemble_refusal, selection_warning
from fer_core.evaluation.unseen import unseen_by
from dashboard.text import said
from dashboard.evaluation_runs import evaluate_selected
from dashboard.comparison import comparison_section
from dashboard.gallery import confusion_section
from dashboard.charts import history_curves, reliability_figure
from dashboard.shared import by_accuracy, dataset_or_stop, models_or_stop, tta_picker

ENSEMBLE = "ensemble of the selected"

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


for label in selected:
    warning = selection_warning(label, refs[label].metrics, dataset, split)
    try:
        note = unseen_by(refs[label], dataset, split)[2]
    except FerError as exc:
        st.error(said(exc))
        st.stop()
    if note:
        st.info(note + "; the table's other rows are on the split chosen above.")
    elif warning:
        st.warning(warning)

results = evaluate_selected(refs, selected, dataset, split, tta)
selected = list(results)  # a Cancel leaves the models measured so far
for label, result in results.items():
    if result.metrics.get("left_out_classes"):
        st.warning(
            f"{label} does not know {', '.join(result.metrics['left_out_classes'])}: those faces were left out "
            "of its numbers"
        )
    if result.metrics.get("matched_by_synonym"):
        pairs = ", ".join(f"{data} as {model}" for data, model in result.metrics["matched_by_synonym"].items())
        st.caption(f"{label}: the data's classes matched by synonym: {pairs}; the others by name.")
refusal = ensemble_refusal(list(results.values())) if len(selected) > 1 else "one model"
if len(selected) > 1 and refusal:
    st.info(f"No ensemble row: {refusal}.")
elif len(selected) > 1:
    # The members' cached probabilities, averaged: the same numbers as `fer-core evaluate
    # --model a,b,c` without predicting every image again.
    results[ENSEMBLE] = ensemble_of(list(results.values()), names=selected)

comparison_section(results, refs, selected, here)

focus = st.selectbox("Details for", list(results), index=0)  # the best model (first by accuracy)
chosen = results[focus]
metrics = chosen.metrics

confusion_section(dataset, focus, chosen)

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
