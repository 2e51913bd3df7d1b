"""Explain: Grad-CAM for every model and the attention_cnn's attention map, over the same face."""

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from fer_core import CLASS_NAMES
from fer_core.errors import FerError
from app_pages.shared import load_model, model_choices

st.title("Explain")
choices = model_choices()
if not choices:
    st.info("No trained models or finished runs yet: train one on the Train page.")
    st.stop()

selected = st.multiselect("Models (side by side)", list(choices), default=list(choices)[:3])
opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05)
source = st.radio("Face", ["from the dataset", "upload"], horizontal=True)


def face_from_dataset():
    from app_pages.shared import dataset_or_stop

    dataset = dataset_or_stop()
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Class", CLASS_NAMES, index=3)
    split = c2.selectbox("Split", dataset.split_names, index=len(dataset.split_names) - 1)
    indices = np.flatnonzero((dataset.labels == CLASS_NAMES.index(name)) & (dataset.splits == split))
    if not len(indices):
        st.info(f"No {name} faces in {split}.")
        st.stop()
    k = c3.number_input(f"Face (1-{len(indices)})", min_value=1, max_value=len(indices), value=1)
    index = indices[k - 1]
    return dataset.images[index], f"{dataset.sources[index]} (true: {name})"


def face_from_upload():
    from app_pages.shared import face_detector
    from fer_core.images import decode_grayscale
    from fer_core.inference import crop_face, find_faces

    upload = st.file_uploader("A face image", type=["jpg", "jpeg", "png", "bmp", "webp"])
    if upload is None:
        st.stop()
    try:
        gray = decode_grayscale(upload.getvalue(), name=upload.name)
    except FerError as exc:
        st.error(str(exc))
        st.stop()
    boxes = find_faces(gray, face_detector())
    if not boxes:
        st.warning(f"{upload.name}: no face found; explaining the whole image.")
        boxes = [(0, 0, gray.shape[1], gray.shape[0])]
    return crop_face(gray, boxes[0]), upload.name


face, caption = face_from_dataset() if source == "from the dataset" else face_from_upload()
st.image(face, caption=caption, width=144)

from fer_core.explain import attention_map, gradcam, overlay  # noqa: E402

columns = st.columns(max(1, len(selected)))
for column, label in zip(columns, selected):
    with column:
        st.markdown(f"**{label}**")
        try:
            model = load_model(choices[label])
            heat, probabilities = gradcam(model, face)
            st.image(overlay(face, heat, opacity), caption="Grad-CAM", width="stretch")
            if model.name == "attention_cnn":
                attention, _ = attention_map(model, face)
                st.image(overlay(face, attention, opacity), caption="spatial attention (§4.1)", width="stretch")
        except FerError as exc:
            st.error(str(exc))
            continue
        frame = pd.DataFrame({"class": CLASS_NAMES, "probability": probabilities})
        figure = px.bar(frame, x="probability", y="class", orientation="h", range_x=[0, 1])
        figure.update_layout(height=260, margin={"t": 10, "b": 10})
        figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(CLASS_NAMES)))
        st.plotly_chart(figure, width="stretch", key=f"probs-{label}")
        st.caption(f"predicted {CLASS_NAMES[int(np.argmax(probabilities))]} ({np.max(probabilities):.0%})")
