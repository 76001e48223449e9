"""The chapter's overlay figure: our first epochs over the BayesBiNN authors' logged runs.

Offline like :mod:`bnnlib_book.charts` (the data inline in the spec, the book's renderer).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from bnnlib_book.charts import require_columns

METHOD_COLOURS = {"BayesBiNN": "#1f77b4", "STE": "#ff7f0e"}


def _values(df: pd.DataFrame) -> alt.Data:
    return alt.Data(values=[{k: v for k, v in row.items()} for row in df.to_dict("records")])


def overlay_chart(
    band: pd.DataFrame,
    ours: pd.DataFrame,
    title: str,
    metric: str = "test_acc",
    y_title: str = "test accuracy (%)",
    width: int = 480,
    height: int = 300,
) -> alt.LayerChart:
    """The authors' min-max band (grey area) and mean (black line) per epoch from ``band``
    (columns epoch, mean, min, max), and our runs from ``ours`` (columns method, run, epoch,
    ``metric``) as one line with points per seed, coloured by method; accuracy in %."""
    require_columns(band, ["epoch", "mean", "min", "max"])
    require_columns(ours, ["method", "run", "epoch", metric])
    x = alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1))
    lows = [band["min"].min(), ours[metric].min()] if len(ours) else [band["min"].min()]
    highs = [band["max"].max(), ours[metric].max()] if len(ours) else [band["max"].max()]
    pad = 0.05 * (max(highs) - min(lows)) or 0.5
    y_scale = alt.Scale(domain=[float(min(lows) - pad), float(max(highs) + pad)], zero=False)
    area = (
        alt.Chart(_values(band))
        .mark_area(color="#bbbbbb", opacity=0.5)
        .encode(
            x=x,
            y=alt.Y("min:Q", title=y_title, scale=y_scale),
            y2="max:Q",
            tooltip=["epoch:Q", "min:Q", "max:Q"],
        )
    )
    mean = (
        alt.Chart(_values(band))
        .mark_line(color="black")
        .encode(x=x, y=alt.Y("mean:Q", title=y_title, scale=y_scale), tooltip=["epoch:Q", "mean:Q"])
    )
    methods = [m for m in METHOD_COLOURS if m in set(ours["method"])]
    runs = (
        alt.Chart(_values(ours))
        .mark_line(point=True, strokeWidth=1.5)
        .encode(
            x=x,
            y=alt.Y(f"{metric}:Q", title=y_title, scale=y_scale),
            color=alt.Color(
                "method:N",
                title="our runs",
                scale=alt.Scale(domain=methods, range=[METHOD_COLOURS[m] for m in methods]),
            ),
            detail="run:N",
            tooltip=["run:N", "epoch:Q", alt.Tooltip(f"{metric}:Q", format=".2f")],
        )
    )
    return alt.layer(area, mean, runs).properties(width=width, height=height, title=title)
