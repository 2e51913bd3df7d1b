"""FER Studio dashboard: navigation only; each page is widgets -> one fer_core call -> render."""

import streamlit as st

from pages.shared import data_path_widget

st.set_page_config(page_title="FER Studio", page_icon=":material/mood:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate & compare", icon=":material/analytics:"),
    st.Page("pages/explain.py", title="Explain", icon=":material/visibility:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/photo_camera:"),
]

page = st.navigation(PAGES)
data_path_widget()  # in the entrypoint, so the dataset path is kept across pages
page.run()
