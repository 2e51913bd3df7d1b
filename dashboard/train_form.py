"""The Train page's launch settings: one widget per TrainConfig field, drawn from the field's type
and default, so the form cannot drift from the config it fills."""

from __future__ import annotations

import typing

import streamlit as st

from fer_core.errors import FerError
from fer_core.models import list_models
from fer_core.training.config import TrainConfig
from fer_core.training.devices import describe_training_devices, devices_text
from dashboard.text import said

# Fields where 0 means "none" (the config's None): no budget, every image.
ZERO_IS_NONE = ("minutes", "limit")
# (field, label, help, step): the form's fields in order, three a row.
MAIN_FIELDS = [
    ("model", "Model", None, None),
    (
        "minutes",
        "Time budget (minutes, 0 = none)",
        "The run ends by itself when the time is spent, keeping its best model; "
        "a cosine or linear schedule then decays over the budget",
        5.0,
    ),
    ("epochs", "Epochs", "A cap when a time budget is set", 1),
    ("limit", "Images per split (0 = all)", "Quick trials on the first N images of each split", 100),
    ("batch_size", "Batch size", None, 1),
    ("learning_rate", "Learning rate", None, 1e-4),
]
RECIPE_FIELDS = [
    ("lr_schedule", "LR schedule", None, None),
    ("patience", "Early-stopping patience (0 = off)", None, 1),
    ("label_smoothing", "Label smoothing", None, 0.05),
    ("class_weights", "Class weights", None, None),
    ("seed", "Seed", None, 1),
    ("precision", "Precision", "auto: mixed_bfloat16 on a GPU or a CPU with BF16 instructions, else float32", None),
    ("rotation_degrees", "Rotation (degrees)", None, 1.0),
    ("zoom", "Zoom", None, 0.05),
    ("shift", "Shift", None, 0.05),
    ("erasing", "Random erasing", None, 0.05),
    ("flip", "Horizontal flip", None, None),
]

START_FROM, FROZEN_EPOCHS = "start_from_choice", "frozen_epochs_choice"  # session state


def settings_form(dataset_path: str | None) -> dict:
    """The launch settings as TrainConfig keyword arguments (TrainConfig checks them). Plain
    widgets, not a form: the estimate under them follows every change before anything launches."""
    try:
        with st.spinner("Looking at the devices training can use..."):
            found = describe_training_devices()
    except FerError as exc:
        st.error(said(exc))
        found = {"backend": "?", "count": 1, "kind": "?", "processes": 1}
    with st.container(border=True):
        settings = _fields(MAIN_FIELDS)
        if found["count"] > 1:  # a choice only where the backend can train on several
            choices = ["all", *range(1, found["count"] + 1)]
            settings["devices"] = st.selectbox(
                "Devices",
                choices,
                index=0,
                help="Data-parallel training on several devices: each takes an equal share of every batch, "
                "so the batch size must be a multiple of their number",
            )
        settings |= _start_from(settings["model"])
        st.caption(f"Trains on {devices_text(found)}.")
        with st.expander("Recipe: schedule, regularisation, augmentation, precision (the paper's by default)"):
            settings |= _fields(RECIPE_FIELDS)
    from dashboard.dataset_store import chosen_subject_pattern

    group_by = chosen_subject_pattern(dataset_path)
    st.caption(
        f"Subjects: `{group_by}` (set on the Dataset page): no person on both sides of a split or fold."
        if group_by
        else "Subjects: none set (the Dataset page's subject pattern keeps each person on one side of a split)."
    )
    return {**settings, "data": dataset_path, "group_by": group_by}


def _fields(fields) -> dict:
    defaults, types = TrainConfig(), typing.get_type_hints(TrainConfig)
    options = {**TrainConfig.OPTIONS, "model": list_models()}
    values = {}
    for start in range(0, len(fields), 3):  # three columns a row: labels stay whole at 800 px
        for column, (name, label, help_text, step) in zip(st.columns(3), fields[start : start + 3]):
            default = getattr(defaults, name)
            if name in options:
                values[name] = column.selectbox(
                    label, options[name], index=options[name].index(default), help=help_text
                )
            elif types[name] is bool:
                values[name] = column.checkbox(label, value=default, help=help_text)
            else:
                number = float if float in typing.get_args(types[name]) or types[name] is float else int
                value = column.number_input(
                    label,
                    value=number(default or 0),
                    min_value=number(0) if name in ZERO_IS_NONE else None,
                    step=number(step),
                    format="%.5f" if name == "learning_rate" else None,
                    help=help_text,
                )
                values[name] = None if name in ZERO_IS_NONE and value == 0 else number(value)
    return values


def _start_from(model: str) -> dict:
    """A warm start or transfer: a trained model of the same family to begin from (a dataset
    with other classes keeps its body and gets a new head), and the epochs its body stays frozen."""
    from fer_core.artifacts import list_trained
    from fer_core.training.recipe import describe_init

    scratch = "nothing: train from scratch"
    left, right = st.columns([2, 1])
    options = [scratch, *list_trained()]
    # Remembered apart from the widgets: a promotion adds an option, which makes a new widget
    # (back at its first option) of the box; the launch after it must not train from scratch.
    remembered = st.session_state.get(START_FROM, scratch)
    start = left.selectbox(
        "Start from",
        options,
        index=options.index(remembered) if remembered in options else 0,
        help="A trained model of the same family: its weights are the start; for a dataset with other "
        "classes its body is kept and a new head built (transfer)",
    )
    st.session_state[START_FROM] = start
    if start == scratch:
        return {}
    frozen = right.number_input(
        "Frozen-body epochs",
        min_value=0,
        value=st.session_state.get(FROZEN_EPOCHS, 0),
        step=1,
        help="Train only the new head this many epochs, then every layer at a tenth of the rate",
    )
    st.session_state[FROZEN_EPOCHS] = int(frozen)
    try:
        return {"init_from": describe_init(start, model), "freeze_epochs": int(frozen)}
    except FerError as exc:
        st.error(said(exc))
        return {}
