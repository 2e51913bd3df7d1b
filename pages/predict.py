"""Predict: upload images (or a zip of them); faces are found, boxed and classified."""

import cv2
import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from fer_core import CLASS_NAMES
from fer_core.errors import FerError
from fer_core.images import decode_grayscale, expand_uploads
from fer_core.inference import classify_image, draw_faces
from pages.shared import classifier, face_detector, model_choices

ENSEMBLE = "ensemble of all trained models"

st.title("Predict")
choices = model_choices(include_runs=False) or model_choices()
if not choices:
    st.info("No trained models yet: train one on the Train page and promote it.")
    st.stop()
options = list(choices) + ([ENSEMBLE] if len(choices) > 1 else [])
c1, c2 = st.columns([2, 1])
chosen = c1.selectbox("Model", options)
min_face = c2.number_input("Smallest face (pixels)", min_value=12, max_value=400, value=30)
files = st.file_uploader("Images (JPEG, PNG, BMP, WebP) or a zip of images",
                         type=["jpg", "jpeg", "png", "bmp", "webp", "zip"], accept_multiple_files=True)
if not files:
    st.caption("A face crop (like FER2013's 48x48) is classified as a whole; larger images go through face detection.")
    st.stop()

model_files = tuple(choices.values()) if chosen == ENSEMBLE else (choices[chosen],)
classify = classifier(model_files)
detector = face_detector()
table = []
for index, (name, data, error) in enumerate(expand_uploads([(f.name, f.getvalue()) for f in files])):
    if error:
        st.error(error)
        continue
    try:
        gray = decode_grayscale(data, name=name)
    except FerError as exc:
        st.error(str(exc))
        continue
    whole = st.session_state.get(f"whole-{index}-{name}", False)
    faces = classify_image(gray, classify, detector, whole_image=whole, min_face=int(min_face))
    with st.container(border=True):
        left, right = st.columns([1, 1])
        left.image(cv2.cvtColor(draw_faces(gray, faces), cv2.COLOR_BGR2RGB), caption=name, width="stretch")
        with right:
            if not faces:
                st.warning(f"{name}: no face found.")
                st.checkbox("Classify the whole image as one face", key=f"whole-{index}-{name}")
            for k, face in enumerate(faces):
                frame = pd.DataFrame({"class": CLASS_NAMES, "probability": face.probabilities})
                figure = px.bar(frame, x="probability", y="class", orientation="h", range_x=[0, 1],
                                title=f"face {k + 1}: {face.label} ({face.confidence:.0%})")
                figure.update_layout(height=240, margin={"t": 40, "b": 10})
                figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(CLASS_NAMES)))
                st.plotly_chart(figure, width="stretch", key=f"bars-{index}-{k}")
    for k, face in enumerate(faces):
        table.append({"file": name, "face": k + 1, "box": " ".join(map(str, face.box)), "label": face.label,
                      **{c: round(float(p), 4) for c, p in zip(CLASS_NAMES, face.probabilities)}})

if table:
    st.subheader("All results")
    frame = pd.DataFrame(table)
    st.dataframe(frame, hide_index=True)
    st.download_button("Download CSV", frame.to_csv(index=False).encode(), file_name="fer_predictions.csv", mime="text/csv")
