"""Predict: upload images (or a zip of them); faces are found, boxed and classified."""

import streamlit as st

from fer_core.errors import FerError
from fer_core.data.images import decode_image, expand_uploads
from fer_core.inference import draw_faces
from fer_core.inference.options import DEFAULT_MIN_FACE
from fer_core.recognizer import ImageResult, results_frame
from dashboard.charts import probability_bars
from dashboard.shared import detector_picker, make_recognizer, model_picker, png_bytes, tta_picker
from dashboard.text import said

DETAILED_FILES = 20  # files shown with image and bars; every file is in the results table

st.title("Predict")
# The model on a row of its own, the three settings on the next: four in a row cut their labels
# and choices mid-word at 800 px with the sidebar open.
models = model_picker(st)
c1, c2, c3 = st.columns(3)
detector_name = detector_picker(c1)
min_face = c2.number_input("Smallest face (pixels)", min_value=12, max_value=400, value=DEFAULT_MIN_FACE)
tta = tta_picker(c3)
files = st.file_uploader(
    "Images (JPEG, PNG, BMP, WebP) or a zip of images",
    type=["jpg", "jpeg", "png", "bmp", "webp", "zip"],
    accept_multiple_files=True,
)
if not files:
    st.caption("A face crop (like FER2013's 48x48) is classified as a whole; larger images go through face detection.")
    st.stop()

recognizer = make_recognizer(models, detector_name, tta=tta, min_face=int(min_face))

# Recorded in every row, so a downloaded CSV says what produced it.
used = {"model": recognizer.model_name, "tta": tta, "detector": detector_name}
results, failures, classified = [], 0, 0
for index, (name, data, error) in enumerate(expand_uploads([(f.name, f.getvalue()) for f in files])):
    if error is None:
        try:
            rgb = decode_image(data, name=name)
        except FerError as exc:
            error = str(exc)
    if error:
        failures += 1
        st.error(said(error))
        continue
    whole = st.session_state.get(f"whole-{index}-{name}", False)
    faces = recognizer.classify_arrays([rgb], whole_image=whole)[0]
    classified += 1
    results.append(ImageResult(name, faces))
    if classified > DETAILED_FILES:
        continue
    with st.container(border=True):
        left, right = st.columns([1, 1])
        annotated = draw_faces(rgb, faces, rgb=True, numbered=True)  # numbers match the bars and the table
        left.image(annotated, caption=name, width="stretch")
        left.download_button(
            "Download annotated image",
            data=lambda image=annotated: png_bytes(image),  # encoded when clicked
            file_name=f"{name.rsplit('/', 1)[-1].rsplit('.', 1)[0]}_faces.png",
            mime="image/png",
            key=f"annotated-{index}",
            on_click="ignore",  # no rerun: another download clicked meanwhile keeps its link
        )
        with right:
            if not faces:
                st.warning(f"{name}: no face found.")
                st.checkbox("Classify the whole image as one face", key=f"whole-{index}-{name}")
            for k, face in enumerate(faces):
                title = f"face {k + 1}: {face.label} ({face.confidence:.0%})"
                figure = probability_bars(face.probabilities, title=title, height=240)
                st.plotly_chart(figure, width="stretch", key=f"bars-{index}-{k}")
                if face.cut:  # its missing part was made up for the model: less sure than it looks
                    st.caption(f"Face {k + 1} is cut by the picture's edge: its missing part was mirrored in.")

st.caption(
    f"{classified} images classified, {failures} refused"
    + (f"; the first {DETAILED_FILES} are shown in detail" if classified > DETAILED_FILES else "")
)
if results:
    st.subheader("All results")
    frame = results_frame(results, recognizer.classes, used).drop(columns="error")
    st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download CSV",
        frame.to_csv(index=False).encode(),
        file_name="fer_predictions.csv",
        mime="text/csv",
        on_click="ignore",
    )
