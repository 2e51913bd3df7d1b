"""Home's models: the default model and its choice, a table of each dataset's models (with the
ensemble where its record is current), and where each number was measured."""

from __future__ import annotations

import streamlit as st

from dashboard.shared import metrics_table
from fer_core.artifacts import saved_models
from fer_core.catalog import FER2013, default_model, default_reason, model_summary, models_by_dataset, set_default_model
from fer_core.paths import trained_dir

# "validation" is the slice of the training data a run holds out to pick its epoch (FER2013's own
# runs take it from Training; a dataset of one pool from that pool).
SELECTED_ON = {"validation": "a held-out slice of its training data"}


def _count(number) -> str:
    return f"{number:,}" if isinstance(number, int) else "?"


@st.cache_data(show_spinner=False, max_entries=4)
def ensemble_record(versions: tuple):
    """trained/ensemble.json if its members are the trained models as they are (their file
    versions are the cache key: hashing ~70 MB of models once, not on every visit)."""
    from fer_core.evaluation.ensemble import read_ensemble_record

    return read_ensemble_record()


def model_rows(members, default) -> list[dict]:
    rows = []
    for ref in members:
        summary = model_summary(ref, default.name)
        rows.append(
            {
                "model": ref.name + (" (default)" if summary["default"] else ""),
                "accuracy": summary["accuracy"],
                "flip TTA": summary["flip_accuracy"],
                "flip+zoom TTA": summary["flip_zoom_accuracy"],
                "macro-F1": summary["macro_f1"],
                "reported on": f"{summary['split'] or '?'} ({_count(summary['n'])} images)",
                "selected on": SELECTED_ON.get(
                    summary["selection_split"], summary["selection_split"] or "not recorded"
                ),
            }
        )
    return rows


def said_once(rows, column: str) -> str:
    """A column's value said once where the rows share it, else each row's."""
    values = {row[column] for row in rows}
    return values.pop() if len(values) == 1 else "; ".join(f"{row['model']}: {row[column]}" for row in rows)


def ensemble_row(record) -> dict:
    return {
        "model": f"ensemble of all {len(record['members'])}",
        "accuracy": record["accuracy"],
        "flip TTA": record["with_tta"]["accuracy"],
        "flip+zoom TTA": record["with_flip_zoom"]["accuracy"],
        "macro-F1": record["macro_f1"],
        "reported on": f"{record['split']} ({_count(record['n'])} images)",
        "selected on": "each member's own",
    }


def models_section() -> None:
    """The Models section, from the trained models' records."""
    st.subheader("Models")
    trained = saved_models()
    if trained:
        default = default_model(trained)
        names = [ref.name for ref in trained]
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        chosen = c1.selectbox("Default model", names, index=names.index(default.name), help=default_reason(default))
        if c2.button("Use as default", disabled=chosen == default.name):
            set_default_model(chosen)
            st.rerun()
        st.caption(
            f"{default.name} answers wherever no model is named (Predict, Video, Live, the service): {default_reason(default)}."
        )
        record, why_not = ensemble_record(tuple((ref.name, ref.version) for ref in trained))
        # One table per dataset: accuracies measured on different data never compare.
        for tag, members in models_by_dataset(trained).items():
            st.markdown(f"**Measured on {tag.title}**")
            rows = model_rows(members, default)
            in_group = record is not None and {m["name"] for m in record["members"]} <= {ref.name for ref in members}
            if in_group:
                rows.append(ensemble_row(record))
            # Where each number was measured and what picked each model's epoch go under the table, said
            # once where the models share them: as two more columns they scrolled sideways at 800 px.
            numbers = ("model", "accuracy", "flip TTA", "flip+zoom TTA", "macro-F1")
            metrics_table([{k: row[k] for k in numbers} for row in rows], four_decimals=numbers[1:])
            models = rows[: len(members)]
            ensemble = " (the ensemble: each member's own)" if in_group else ""
            st.caption(
                f"Accuracy and macro-F1 on {said_once(models, 'reported on')}, without test-time augmentation and with it. "
                f"Each model's epoch selected on {said_once(models, 'selected on')}{ensemble}."
            )
            if in_group:
                st.caption(
                    f"The ensemble averages its members' probabilities; reproduce it with `{record['command']}`."
                )
            elif tag.name == FER2013 and len(members) > 1:
                st.caption(
                    f"Ensemble of the FER2013 models: {why_not}; measure it with `fer-core ensemble --data DATA`."
                )
        st.caption(
            "Each model's best epoch was picked on its selection split; accuracy is reported on another "
            "split that played no part in training or selection. trained/RESULTS.md compares them with the paper."
        )
    else:
        st.info(f"No trained models in {trained_dir()} yet: train one on the Train page and promote it.")
