"""Explain: Grad-CAM for every model and the attention map where the model has one, over the same face."""

import numpy as np
import streamlit as st

from dashboard.text import said
from fer_core.artifacts import model_classes
from fer_core.errors import FerError
from dashboard.charts import probability_bars
from dashboard.explain_faces import chosen_face, opened_from_video
from dashboard.shared import by_accuracy, load_model, models_or_stop

st.title("Explain")
refs = {ref.name: ref for ref in models_or_stop()}

# A face opened from Video comes with the models it was analysed with; else the three best.
from_video = opened_from_video()
opened_with = [name for name in from_video or [] if name in refs]
selected = st.multiselect("Models (side by side)", list(refs), default=opened_with or by_accuracy(refs.values())[:3])
opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05)
source = None if from_video is not None else st.radio("Face", ["from the dataset", "upload"], horizontal=True)
face, caption = chosen_face(source)
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
