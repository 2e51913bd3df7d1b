"""The browser camera for the Live page: streamlit-webrtc's settings and frame callback, and what
to tell a user whose browser refuses the camera."""

from __future__ import annotations

import av
import streamlit as st

from dashboard.shared import insecure_camera_host
from fer_core.inference.live import LiveProcessor

# No STUN/TURN servers: on localhost (or a LAN) browser and server reach each other over host
# candidates, and an offline machine could not reach a STUN server anyway.
RTC_CONFIGURATION = {"iceServers": []}
CAMERA_MESSAGES = {
    "media_api_not_available": "This browser gives no camera access to this page: open it over HTTPS, or as "
    "http://localhost on the machine running the dashboard.",
    "device_not_available": "No camera found: connect one (and close other apps using it), then press Start again.",
    "device_access_denied": "Camera access was refused: allow the camera for this site in the browser's site "
    "settings (the camera icon in the address bar), then press Start again.",
}


def camera_origin_warning() -> None:
    """Browsers only allow getUserMedia on secure origins: HTTPS, or http on localhost."""
    host = insecure_camera_host(st.context.url)
    if host:
        st.warning(
            f"This page is served over plain HTTP from {host}: browsers block the camera there. "
            "Open it as http://localhost on the machine running the dashboard, or serve it over HTTPS "
            "(docs/running-safely.md)."
        )


def frames_callback(processor: LiveProcessor):
    """streamlit-webrtc's queued-frames callback: only the newest frame is processed, so a model
    slower than the camera skips frames instead of falling behind."""

    async def callback(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        newest = frames[-1]
        try:
            image = processor.process(newest.to_ndarray(format="bgr24"), skipped=len(frames) - 1)
        except Exception as exc:  # noqa: BLE001 - the stream must go on; the panel shows the error
            processor.stats.error = f"{type(exc).__name__}: {exc}"
            return [newest]
        return [av.VideoFrame.from_ndarray(image, format="bgr24")]

    return callback


def camera_help() -> None:
    """The component shows the browser's error (NotAllowedError...) above the video but does not
    report it to Python, so the help waits, folded, under the one title a user looks for."""
    with st.expander("Camera not working?"):
        st.markdown(
            "- **Refused** (`NotAllowedError`): the camera was refused; allow it for this site (the camera "
            "icon in the address bar), then Start again.\n"
            "- **No camera** (`NotFoundError`, `NotReadableError`): connect one, close other apps that hold "
            "it, reload the page.\n"
            "- **Not offered at all**: browsers give cameras only to HTTPS pages and to `http://localhost` "
            "(docs/running-safely.md).\n"
            "- No STUN/TURN server is used: browser and server must reach each other directly (same machine or LAN)."
        )
