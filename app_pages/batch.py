"""Batch: a corpus (a folder on the server, a manifest, or a zip brought here) in one job of its own process
(`fer-core batch`), its progress, Stop and Resume, and the study's results."""

import time

import streamlit as st

from dashboard.batch_views import job_progress, job_results
from dashboard.shared import detector_picker, model_picker
from fer_core.batch import launch
from fer_core.batch.engines import ENGINES
from fer_core.errors import FerError
from dashboard.text import said

st.title("Batch")
st.caption(
    "Thousands of photos and hours of video in one job, resumable, on this machine's processes or a Ray "
    f"cluster; jobs are kept in {launch.jobs_dir()}. The same as `fer-core batch` (docs/batch.md)."
)

with st.form("batch_form"):
    source = st.text_input(
        "Inputs: a folder on the server, or a manifest CSV (a `path` column and any others, e.g. participant)"
    )
    upload = st.file_uploader("Or a zip of photos and videos (with a manifest CSV beside them, if any)", type=["zip"])
    models = model_picker(st)
    c1, c2, c3 = st.columns(3)
    detector = detector_picker(c1, key="batch_detector")
    every = c2.number_input("Videos: every N-th frame", min_value=1, max_value=1000, value=5)
    workers = c3.number_input("Workers", min_value=1, max_value=64, value=1)
    c4, c5, c6 = st.columns(3)
    engine = c4.selectbox("Engine", ENGINES, help="local: processes here; ray: Ray Data on a cluster")
    address = c5.text_input("Ray cluster address", help="host:port of its head; empty: an embedded one")
    name = c6.text_input("Job name", help="empty: the time it starts")
    whole = st.checkbox("The inputs are face crops (no detection)")
    launched = st.form_submit_button("Start", type="primary")

if launched:
    from pathlib import Path

    job_name = name.strip() or time.strftime("%Y%m%d-%H%M%S")
    model = ",".join(ref.name if ref.name and not ref.name.startswith("run ") else str(ref.folder) for ref in models)
    options = ["--model", model, "--detector", detector, "--every", str(int(every))]
    options += ["--engine", engine, "--workers", str(int(workers))] + (["--whole-image"] if whole else [])
    options += ["--address", address.strip()] if address.strip() and engine == "ray" else []
    try:
        if upload is not None:
            inputs = launch.unpack_inputs(upload.getvalue(), job_name)
        elif source.strip() and Path(source.strip()).expanduser().exists():
            inputs = ["--manifest", source.strip()] if source.strip().lower().endswith(".csv") else [source.strip()]
        else:
            raise FerError(f"no such folder or manifest on the server: {source.strip() or '(empty)'}")
        st.session_state["batch_job"] = launch.start(inputs + options, job_name).name
    except FerError as exc:
        st.error(said(exc))

jobs = launch.jobs()
if not jobs:
    st.info("No batch job yet: name a folder or a manifest above, or bring a zip, and press Start.")
    st.stop()
names = [job.name for job in jobs]
# The job in the address too: a reload, or the link sent to a colleague, opens the same job.
chosen = st.session_state.get("batch_job") or st.query_params.get("job")
picked = st.selectbox(
    "Job",
    names,
    index=names.index(chosen) if chosen in names else 0,
    format_func=lambda n: f"{n} ({next(j.status for j in jobs if j.name == n)})",
)
st.query_params["job"] = picked
state = next(job for job in jobs if job.name == picked)
job_progress(state)
job_results(state)
