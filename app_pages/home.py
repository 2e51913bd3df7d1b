"""Home: what FER Studio does, the available models, where the data is. Imports nothing heavy."""

import streamlit as st

from dashboard.home_models import models_section
from dashboard.shared import data_path


st.title("FER Studio")
st.write(
    "A workbench for facial-expression recognition on FER2013 (48x48 grayscale faces, 7 emotions): "
    "browse the data, train the paper's three models and our own vgg_fer, compare them honestly, "
    "see where they look, and classify your own faces."
)


models_section()

st.subheader("Data")
path = data_path()
st.write(f"Dataset: `{path}`" if path else "No dataset configured: set its path in the sidebar or FER_DATA.")

st.subheader("Pages")
# One a line: a link label is one line and cut where it does not fit (columns cut them at 800 px).
for page, label in (
    ("app_pages/dataset.py", "Dataset: distribution, samples, mean faces"),
    ("app_pages/train.py", "Train: launch and watch runs"),
    ("app_pages/evaluate.py", "Evaluate & compare: confusion matrices, curves"),
    ("app_pages/explain.py", "Explain: Grad-CAM and attention maps"),
    ("app_pages/predict.py", "Predict: classify uploaded faces"),
    ("app_pages/video.py", "Video: the faces of a video file over time"),
    ("app_pages/live.py", "Live: your webcam, classified"),
):
    st.page_link(page, label=label)
