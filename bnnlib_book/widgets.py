"""ipywidgets panels for a live Jupyter or Colab kernel: the same exploration as the book's
charts, recomputed in Python. Notebooks import this module only when their ``interactive``
parameter is True; the built book never holds widget state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import pandas as pd
from IPython.display import display

from bnnlib_book import charts as report


def _matches(column: pd.Series, value: Any) -> pd.Series:
    if isinstance(value, float):
        return column.map(
            lambda v: isinstance(v, int | float) and math.isclose(v, value, rel_tol=1e-9)
        )
    return column == value


def curves_panel(
    df: pd.DataFrame,
    x: str = "epoch",
    y: str = "train_acc",
    sliders: Mapping[str, Sequence[Any] | None] | None = None,
    selects: Mapping[str, Sequence[Any] | None] | None = None,
    color: str | None = None,
    detail: str | None = None,
    title: str | None = None,
) -> widgets.VBox:
    """A slider per log-grid column (labelled with the value), a drop-down per categorical
    column, and the :func:`bnnlib_book.charts.curves_chart` of the chosen slice."""
    sliders = dict(sliders or {})
    selects = dict(selects or {})
    report.require_columns(df, [x, y, *sliders, *selects, *(c for c in (color, detail) if c)])
    controls: dict[str, widgets.Widget] = {}
    for column, values in sliders.items():
        grid = report.slider_values(df, column, values)
        controls[column] = widgets.SelectionSlider(
            options=[(report.format_value(v), v) for v in grid],
            value=grid[len(grid) // 2],
            description=column,
            continuous_update=False,
        )
    for column, options in selects.items():
        choices = list(df[column].dropna().unique()) if options is None else list(options)
        controls[column] = widgets.Dropdown(options=choices, value=choices[0], description=column)
    output = widgets.Output()

    def redraw(_: Any = None) -> None:
        mask = pd.Series(True, index=df.index)
        for column, control in controls.items():
            mask &= _matches(df[column], control.value)
        chosen = ", ".join(f"{c} = {report.format_value(w.value)}" for c, w in controls.items())
        heading = (title or f"{y} by {x}") + (f" · {chosen}" if chosen else "")
        output.clear_output(wait=True)
        with output:
            if mask.any():
                display(
                    report.curves_chart(
                        df[mask], x=x, y=y, color=color, detail=detail, title=heading
                    )
                )
            else:
                print(f"no runs for {chosen}")

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*controls.values(), output])


def reconstruction_panel(
    reconstructions: Mapping[str, Mapping[str, Mapping[str, Any]]], size: int = 128
) -> widgets.VBox:
    """Noisy input, output and clean target for a chosen model and best/median/worst image."""
    rows = report.reconstruction_rows(reconstructions)
    models = list(dict.fromkeys(r["model"] for r in rows))
    picks = [p for p in report.RECONSTRUCTION_PICKS if any(r["pick"] == p for r in rows)]
    model = widgets.Dropdown(options=models, value=models[0], description="model")
    pick = widgets.ToggleButtons(options=picks, value="median" if "median" in picks else picks[0])
    images = [
        widgets.Image(format="png", width=size, height=size) for _ in report.RECONSTRUCTION_KINDS
    ]
    labels = [widgets.Label(kind) for kind in report.RECONSTRUCTION_KINDS]
    caption = widgets.Label()

    def redraw(_: Any = None) -> None:
        example = reconstructions[model.value][pick.value]
        for image, kind in zip(images, report.RECONSTRUCTION_KINDS, strict=True):
            image.value = report.png_bytes(example[kind])
        caption.value = next(
            r["caption"] for r in rows if r["model"] == model.value and r["pick"] == pick.value
        )

    model.observe(redraw, names="value")
    pick.observe(redraw, names="value")
    redraw()
    columns = [widgets.VBox([label, image]) for label, image in zip(labels, images, strict=True)]
    return widgets.VBox([model, pick, widgets.HBox(columns), caption])
