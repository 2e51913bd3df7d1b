"""The Video page's analysis: the upload saved where its thread can read it, a recognizer of
the chosen models, and the job started (`Recognizer.start_video`); the session keeps what the
results and Explain need."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from dashboard.shared import make_recognizer
from fer_core.paths import cache_dir

KEPT_UPLOADS = 8


def start_analysis(upload, models, detector_name: str, every: int, min_face: int, explain: bool):
    """Start analysing the uploaded video; an error box and the page stopped where it cannot be."""
    if st.session_state.get("video_folder"):
        shutil.rmtree(st.session_state["video_folder"], ignore_errors=True)  # the last video's files
    uploads = cache_dir() / "video"
    uploads.mkdir(parents=True, exist_ok=True)
    # Sessions end without telling the page: the newest KEPT_UPLOADS folders stay (a closed tab's
    # results for a while, and any analysis still running elsewhere), older ones go.
    for old in sorted(uploads.glob("upload-*"), key=lambda p: p.stat().st_mtime)[:-KEPT_UPLOADS]:
        shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))
    source = folder / Path(upload.name).name
    source.write_bytes(upload.getvalue())
    job = make_recognizer(models, detector_name, min_face=min_face).start_video(
        source, every=every, output=folder / "annotated.mp4", explain=explain
    )
    # The models go with a face opened in Explain (this page's own model box is dropped there).
    st.session_state.update(
        video_job=job, video_folder=str(folder), video_name=upload.name, video_models=[ref.name for ref in models]
    )
    return job
