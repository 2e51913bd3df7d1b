"""Evaluate's measuring: each chosen model evaluated once per server (its file's version, the
dataset, split, TTA and its classes), one at a time with its faces counted on a progress bar, and
a Cancel that keeps the models measured so far shown."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import streamlit as st

from fer_core.artifacts import model_classes
from fer_core.errors import FerError
from fer_core.evaluation.unseen import unseen_by
from dashboard.text import said
from dashboard.shared import load_model

MAX_EVALUATIONS = 32  # kept in this server, the least recently shown dropped first


@st.cache_resource(show_spinner=False)
def _evaluations() -> tuple[OrderedDict, threading.Lock]:
    """This server's evaluations, shared by its sessions: one per model file version, dataset,
    split and TTA setting (the probabilities are also kept once per machine, by fer_core's disk
    cache, keyed by the file's content). Not st.cache_data: an evaluation drives the page's
    progress bar, and Streamlit forbids updating an element from inside a cached function."""
    return OrderedDict(), threading.Lock()


def evaluate_selected(refs: dict, selected: list[str], dataset, split: str, tta: str) -> dict:
    """label -> Evaluation of each chosen model (the page stops with an error box where one
    cannot be measured, or with the Cancel's note when nothing is left to show)."""
    try:  # each model's classes read once a run: they come from its records on disk
        classes_of = {label: model_classes(refs[label]) for label in selected}
    except FerError as exc:  # a model whose records cannot be read
        st.error(said(exc))
        st.stop()

    def key(label: str) -> tuple:
        ref = refs[label]
        return (str(ref.model_file), ref.version, dataset.root, len(dataset), split, tta, classes_of[label])

    def evaluate_one(label: str, number: int, count: int, bar):
        """One model's evaluation, from this server's store or measured now with its faces
        counted on `bar` (a Cancel click reruns the page, which ends the measuring at the next count)."""
        store, lock = _evaluations()
        with lock:
            if key(label) in store:
                store.move_to_end(key(label))
                return store[key(label)]
        ref, started = refs[label], time.monotonic()

        def progress(done: int, total: int) -> None:
            text = f"Evaluating {label} ({number + 1} of {count}) on {split}: {done:,} of {total:,} faces"
            elapsed = time.monotonic() - started
            if 0 < done < total and elapsed > 2:
                # The models after this one counted at this one's pace: a rough whole, said as one.
                faces_left = (total - done) + total * (count - number - 1)
                text += f", about {elapsed / done * faces_left:.0f} s left in all"
            bar.progress((number + done / max(total, 1)) / count, text=text)

        from fer_core.evaluation import evaluate_model_file

        # The model loads before its first faces are counted: say which one it is meanwhile.
        bar.progress(number / count, text=f"Evaluating {label} ({number + 1} of {count}) on {split}...")
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
            store[key(label)] = result
            while len(store) > MAX_EVALUATIONS:
                store.popitem(last=False)
        return result

    # One model at a time, with its faces counted: a cold ResNet50 with TTA takes minutes on 2
    # cores. A Cancel leaves the page with the models measured so far, until the choice changes
    # or "Evaluate" is pressed.
    settings = (tuple(selected), split, tta, dataset.root)
    store, _lock = _evaluations()
    pending = [label for label in selected if key(label) not in store]
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
            results[label] = evaluate_one(label, number, len(selected), bar)
        except FerError as exc:
            st.error(said(exc))
            st.stop()
    bar.empty()
    cancel_slot.empty()
    return results
