"""FER Studio dashboard entry point (placeholder until the dashboard issue lands)."""

import streamlit as st

st.set_page_config(page_title="FER Studio", layout="wide")
st.title("FER Studio")
st.info(
    "The dashboard is coming. Meanwhile everything works from the command line: "
    "`fer-core stats`, `fer-core train`, `fer-core evaluate`, `fer-core predict` (see the README)."
)
