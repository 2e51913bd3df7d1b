"""Dataset: its classes, class distribution per split, imbalance, identical images across splits
or classes, sample faces, mean faces, pixels, odd images."""

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard.dataset_store import bring_a_dataset, subject_pattern, zero_shot_section
from dashboard.shared import dataset_or_stop
from fer_core.words import counted

SAMPLES_PER_PAGE = 24

st.title("Dataset")
bring_a_dataset()
dataset = dataset_or_stop()


@st.cache_data(show_spinner="Computing statistics...", max_entries=2)
def statistics(_dataset, path: str, n: int):
    """The dataset's statistics, once per dataset (its path and size are the cache key)."""
    from fer_core.data.stats import compute_statistics, odd_images

    stats = compute_statistics(_dataset)
    return stats, {k: v.tolist() for k, v in odd_images(_dataset).items()}


stats, odd = statistics(dataset, dataset.root, len(dataset))
for line in stats["load_report"]:
    st.warning(line)

classes = list(dataset.classes)
st.caption(
    f"**{stats['name']}** ({dataset.root}): {counted(stats['n'], 'image')} in {counted(len(stats['splits']), 'split')} "
    f"({', '.join(stats['splits'])}); {len(classes)} classes: {', '.join(classes)}"
)
subject_pattern(dataset)
for key, what in (
    ("identical_across_splits", "identical images in two splits"),
    ("identical_across_classes", "identical images under two classes"),
    ("near_identical_across_splits", "near-identical images (one sequence's frames?) in two splits"),
):
    found = stats["leakage"].get(key, {"count": 0})
    if found["count"]:
        named = "; ".join(" = ".join(files) for files in found["examples"][:3])
        st.warning(f"{found['count']} groups of {what}, e.g. {named}")

zero_shot_section(dataset)

# ---- distribution
st.subheader("Class distribution")
left, right = st.columns(2)
mode = left.radio("Bars", ["grouped", "stacked"], horizontal=True)
scale = right.radio("Show", ["counts", "percent of split"], horizontal=True)
rows = [{"split": s, "class": c, "count": n} for s, per in stats["splits"].items() for c, n in per.items()]
table = pd.DataFrame(rows)
table["percent of split"] = 100 * table["count"] / table.groupby("split")["count"].transform("sum")
value = "count" if scale == "counts" else "percent of split"
# Grouped: a bar per split side by side in each class. Stacked: one bar per split made of its
# classes, so "percent of split" adds up to 100 (stacking splits on a class would add percentages
# of different splits).
figure = px.bar(
    table,
    x="class" if mode == "grouped" else "split",
    y=value,
    color="split" if mode == "grouped" else "class",
    barmode="group" if mode == "grouped" else "stack",
    category_orders={"class": classes},
)
st.plotly_chart(figure, width="stretch")
imbalance = stats["imbalance"]
st.write(
    f"Imbalance ({imbalance['basis']}): the largest class, **{imbalance['largest']}**, has "
    f"**{imbalance['ratio']:.1f}x** the images of the smallest, **{imbalance['smallest']}**."
)

# ---- samples
st.subheader("Sample faces")
c1, c2, c3 = st.columns([2, 2, 1])
chosen_class = c1.selectbox("Class", classes, index=classes.index("happy") if "happy" in classes else 0)
split_choice = c2.selectbox("Split", ["all"] + dataset.split_names)
mask = dataset.labels == classes.index(chosen_class)
if split_choice != "all":
    mask &= dataset.splits == split_choice
indices = np.flatnonzero(mask)
pages = max(1, -(-len(indices) // SAMPLES_PER_PAGE))
page = c3.number_input("Page", min_value=1, max_value=pages, value=1, step=1)
shown = indices[(page - 1) * SAMPLES_PER_PAGE : page * SAMPLES_PER_PAGE]
st.caption(f"{len(indices):,} {chosen_class} images; page {page} of {pages}")
if len(shown):
    st.image([dataset.images[i] for i in shown], width=72, caption=[dataset.sources[i].split("/")[-1] for i in shown])

# ---- mean faces
st.subheader("Mean face per class")
means = stats["mean_faces"]
cols = st.columns(len(means))
for col, (name, face) in zip(cols, means.items()):
    col.image(np.array(face, dtype=np.float32) / 255.0, caption=name, width="stretch", clamp=True)

# ---- pixels
st.subheader("Pixel intensities")
pixels = stats["pixels"]
edges = pixels["histogram"]["edges"]
hist = pd.DataFrame({"intensity": edges[:-1], "pixels": pixels["histogram"]["counts"]})
st.plotly_chart(px.bar(hist, x="intensity", y="pixels"), width="stretch")
st.write(f"Mean {pixels['mean']:.1f}, standard deviation {pixels['std']:.1f}, range {pixels['min']}..{pixels['max']}.")

# ---- odd images
st.subheader("Blank and near-constant images")
st.write(f"{len(odd['blank'])} blank (one flat colour) and {len(odd['near_constant'])} near-constant images.")
flagged = (odd["blank"] + odd["near_constant"])[:48]
if flagged:
    st.image(
        [dataset.images[i] for i in flagged],
        width=64,
        caption=[f"{classes[dataset.labels[i]]}: {dataset.sources[i].split('/')[-1]}" for i in flagged],
    )
