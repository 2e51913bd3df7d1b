"""Live: the browser's camera through streamlit-webrtc; every face in view boxed, labelled, tracked.

The frame callback runs on streamlit-webrtc's worker thread and never calls `st.*`: it hands the
newest frame to this session's `fer_core.inference.live.LiveProcessor` and returns the annotated one. The
panel beside the video drains the processor's bounded row queue once a second.
"""

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from dashboard.camera import CAMERA_MESSAGES, RTC_CONFIGURATION, camera_help, camera_origin_warning, frames_callback
from dashboard.live_views import live_panel, looks_key
from dashboard.shared import classifier, detector_picker, face_detector, model_picker
from fer_core.errors import FerError
from fer_core.inference.live import LiveProcessor, LiveSettings, Timeline
from dashboard.text import said

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
c1, c2, c3 = st.columns([1, 1, 1])
detector_name = detector_picker(c1, key="live_detector")
show_fps = c2.toggle("Show FPS on the video", value=True)
looks = c3.toggle(
    "Where it looks",
    value=False,
    help="Inside each face's box, the map of where the model looks: attention_cnn's attention on every frame, "
    "Grad-CAM for the other models, refreshed a few times a second per face",
)

try:
    settings = LiveSettings(smoothing, int(min_face), int(detect_every), show_fps, looks).validate()
    classify, detector = classifier(models), face_detector(detector_name, live=True)
except FerError as exc:
    st.error(said(exc))
    st.stop()

processor = st.session_state.get("live_processor")
if processor is None:
    processor = st.session_state["live_processor"] = LiveProcessor(classify, detector, settings)
else:
    processor.configure(classify, settings, detector)
timeline = st.session_state.setdefault("live_timeline", Timeline(classify.classes))
timeline.use(classify.classes, "+".join(ref.name for ref in models))  # another model: its rows go on

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
    if looks:  # below the video, never above it: an element added above would restart the stream
        looks_key(classify)
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
def panel_now() -> None:
    live_panel(processor, timeline)


with panel:
    panel_now()

camera_help()
