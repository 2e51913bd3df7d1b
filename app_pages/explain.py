"""Explain: Grad-CAM for every model and the attention map where the model has one, over the same face."""

import numpy as np
import streamlit as st

from fer_core.artifacts import model_classes
from dashboard.text import said
from fer_core.errors import FerError
from dashboard.charts import probability_bars
from dashboard.shared import by_accuracy, load_model, models_or_stop

st.title("Explain")
refs = {ref.name: ref for ref in models_or_stop()}

selected = st.multiselect("Models (side by side)", list(refs), default=by_accuracy(refs.values())[:3])
opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05)
source = st.radio("Face", ["from the dataset", "upload"], horizontal=True)


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
    crop, where = st.session_state["explain_face"]
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Opened from Video: {where}")
    if c2.button("Pick another face", key="drop_video_face"):
        st.session_state.pop("explain_face")
        st.rerun()
    return crop, where


if "explain_face" in st.session_state:
    face, caption = face_from_video()
else:
    face, caption = face_from_dataset() if source == "from the dataset" else face_from_upload()
st.image(face, caption=caption, width=144)

from fer_core.explain import colour_key, explain_face, overlay  # noqa: E402

# A row per kind of view, a column per model: the views of one model line up whether or not its
# neighbours have an attention map.
explained = {}
for label in selected:
    try:
        ref = refs[label]
        explained[label] = explain_face(load_model(ref), face, ref.spec, classes=model_classes(ref))
    except FerError as exc:
        st.error(said(f"{label}: {exc}"))
shown = list(explained)
if shown:
    for column, label in zip(st.columns(len(shown)), shown):
        column.markdown(f"**{label}**")
        column.image(
            overlay(face, explained[label].gradcam, opacity),
            caption="Grad-CAM: the parts of the face that pushed the model towards its answer",
            width="stretch",
        )
    if any(explained[label].attention is not None for label in shown):
        for column, label in zip(st.columns(len(shown)), shown):
            if explained[label].attention is not None:
                attention = overlay(face, explained[label].attention, opacity)
                column.image(
                    attention,
                    caption="Spatial attention (the paper's §4.1): where the model's attention layer weighted the face",
                    width="stretch",
                )
            else:
                column.caption("no attention map in this model")
    st.image(colour_key(), caption="Colour key: blue = little weight, red = the most", width=192)
    for column, label in zip(st.columns(len(shown)), shown):
        probabilities = explained[label].probabilities
        bars = probability_bars(dict(zip(explained[label].classes, probabilities)))
        column.plotly_chart(bars, width="stretch", key=f"probs-{label}")
        column.caption(f"predicted {explained[label].label} ({np.max(probabilities):.0%})")
