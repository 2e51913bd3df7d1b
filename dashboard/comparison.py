"""Evaluate's comparison: the models measured here in one table, and the paper's Table 4 beside
them where the dataset is the paper's (FER2013)."""

from __future__ import annotations

import streamlit as st

from dashboard.shared import metrics_table
from fer_core.catalog import FER2013
from fer_core.evaluation.paper import MEASURED_SOURCE, comparison_rows


def comparison_section(results: dict, refs: dict, selected: list[str], here: str) -> None:
    """`results`: label -> EvaluationResult (the ensemble's included); `here`: the dataset's name."""
    st.subheader("Comparison")
    epochs = {label: len(refs[label].history) or None for label in selected}
    rows = comparison_rows(results, epochs)
    # Two tables of five and four columns rather than one of seven: one with a source and a split
    # column scrolled sideways at 800 px. The split and the source go in the captions.
    measured = [row for row in rows if row["source"] == MEASURED_SOURCE]
    on = {row["model"]: f"{row['split']} ({results[row['model']].metrics['n']:,} images)" for row in measured}
    same = len(set(on.values())) == 1
    st.caption(
        f"Measured here on {next(iter(on.values()))}"
        if same
        else "Measured here: " + "; ".join(f"{label} on {where}" for label, where in on.items())
    )
    metrics_table(
        [{k: row[k] for k in ("model", "accuracy", "macro-F1", "loss", "epochs")} for row in measured],
        four_decimals=("accuracy", "macro-F1", "loss"),
    )
    if here == FER2013:  # the paper's numbers are FER2013's: beside another dataset's they compare nothing
        st.caption("The paper's Table 4, as reported (its test split not named, no macro-F1)")
        metrics_table(
            [
                {k: row[k] for k in ("model", "accuracy", "loss", "epochs")}
                for row in rows
                if row["source"] != MEASURED_SOURCE
            ],
            four_decimals=("accuracy", "loss"),
        )
        st.caption(
            "The paper's numbers are as reported; its per-class tables are at chance level, which a shuffled "
            "evaluation order produces. Ours are computed in the dataset's fixed order."
        )
