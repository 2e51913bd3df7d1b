"""The dashboard's figures: class-probability bars, training curves, the clickable confusion matrix,
the reliability diagram, emotions over time.

Built from plotly graph objects: plotly.express's DataFrame machinery cost 0.1 s of a page's 0.2 s
server time (measured on the Evaluate page), and these are drawn on every rerun.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def probability_bars(probabilities: dict, title: str | None = None, height: int = 260) -> go.Figure:
    """Horizontal bars, one per class in the model's order top to bottom, on a 0..1 axis.
    `probabilities`: class name to probability, in the model's order."""
    classes = list(probabilities)
    figure = go.Figure(
        go.Bar(
            x=[float(p) for p in probabilities.values()],
            y=classes,
            orientation="h",
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    figure.update_layout(
        height=height,
        margin={"t": 40 if title else 10, "b": 10},
        title=title,
        xaxis={"range": [0, 1], "title": "probability"},
    )
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(classes)))
    return figure


def history_curves(history: list[dict], height: int = 360) -> go.Figure:
    """Loss and accuracy per epoch, training and selection split, side by side."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    epochs = [row["epoch"] for row in history]
    for col, keys in ((1, ("loss", "val_loss")), (2, ("accuracy", "val_accuracy"))):
        for key, part, colour in zip(keys, ("training", "selection split"), ("#636efa", "#ef553b")):
            if history and key in history[0]:
                figure.add_trace(
                    go.Scatter(
                        x=epochs,
                        y=[row.get(key) for row in history],
                        mode="lines+markers",
                        name=part,
                        legendgroup=part,
                        showlegend=col == 1,
                        line={"color": colour},
                        marker={"size": 4},
                    ),
                    row=1,
                    col=col,
                )
    figure.update_layout(height=height, margin={"t": 40})
    figure.update_xaxes(title_text="epoch")
    return figure


def confusion_matrix_figure(
    metrics: dict, normalised: bool = False, chosen: tuple[str, str] | None = None
) -> go.Figure:
    """The confusion matrix of an evaluation's metrics (counts, or rows normalised), each cell
    clickable (the Evaluate page opens the cell's faces), the `chosen` cell (true class,
    predicted class) outlined."""
    matrix = np.array(metrics["confusion_matrix_normalized" if normalised else "confusion_matrix"])
    classes = list(metrics.get("classes") or map(str, range(len(matrix))))  # unnamed: numbered
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=classes,
            y=classes,
            colorscale="Blues",
            text=np.round(matrix, 2) if normalised else matrix,
            texttemplate="%{text}",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z}<extra></extra>",
        )
    )
    # Heatmap cells emit no selection events; a near-invisible marker per cell makes them clickable.
    # The markers sit on top, so they carry the hover text too ("skip" would also drop the clicks).
    xs, ys = np.meshgrid(range(len(classes)), range(len(classes)))
    figure.add_trace(
        go.Scatter(
            x=[classes[i] for i in xs.ravel()],
            y=[classes[j] for j in ys.ravel()],
            mode="markers",
            marker={"size": 40, "opacity": 0.01, "symbol": "square"},
            customdata=matrix.ravel(),
            showlegend=False,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata}<extra></extra>",
        )
    )
    figure.update_layout(height=480, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    if chosen is not None and chosen[0] in classes and chosen[1] in classes:
        row, column = classes.index(chosen[0]), classes.index(chosen[1])  # category axes count cells from 0
        figure.add_shape(
            type="rect",
            x0=column - 0.5,
            x1=column + 0.5,
            y0=row - 0.5,
            y1=row + 0.5,
            line={"color": "#ff4b4b", "width": 3},
            name="chosen cell",
        )
    return figure


def reliability_figure(calibration: dict) -> go.Figure:
    """Accuracy against confidence, bin by bin (the bins that hold faces), beside the diagonal."""
    bins = [b for b in calibration["bins"] if b["count"]]
    reliability = go.Figure()
    reliability.add_trace(
        go.Bar(
            x=[(b["low"] + b["high"]) / 2 for b in bins],
            y=[b["accuracy"] for b in bins],
            width=0.09,
            name="accuracy",
            customdata=[b["count"] for b in bins],
            hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.3f}<br>%{customdata} faces<extra></extra>",
        )
    )
    reliability.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line={"dash": "dash"})
    )
    reliability.update_layout(
        height=360, xaxis_title="confidence", yaxis_title="accuracy", xaxis_range=[0, 1], yaxis_range=[0, 1]
    )
    return reliability


def emotion_timeline(rows, title: str, classes, x: str = "time", height: int = 320) -> go.Figure:
    """Each face's label over time, one colour per face: `rows` is a DataFrame with the column
    `x`, `face`, `label` and a probability column per class of the model (a Live timeline or a
    video's rows)."""
    classes = list(classes)
    figure = go.Figure()
    faces = sorted(rows["face"].unique())
    # Each face on its own lane within an emotion's row, so two faces with the same emotion at
    # the same moment both show.
    lanes = np.linspace(-0.25, 0.25, len(faces)) if len(faces) > 1 else [0.0]
    for lane, face in zip(lanes, faces):
        group = rows[rows["face"] == face]
        figure.add_trace(
            go.Scatter(
                x=group[x],
                y=[classes.index(label) + lane for label in group["label"]],
                mode="markers",
                name=f"face {face}",
                customdata=np.stack([group["label"], group[classes].max(axis=1)], axis=1),
                hovertemplate="%{customdata[0]} (%{customdata[1]:.0%})<extra>face " + str(face) + "</extra>",
            )
        )
    figure.update_yaxes(tickvals=list(range(len(classes))), ticktext=classes, range=[-0.5, len(classes) - 0.5])
    figure.update_layout(
        height=height,
        margin={"t": 40, "b": 90},
        title={"text": title, "font": {"size": 14}},
        xaxis={"title": x},
        # Under the plot (a narrow page keeps its width), at the foot of the figure: placed
        # against the plot instead, it lands on the axis's title under two-line date ticks.
        legend={"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0.01},
    )
    return figure
