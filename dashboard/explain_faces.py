"""Explain's face: one of the dataset's (picked, or opened from Evaluate's gallery), an uploaded
photo's (the largest, or the one picked), or one opened from the Video page's timeline."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.text import said
from fer_core.errors import FerError

OPENED_FROM_VIDEO = "explain_face"  # session state: (crop, where, the models the video used)


def chosen_face(source: str):
    """(face, caption): the face opened from Video while it is open, else one from `source`
    ("from the dataset" or "upload")."""
    if OPENED_FROM_VIDEO in st.session_state:
        return face_from_video()
    return face_from_dataset() if source == "from the dataset" else face_from_upload()


def opened_from_video() -> list[str] | None:
    """The models the Video page analysed the face opened from it with; None when none is open."""
    opened = st.session_state.get(OPENED_FROM_VIDEO)
    return list(opened[2]) if opened else None


def face_from_dataset():
    from dashboard.shared import dataset_or_stop

    dataset = dataset_or_stop()
    picked = st.session_state.get("explain_index")  # a face opened from Evaluate's gallery
    if picked is not None and 0 <= picked < len(dataset):
        c1, c2 = st.columns([3, 1])
        c1.caption(f"Opened from Evaluate & compare: {dataset.sources[picked]}")
        if not c2.button("Pick another face"):
            true = dataset.classes[int(dataset.labels[picked])]
            return dataset.images[picked], f"{dataset.sources[picked]} (true: {true})"
        st.session_state.pop("explain_index")
    c1, c2, c3 = st.columns(3)
    classes = list(dataset.classes)
    name = c1.selectbox("Class", classes, index=classes.index("happy") if "happy" in classes else 0)
    split = c2.selectbox("Split", dataset.split_names, index=len(dataset.split_names) - 1)
    indices = np.flatnonzero((dataset.labels == classes.index(name)) & (dataset.splits == split))
    if not len(indices):
        st.info(f"No {name} faces in {split}.")
        st.stop()
    k = c3.number_input(f"Face (1-{len(indices)})", min_value=1, max_value=len(indices), value=1)
    index = indices[k - 1]
    return dataset.images[index], f"{dataset.sources[index]} (true: {name})"


def face_from_upload():
    """The uploaded photo's faces, numbered on it; the one picked (the largest by default)."""
    from dashboard.shared import detector_picker, face_detector
    from fer_core.data.images import decode_image
    from fer_core.inference import draw_boxes, face_crop, find_faces, to_face
    from fer_core.inference.detectors import to_gray

    c1, c2 = st.columns([3, 1])
    upload = c1.file_uploader("A face image", type=["jpg", "jpeg", "png", "bmp", "webp"])
    detector = detector_picker(c2)
    if upload is None:
        st.stop()
    try:
        image = decode_image(upload.getvalue(), name=upload.name)
        found = find_faces(image, face_detector(detector))
    except FerError as exc:
        st.error(said(exc))
        st.stop()
    if not found:
        st.warning(f"{upload.name}: no face found; explaining the whole image.")
        return to_face(to_gray(image)), upload.name
    if len(found) > 1:
        c1, c2 = st.columns([3, 1])
        c1.image(draw_boxes(image, [d.box for d in found], [str(k) for k in range(1, len(found) + 1)], rgb=True))
        k = c2.selectbox(f"Face to explain ({len(found)} found)", range(1, len(found) + 1))
    else:
        k = 1
    return face_crop(image, found[k - 1]), f"{upload.name}, face {k} of {len(found)}"


def face_from_video():
    """A face opened from the Video page's timeline, until another is picked."""
    crop, where, _models = st.session_state[OPENED_FROM_VIDEO]
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Opened from Video: {where}")
    # The sidebar's dataset stays (other pages use it), but says it has no part in this face.
    st.sidebar.caption("Explain shows a face from the video: the dataset above is not used here.")
    if c2.button("Pick another face", key="drop_video_face"):
        st.session_state.pop(OPENED_FROM_VIDEO)
        st.rerun()
    return crop, where
