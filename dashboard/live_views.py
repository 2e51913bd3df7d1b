"""The Live page's parts beside the video: the panel of the frame on screen and the key of the
"where it looks" maps."""

from __future__ import annotations

import time

import streamlit as st

from dashboard.charts import emotion_timeline

TIMELINE_SECONDS = 60


def looks_key(classify) -> None:
    """The maps' colour key and what they are, for the model chosen."""
    from fer_core.explain import colour_key
    from fer_core.inference.looks import GRADCAM_REFRESH_S

    st.image(colour_key(width=240, height=10), width=240)
    if classify.gives_attention:
        what = "the model's spatial attention, read from the same pass that classifies each frame"
    else:
        what = (
            f"Grad-CAM (the regions that raised the label shown), made on a worker thread about every "
            f"{GRADCAM_REFRESH_S:g} s per face and kept between"
        )
    st.caption(f"Where it looks, inside each box: blue where the model puts least weight, red most; {what}.")


def live_panel(processor, timeline) -> None:
    """The panel beside the video, redrawn once a second: the numbers of the frame on screen, the
    largest face's probabilities, the maps' freshness, the emotions of the last minute."""
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
        st.markdown(f"**Largest face: {latest.label}** ({latest.confidence:.0%})")
        # Bars of Streamlit's own, not a chart: a Plotly figure replaced every second was
        # sometimes drawn blank between two polls.
        for name, probability in latest.probabilities.items():
            st.progress(min(1.0, max(0.0, float(probability))), text=f"{name} {probability:.0%}")
        if latest.cut:  # its missing part was made up for the model: less sure than it looks
            st.caption("The largest face is cut by the picture's edge: its missing part was mirrored in.")
    elif view is not None:
        st.info("No face in view: face the camera, or lower the smallest face size.")
    if view is not None and view.look_kind is not None:
        st.caption(
            "Maps: attention from this frame's own pass"
            if view.look_kind == "attention"
            else f"Maps: Grad-CAM, the oldest drawn {view.look_age_s:.1f} s old"
            if view.look_age_s is not None
            else "Maps: Grad-CAM, the first on its way"
        )

    recent = timeline.frame(last_seconds=TIMELINE_SECONDS, now=time.time())
    if len(recent):
        chart = emotion_timeline(recent, title=f"Emotions over the last {TIMELINE_SECONDS} s", classes=timeline.classes)
        st.plotly_chart(chart, width="stretch", key="live-timeline")
    st.caption(
        f"{len(timeline):,} timeline rows this session · {stats.frames:,} frames processed, "
        f"{stats.skipped:,} skipped to keep up with the camera"
    )
