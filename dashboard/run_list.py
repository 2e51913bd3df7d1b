"""The Train page's list of every run and cross-validation in the runs folder, whoever launched
them (running, stopped, failed or finished), and the one the page watches: any session can
watch, stop or resume any of them. Read from their folders on each poll; never written here."""

from __future__ import annotations

from dataclasses import dataclass
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


ACTIVE = ("starting", "running", "stopping")


@dataclass(frozen=True)
class Listing:
    """Every run and every cross-validation's progress, read once for a render of the page."""

    runs: list  # RunInfo, newest first
    crossvals: dict  # folder -> CrossvalProgress

    @property
    def busy(self) -> bool:
        """Whether anything trains now (the page then polls)."""
        return any(r.active for r in self.runs) or any(p.status in ACTIVE for p in self.crossvals.values())


def listing() -> Listing:
    return Listing(list_runs(), {folder: crossval_progress(folder) for folder in list_crossval_folders()})


def watched(listed: Listing) -> tuple[str, str] | None:
    """("run" or "crossval", folder) the page shows, picked in a box that lists them all. By
    default the one this session launched or picked, else the one training now, else the newest,
    so a reload or a new tab lands on the training one."""
    kinds = {str(r.path): "run" for r in listed.runs} | {str(folder): "crossval" for folder in listed.crossvals}
    if not kinds:
        return None
    statuses = {str(r.path): r.status for r in listed.runs}
    statuses |= {str(folder): progress.status for folder, progress in listed.crossvals.items()}
    folders = sorted(kinds, key=lambda f: _made(Path(f).name), reverse=True)
    busy = next((f for f in folders if statuses[f] in ACTIVE), None)
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
    """Every run and cross-validation, newest first, read again on each poll (it is the page's
    fragment that polls) so their statuses move."""
    listed = listing()
    rows = [
        {
            "run": r.name,  # <time>-<model>: the model is in the name (a column of its own cut the table at 800 px)
            "status": r.status,
            "progress": f"epoch {r.epoch}/{r.epochs}",
            "selection accuracy": r.best_val_accuracy,
            "selected on": r.progress.get("val_split"),
        }
        for r in listed.runs
    ]
    for folder, progress in listed.crossvals.items():
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
