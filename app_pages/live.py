"""Live: the browser's camera through streamlit-webrtc; every face in view boxed, labelled, tracked.

The frame callback runs on streamlit-webrtc's worker thread and never calls `st.*`: it hands the
newest frame to this session's `fer_core.inference.live.LiveProcessor` and returns the annotated one. The
panel beside the video drains the processor's bounded row queue once a second.
"""

import time

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from dashboard.camera import CAMERA_MESSAGES, RTC_CONFIGURATION, camera_help, camera_origin_warning, frames_callback
from dashboard.charts import emotion_timeline, probability_bars
from dashboard.shared import classifier, detector_picker, face_detector, model_picker
from fer_core.errors import FerError
from fer_core.inference.live import LiveProcessor, LiveSettings, Timeline
from fer_core.words import sentence

TIMELINE_SECONDS = 60

st.title("Live")
# Four controls a row, the FPS switch under them: five in a row cut its label even at 1400 px.
c1, c2, c3, c4 = st.columns(4)
models = model_picker(c1)
smoothing = c2.slider(
    "Smoothing (0 = off)",
    0.0,
    0.95,
    0.5,
    0.05,
    help="Exponential moving average of each face's probabilities over frames",
)
min_face = c3.slider("Smallest face (px)", 30, 300, 60, 10)
detect_every = c4.slider(
    "Detect every N frames", 1, 10, 3, help="Face detection runs every N frames; boxes follow the faces in between"
)
c1, c2 = st.columns([1, 3])
detector_name = detector_picker(c1, key="live_detector")
show_fps = c2.toggle("Show FPS on the video", value=True)

try:
    settings = LiveSettings(smoothing, int(min_face), int(detect_every), show_fps).validate()
    classify, detector = classifier(models), face_detector(detector_name, live=True)
except FerError as exc:
    st.error(sentence(exc))
    st.stop()

processor = st.session_state.get("live_processor")
if processor is None:
    processor = st.session_state["live_processor"] = LiveProcessor(classify, detector, settings)
else:
    processor.configure(classify, settings, detector)
timeline = st.session_state.setdefault("live_timeline", Timeline(classes=classify.classes))
if timeline.classes != classify.classes:  # another model, other classes: a timeline of its own
    timeline = st.session_state["live_timeline"] = Timeline(classes=classify.classes)

camera_origin_warning()
video, panel = st.columns([3, 2])
with video:
    stream = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=RTC_CONFIGURATION,
        media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
        queued_video_frames_callback=frames_callback(processor),
        async_processing=True,
        translations=CAMERA_MESSAGES,
    )
    st.caption("Press Start and allow the camera; frames stay between your browser and this server.")
    # Outside the once-a-second panel: a download registered there would be revoked and
    # re-registered every second, racing the click. The CSV is built when clicked, so it holds
    # every row up to that moment; the click reruns nothing (a rerun re-registers the link the
    # browser is fetching).
    st.download_button(
        "Download timeline CSV",
        data=timeline.to_csv,
        file_name="fer_live_timeline.csv",
        mime="text/csv",
        on_click="ignore",
    )


streaming = stream.state.playing or stream.state.signalling
if not streaming:
    processor.clear_view()  # stopped: the panel shows nothing of the last frame


@st.fragment(run_every=1.0 if streaming else None)
def live_panel() -> None:
    timeline.extend(processor.drain())
    stats = processor.stats
    if stats.error:
        st.error(f"Frame processing failed: {stats.error}")
    # One snapshot of the last frame (None once frames stop): the numbers of the frame on screen.
    view = processor.current_view()
    # One line of text, not three metrics: the panel is ~230 px wide at 800 px, where metrics' big
    # numbers were cut to their first digit.
    st.markdown(
        f"**{view.fps:.1f}** frames/s · **{view.frame_ms:.0f}** ms a frame · **{len(view.faces)}** "
        f"{'face' if len(view.faces) == 1 else 'faces'}"
        if view
        else "No frame yet",
        help="Frames processed a second and the processing time a frame (detect or track, classify, draw), both "
        "averaged over the last few seconds, as the video's overlay shows them; a frame that detects costs more "
        "than one that only tracks. Faces: those on the last frame.",
    )
    if view is not None and view.latest is not None:
        latest = view.latest
        bars = probability_bars(
            dict(zip(latest.classes, latest.probabilities)),
            title=f"Largest face: {latest.label} ({latest.confidence:.0%})",
        )
        st.plotly_chart(bars, width="stretch", key="live-bars")
    elif view is not None:
        st.info("No face in view: face the camera, or lower the smallest face size.")

    recent = timeline.frame(last_seconds=TIMELINE_SECONDS, now=time.time())
    if len(recent):
        chart = emotion_timeline(recent, title=f"Emotions over the last {TIMELINE_SECONDS} s", classes=timeline.classes)
        st.plotly_chart(chart, width="stretch", key="live-timeline")
    st.caption(
        f"{len(timeline):,} timeline rows this session · {stats.frames:,} frames processed, "
        f"{stats.skipped:,} skipped to keep up with the camera"
    )


with panel:
    live_panel()

camera_help()
