"""Video: a video file's faces, every N-th frame, tracked with stable ids and classified; emotions
over time per face, a summary, the rows as CSV and the video with its faces boxed.

The analysis runs on its own thread (`Recognizer.start_video`); the page polls its
progress once a second and can cancel it, and other pages stay free meanwhile.
"""

from pathlib import Path

import streamlit as st

from dashboard.charts import emotion_timeline
from dashboard.gallery import open_moment_in_explain
from dashboard.shared import detector_picker, model_picker
from dashboard.video_jobs import start_analysis
from fer_core.inference.video import MAX_VIDEO_MINUTES
from dashboard.text import said

VIDEO_TYPES = ["mp4", "mov", "m4v", "webm", "mkv", "avi"]

st.title("Video")
models = model_picker(st)  # a row of its own, as on Predict: four in a row are cut at 800 px
c1, c2, c3 = st.columns(3)
detector_name = detector_picker(c1, key="video_detector")
every = c2.number_input("Analyse every N-th frame", min_value=1, max_value=100, value=5)
min_face = c3.number_input("Smallest face (pixels)", min_value=12, max_value=400, value=40)
explain = st.toggle(
    "Draw where it looks",
    help="The annotated video shows, inside each box, where the model looks on each analysed frame: "
    "attention_cnn's attention map, Grad-CAM for the other models (blue least weight, red most); slower",
)
upload = st.file_uploader(f"A video ({', '.join(VIDEO_TYPES)}; up to {MAX_VIDEO_MINUTES:g} minutes)", type=VIDEO_TYPES)
job = st.session_state.get("video_job")

if upload is not None and st.button("Analyse", type="primary", disabled=bool(job and job.running)):
    job = start_analysis(upload, models, detector_name, int(every), int(min_face), explain)
if job is None:
    st.caption("Upload a video, then Analyse: faces are found every N-th frame and followed between them.")
    st.stop()


@st.fragment(run_every=1.0 if job.running else None)
def progress_panel() -> None:
    if job.running:
        progress, left = job.progress, job.progress.seconds_left
        text = f"{progress.frames_done:,} of ~{progress.frames_total:,} frames" + (
            f", about {left:.0f} s left" if left is not None else ""
        )
        st.progress(progress.fraction, text=text)
        if st.button("Cancel"):
            job.cancel.set()
        return
    if st.session_state.get("video_shown") is not job:  # it ended since the last poll: draw the results
        st.session_state["video_shown"] = job
        st.rerun()


progress_panel()
if job.running:
    st.stop()
if job.error:
    st.error(said(job.error))
    st.stop()

result, name = job.result, st.session_state.get("video_name", "video")
info = result.info
st.success(
    f"{name}: {info.width}x{info.height}, {info.fps:.1f} frames/s; {result.frames_read:,} frames read, "
    f"{result.frames_analysed:,} analysed" + (" (cancelled: the results so far)" if result.cancelled else "")
)
rows, summary = result.frame(), result.summary()
if rows.empty:
    st.warning("No face found in the analysed frames: try another detector or a smaller face size.")
    st.stop()
timeline = emotion_timeline(rows, title="Emotions over time, per face", x="time", classes=result.classes)
picked = st.plotly_chart(timeline, width="stretch", on_select="rerun", selection_mode="points", key="video_timeline")
open_moment_in_explain(picked, rows, result, name)
st.subheader("Share of the analysed frames per emotion, per face")
shares = list(summary.columns[2:])
summary[shares] = summary[shares] * 100
# Numbers, not bars: a bar column a class ran past the table's width at 1400 px.
percent = {c: st.column_config.NumberColumn(c, format="%.0f%%", width="small") for c in shares}
st.dataframe(summary, hide_index=True, column_config=percent)
c1, c2 = st.columns(2)
stem = Path(name).stem
# The files are made when clicked, and a click does not rerun the page: a rerun replaces the
# page's file links, and a second download clicked during it would find its link gone.
c1.download_button(
    "Download CSV", data=result.to_csv, file_name=f"{stem}_faces.csv", mime="text/csv", on_click="ignore"
)
if result.output is not None and result.output.is_file():
    c2.download_button(
        "Download annotated video",
        data=result.output.read_bytes,
        file_name=f"{stem}_faces.mp4",
        mime="video/mp4",
        on_click="ignore",
    )
    st.video(str(result.output))
