"""The Batch page's views of one job: its progress (polled while it runs, Stop and Resume) and its
results (per-file table, shares per group with their intervals, a file's emotions over time,
failed inputs, downloads). Everything is read from the job's folder (`fer_core.batch`)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard.charts import emotion_timeline
from fer_core import batch
from fer_core.batch import launch
from fer_core.errors import FerError
from dashboard.text import said

FILE_COLUMNS = ["source", "kind", "status", "frames", "faces", "seconds"]


def job_progress(state) -> None:
    """Inputs done of all, rates, failures so far, time left; polled once a second while it runs."""

    def show():
        current = launch.state_of(state.folder)
        if state.running and not current.running:
            st.rerun()  # the whole page: its results, drawn outside this fragment, are ready
        progress = current.progress
        total = max(1, progress.get("inputs", 0))
        finished = progress.get("skipped", 0) + progress.get("done", 0) + progress.get("failed", 0)
        left = progress.get("seconds_left")
        st.progress(
            min(1.0, finished / total),
            text=f"{current.status}: {finished:,} of {progress.get('inputs', 0):,} inputs"
            + (f", about {left:.0f} s left" if current.running and left else ""),
        )
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Failed", f"{progress.get('failed', 0):,}")
        c2.metric("Frames/s", f"{progress.get('frames_per_second', 0):.1f}")
        c3.metric("Faces/s", f"{progress.get('faces_per_second', 0):.1f}")
        c4.metric("Done before", f"{progress.get('skipped', 0):,}")
        if current.record.get("error"):
            st.error(said(current.record["error"]))
        if current.running and st.button("Stop", help="After the units in flight; Resume goes on"):
            launch.stop(state.folder)
        if not current.running and current.status != "finished" and st.button("Resume"):
            try:
                launch.resume(state.folder)
            except FerError as exc:
                st.error(said(exc))
            st.rerun()

    st.fragment(run_every=1.0 if state.running else None)(show)()


def job_results(state) -> None:
    files = batch.load_files(state.folder)
    if files.empty:
        st.info("No input analysed yet.")
        return
    classes = list(state.record.get("model", {}).get("classes") or [])
    extras = [
        c for c in files.columns if c not in {*FILE_COLUMNS, "error", "size", "mtime", "node", "worker", *classes}
    ]
    st.subheader("Files")
    st.dataframe(files[[*FILE_COLUMNS, *extras, *classes]], hide_index=True)
    failed = files[files["status"] == "failed"]
    if len(failed):
        st.subheader(f"Failed inputs ({len(failed):,})")
        st.dataframe(failed[["source", "error"]], hide_index=True)
    faces = batch.load(state.folder)
    c1, c2, c3 = st.columns(3)
    # Made when clicked, not on every rerun: a study's faces run to millions of rows.
    parquet = state.folder / "files.parquet"
    c1.download_button("Faces (CSV)", lambda: faces.to_csv(index=False, float_format="%.4f"), "faces.csv", "text/csv")
    c2.download_button("Files (CSV)", lambda: files.to_csv(index=False), "files.csv", "text/csv")
    c3.download_button("Files (Parquet)", parquet.read_bytes, "files.parquet", disabled=not parquet.is_file())
    if faces.empty:
        return
    st.subheader("Share of each emotion")
    by = st.multiselect("Per group of", extras, default=extras[:1])
    try:
        shares = batch.summary(state.folder, by=by)
    except FerError as exc:
        st.error(said(exc))
        return
    st.plotly_chart(shares_figure(shares, by), width="stretch")
    st.caption("Bars: the share of the group's faces; whiskers: 95% intervals from resampling its files.")
    st.subheader("A file over time")
    videos = files[(files["kind"] == "video") & (files["status"] == "done")]["source"].tolist()
    if videos:
        source = st.selectbox("Video", videos)
        rows = faces[faces["source"] == source]
        st.plotly_chart(emotion_timeline(rows, f"{source}: each face's emotion", classes), width="stretch")


def shares_figure(shares, by: list[str]) -> go.Figure:
    """One bar per class and group, with its interval."""
    figure = go.Figure()
    groups = shares.groupby(by, sort=True) if by else [("all", shares)]
    for key, rows in groups:
        label = ", ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        figure.add_trace(
            go.Bar(
                x=rows["class"],
                y=rows["share"],
                name=label,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": rows["high"] - rows["share"],
                    "arrayminus": rows["share"] - rows["low"],
                },
            )
        )
    figure.update_layout(
        barmode="group",
        height=380,
        yaxis={"tickformat": ".0%"},
        margin={"t": 20, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15},
    )
    return figure
