"""FER Studio dashboard: navigation only; each page is widgets -> one fer_core call -> render.

The pages live in app_pages/, not pages/: a folder named pages/ makes Streamlit start in its
legacy auto-discovery mode, where opening /predict on a fresh server runs that page's file
without this entrypoint (no navigation, no sidebar settings; checked with Streamlit 1.67 by
test_e2e's deep link, which fails with the folder renamed). What pages share is in dashboard/.
"""

import dashboard  # noqa: F401  first: loads pylibsrtp before anything can import TensorFlow (see its docstring)
import streamlit as st

from dashboard.shared import data_path_widget, free_session_on_close

st.set_page_config(page_title="FER Studio", page_icon=":material/mood:", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate & compare", icon=":material/analytics:"),
    st.Page("app_pages/explain.py", title="Explain", icon=":material/visibility:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/photo_camera:"),
    st.Page("app_pages/video.py", title="Video", icon=":material/movie:"),
    st.Page("app_pages/live.py", title="Live", icon=":material/videocam:"),
]

free_session_on_close()
page = st.navigation(PAGES)
data_path_widget()  # in the entrypoint, so the dataset path is kept across pages
page.run()
