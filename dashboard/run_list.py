"""The Train page's list of every run and cross-validation in the runs folder, whoever launched
them (running, stopped, failed or finished), and the one the page watches: any session can
watch, stop or resume any of them. Read from their folders on each poll; never written here."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core.training.crossval_runs import crossval_progress, list_crossval_folders
from fer_core.training.runs import list_runs

WATCHING = "watching"  # session state: the folder this session launched or picked


def _made(name: str) -> str:
    """When a run or cross-validation folder was made, from its name: a run's is
    `20261207-203400-cnn`, a cross-validation's `crossval-20261207T203400-cnn`."""
    return "".join(c for c in name.removeprefix("crossval-")[:15] if c.isdigit())


def watch(folder: Path | str) -> None:
    """Have the page show `folder` (a run or a cross-validation) from the next render on."""
    st.session_state[WATCHING] = str(folder)


def watched() -> tuple[str, str] | None:
    """("run" or "crossval", folder) the page shows, picked in a box that lists them all. By
    default the one this session launched or picked, else the one training now, else the newest,
    so a reload or a new tab lands on the training one."""
    runs, crossvals = list_runs(), list_crossval_folders()
    kinds = {str(r.path): "run" for r in runs} | {str(folder): "crossval" for folder in crossvals}
    if not kinds:
        return None
    statuses = {str(r.path): r.status for r in runs} | {str(f): crossval_progress(f).status for f in crossvals}
    folders = sorted(kinds, key=lambda f: _made(Path(f).name), reverse=True)
    busy = next((f for f in folders if statuses[f] in ("starting", "running", "stopping")), None)
    chosen = st.session_state.get(WATCHING)
    default = chosen if chosen in kinds else busy or folders[0]
    folder = st.selectbox(
        "Watch",
        folders,
        index=folders.index(default),
        format_func=lambda f: f"{Path(f).name} ({'cross-validation, ' if kinds[f] == 'crossval' else ''}{statuses[f]})",
        help="Every run and cross-validation in the runs folder, whichever session or command started it",
    )
    if folder != default:
        watch(folder)
    return kinds[folder], folder


def training_table() -> None:
    """Every run and cross-validation, newest first, read again on each poll so their statuses move."""
    rows = [
        {
            "run": r.name,  # <time>-<model>: the model is in the name (a column of its own cut the table at 800 px)
            "status": r.status,
            "progress": f"epoch {r.epoch}/{r.epochs}",
            "selection accuracy": r.best_val_accuracy,
            "selected on": r.progress.get("val_split"),
        }
        for r in list_runs()
    ]
    for folder in list_crossval_folders():
        progress = crossval_progress(folder)
        rows.append(
            {
                "run": folder.name,
                "status": progress.status,
                "progress": f"fold {min(progress.finished + 1, progress.folds)}/{progress.folds}"
                if progress.status != "finished"
                else f"{progress.folds} folds",
                "selection accuracy": None,
                "selected on": None,
            }
        )
    rows.sort(key=lambda row: _made(row["run"]), reverse=True)
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "selection accuracy": st.column_config.NumberColumn(
                format="%.4f", help="best accuracy on the split that picked the epoch (not a reported result)"
            )
        },
    )
