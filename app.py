"""FER Studio dashboard: navigation only; each page is widgets -> one fer_core call -> render.

The pages live in app_pages/, not pages/: a folder named pages/ makes Streamlit start in its
legacy auto-discovery mode, where opening /predict on a fresh server runs that page's file
without this entrypoint (no navigation, no sidebar settings; checked with Streamlit 1.67 by
test_e2e's deep link, which fails with the folder renamed). What pages share is in dashboard/.
"""

import dashboard  # noqa: F401  first: loads pylibsrtp before anything can import TensorFlow (see its docstring)
import streamlit as st

from dashboard.shared import ICON, data_path_widget, free_session_on_close, remember_in_url

# The tab's icon is a shipped file: a ":material/...:" page icon is fetched from a font CDN.
st.set_page_config(page_title="FER Studio", page_icon=str(ICON), layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate & compare", icon=":material/analytics:"),
    st.Page("app_pages/explain.py", title="Explain", icon=":material/visibility:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/photo_camera:"),
    st.Page("app_pages/video.py", title="Video", icon=":material/movie:"),
    st.Page("app_pages/live.py", title="Live", icon=":material/videocam:"),
    st.Page("app_pages/batch.py", title="Batch", icon=":material/dataset_linked:"),
]

free_session_on_close()
page = st.navigation(PAGES)
data_path_widget()  # in the entrypoint, so the dataset path is kept across pages
try:
    page.run()
finally:  # what the page chose (a subject pattern) into the address too, even when it stopped early
    remember_in_url()
