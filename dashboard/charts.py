"""The figures more than one page draws: class-probability bars and training curves.

Built from plotly graph objects: plotly.express's DataFrame machinery cost 0.1 s of a page's 0.2 s
server time (measured on the Evaluate page), and these are drawn on every rerun.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer_core import CLASS_NAMES


def probability_bars(probabilities, title: str | None = None, height: int = 260) -> go.Figure:
    """Horizontal bars, one per class in FER2013 order top to bottom, on a 0..1 axis."""
    figure = go.Figure(
        go.Bar(
            x=[float(p) for p in probabilities],
            y=list(CLASS_NAMES),
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
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(CLASS_NAMES)))
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
