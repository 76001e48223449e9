"""Altair charts and result tables that the notebooks call.

Charts carry their data inline and are interactive without a kernel: a hyper-parameter that is
explored on a log grid (tau, gamma, sigma) gets a slider over the *index* of its sorted values, so
every step lands on a value that was run; the chart title shows the value, and in the built book
the slider's label shows it too (altair's own renderer, in Jupyter or Colab, shows the step). The
y-axis keeps one range while a slider moves, so curves compare by eye across its states. Axes are
titled with their units (:data:`AXIS_TITLES`), and accuracies are drawn in %. In the built book the
charts are drawn by the vendored vega scripts (:mod:`bnnlib_book.assets`).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image

from bnnlib_book.assets import CHART_CLASS

BOOK_RENDERER = "bnnlib-book"
RECONSTRUCTION_PICKS = ("best", "median", "worst")
RECONSTRUCTION_KINDS = ("noisy", "output", "clean")
COMPARISON_COLUMNS = (
    "result",
    "paper",
    "paper source",
    "ours",
    "profile",
    "dataset",
    "epochs",
    "hardware",
)

_CHART_SCRIPT = """<div class="{cls}"></div>
<script type="text/javascript">
(function (spec, embedOpt) {{
  var el = document.currentScript.previousElementSibling;
  if (typeof vegaEmbed === "undefined") {{
    el.textContent = "This chart is drawn by the vega scripts that the built book serves.";
    return;
  }}
  vegaEmbed(el, spec, embedOpt).then(function (result) {{
    el.vegaView = result.view;
    var labels = (spec.usermeta || {{}}).sliderLabels || {{}};
    Object.keys(labels).forEach(function (name) {{
      var input = el.querySelector('input[type=range][name="' + name + '"]');
      if (!input || !input.nextElementSibling) return;
      var shown = document.createElement("span");
      shown.className = "bnnlib-slider-value";
      input.nextElementSibling.style.display = "none";
      input.parentNode.appendChild(shown);
      var show = function (index) {{ shown.textContent = labels[name][index]; }};
      show(result.view.signal(name));
      result.view.addSignalListener(name, function (_, index) {{ show(index); }});
    }});
  }}).catch(function (err) {{
    el.textContent = "Chart error: " + err.message;
    throw err;
  }});
}})({spec}, {options});
</script>"""


# Titles, with units, of the record columns the pages plot; any other column is its own title.
AXIS_TITLES = {
    "epoch": "epoch",
    "step": "optimizer step",
    "train_acc": "train accuracy (%)",
    "test_acc": "test accuracy (%)",
    "val_acc": "validation accuracy (%)",
    "train_loss": "train loss",
    "flip_ratio": "flip ratio (fraction of binary weights flipped per step)",
    "flip_ratio_mean": "flip ratio (fraction of binary weights flipped per step)",
    "flip_fraction": "fraction of binary weights flipped",
    "after_task": "after training on task",
}
# Record columns that hold an accuracy as a fraction; charts draw them in %.
PERCENT_COLUMNS = ("train_acc", "test_acc", "val_acc")


def axis_title(column: str) -> str:
    """The axis title of ``column`` (:data:`AXIS_TITLES`, else the column's own name)."""
    return AXIS_TITLES.get(column, column)


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no early ``</script>``)."""
    return json.dumps(value, sort_keys=True).replace("</", "<\\/").replace("<!--", "<\\!--")


def _book_mimebundle(spec: dict, **metadata: Any) -> dict[str, str]:
    options = {"mode": "vega-lite", "actions": False}
    title = spec.get("usermeta", {}).get("yTitleExpr")
    if title is not None:  # vega-lite draws an expression title; altair's schema has no room for it
        spec = json.loads(json.dumps(spec))
        spec["encoding"]["y"]["title"] = {"expr": title}
    html = _CHART_SCRIPT.format(
        cls=CHART_CLASS, spec=_script_json(spec), options=_script_json(options)
    )
    return {"text/html": html}


_figures = {"numbered": False, "count": 0}


def use_renderer(interactive: bool, number_figures: bool = False) -> None:
    """Start a page: choose how charts display, altair's default renderer in a live Jupyter/Colab
    kernel (``interactive=True``) or HTML that the built book draws with its vendored scripts and
    no CDN (``interactive=False``, every params file). Tables show every character of a cell (the
    pages' source and evidence columns are sentences, which pandas would cut at 50). With
    ``number_figures`` every chart this module makes from here on is titled "Figure n. ...", n
    counting from 1 on the page (pages that number their figures by hand leave it off)."""
    alt.renderers.register(BOOK_RENDERER, _book_mimebundle)
    alt.renderers.enable("default" if interactive else BOOK_RENDERER)
    pd.set_option("display.max_colwidth", None)
    _figures.update(numbered=number_figures, count=0)


def _figure_title(title: str) -> str:
    """``title`` with the page's next figure number when figures are numbered."""
    if not _figures["numbered"]:
        return title
    _figures["count"] += 1
    return f"Figure {_figures['count']}. {title}"


def format_value(value: Any) -> str:
    """Short label for a hyper-parameter value: 1e-07 -> '1e-7', 0.001 -> '1e-3', 2.5e-05 ->
    '2.5e-5', 0.5 -> '0.5', 'bn' -> 'bn'."""
    if not isinstance(value, float | np.floating):
        return str(value)
    value = float(value)
    if value == 0.0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _field(column: str) -> str:
    """Vega-Lite reads '.' and '[' in a field name as nested access; flattened config columns
    such as 'hparams.threshold' are plain names."""
    return re.sub(r"([.\[\]\\])", r"\\\1", column)


def _param_name(column: str) -> str:
    return re.sub(r"\W", "_", column) + "_param"


def require_columns(df: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise a ValueError naming the first missing column and listing those present."""
    for column in columns:
        if column not in df.columns:
            raise ValueError(
                f"column {column!r} is not in the frame; columns: {sorted(df.columns)}"
            )


def _value_index(column: pd.Series, values: Sequence[Any]) -> pd.Series:
    """Position of each entry of ``column`` in ``values`` (-1 when absent); floats match with a
    relative tolerance because grid values round-trip through YAML and JSON."""

    def index_of(value: Any) -> int:
        for i, candidate in enumerate(values):
            if isinstance(candidate, float) and isinstance(value, int | float):
                if math.isclose(candidate, value, rel_tol=1e-9, abs_tol=0.0):
                    return i
            elif candidate == value:
                return i
        return -1

    return column.map(index_of)


def slider_values(df: pd.DataFrame, column: str, values: Sequence[Any] | None) -> list[Any]:
    """The sorted distinct values a slider steps through (``None``: those in ``df[column]``)."""
    chosen = df[column].dropna().unique().tolist() if values is None else list(values)
    if not chosen:
        raise ValueError(f"slider {column!r} has no values")
    return sorted({float(v) if isinstance(v, int | float) else v for v in chosen})


def curves_chart(
    df: pd.DataFrame,
    x: str = "epoch",
    y: str = "train_acc",
    sliders: Mapping[str, Sequence[Any] | None] | None = None,
    selects: Mapping[str, Sequence[Any] | None] | None = None,
    color: str | None = None,
    detail: str | None = None,
    title: str | None = None,
    y_scale: str = "linear",
    width: int = 480,
    height: int = 300,
    x_title: str | None = None,
    y_title: str | None = None,
    y_title_from: str | None = None,
    y_percent: bool = False,
    slider_start: Mapping[str, Any] | None = None,
) -> alt.Chart:
    """Line chart of ``y`` against ``x`` with kernel-free controls.

    ``sliders`` maps a column to the values to step through (None: the values in ``df``); each
    gets a slider over the index of the sorted values, starting in the middle or at the value
    ``slider_start`` gives for its column (e.g. the paper's). ``selects`` maps a
    column to drop-down options (None: the values in ``df``). Rows whose value is not offered are
    never shown. ``color`` and ``detail`` split lines (e.g. by norm, by run key).

    Axis titles default to :func:`axis_title`; ``y_title_from`` names a select whose chosen option
    titles the y-axis (a long frame with a "metric" column). ``y_percent`` draws a fraction in %
    (always done for :data:`PERCENT_COLUMNS`). With sliders, the y-axis range is that of every
    offered slider state, per state of the drop-downs.
    """
    sliders = dict(sliders or {})
    selects = dict(selects or {})
    used = [x, y, *sliders, *selects, *(c for c in (color, detail) if c)]
    require_columns(df, used)
    if y_title_from is not None and y_title_from not in selects:
        raise ValueError(
            f"y_title_from={y_title_from!r} must be one of the selects {sorted(selects)}"
        )

    data = df[list(dict.fromkeys(used))].copy()
    if y_percent or y in PERCENT_COLUMNS:
        data[y] = data[y] * 100
    params = []
    filters = []
    labels = []
    slider_labels: dict[str, list[str]] = {}
    for column, values in sliders.items():
        grid = slider_values(df, column, values)
        name = _param_name(column)
        index_column = f"{column}__index"
        data[index_column] = _value_index(data[column], grid)
        start = len(grid) // 2
        if slider_start and column in slider_start:
            start = int(_value_index(pd.Series([slider_start[column]]), grid).iloc[0])
            if start < 0:
                raise ValueError(
                    f"slider_start {slider_start[column]!r} for {column!r} is not one of {grid}"
                )
        params.append(
            alt.param(
                name=name,
                value=start,
                bind=alt.binding_range(min=0, max=len(grid) - 1, step=1, name=f"{column} "),
            )
        )
        filters.append(f"datum[{json.dumps(index_column)}] == {name}")
        slider_labels[name] = [format_value(v) for v in grid]
        labels.append(f"{json.dumps(column + ' = ')} + {json.dumps(slider_labels[name])}[{name}]")
    for param, expression in _drop_downs(df, selects):
        params.append(param)
        filters.append(expression)

    heading = _figure_title(title or f"{y} by {x}")
    title_text: Any = heading
    if labels:
        title_text = {"expr": f"{json.dumps(heading + ' · ')} + " + " + ', ' + ".join(labels)}

    y_axis_title = y_title or axis_title(y)
    usermeta: dict[str, Any] = {}
    if y_title_from is not None:
        options = selects[y_title_from]
        options = data[y_title_from].dropna().unique() if options is None else options
        y_axis_title = " / ".join(str(o) for o in options)
        usermeta["yTitleExpr"] = f"'' + {_param_name(y_title_from)}"
    scale: dict[str, Any] = {"type": y_scale}
    if sliders:
        domain = _fixed_domain(data, y, sliders, selects, log=y_scale == "log")
        if domain is not None:
            scale |= {"domain": domain, "nice": y_scale != "log"}
    encoding: dict[str, Any] = {
        "x": alt.X(field=_field(x), type="quantitative", title=x_title or axis_title(x)),
        "y": alt.Y(
            field=_field(y), type="quantitative", title=y_axis_title, scale=alt.Scale(**scale)
        ),
        "tooltip": [
            alt.Tooltip(field=_field(c), type="nominal" if c in (color, detail) else "quantitative")
            for c in dict.fromkeys([x, y, *(c for c in (color, detail) if c)])
        ],
    }
    if color:
        # Legend in the frame's order (a sorted grid of values stays sorted, not 1e-10, 1e-6, 1e-7).
        encoding["color"] = alt.Color(field=_field(color), type="nominal", title=color, sort=None)
    if detail:
        encoding["detail"] = alt.Detail(field=_field(detail), type="nominal")

    chart = alt.Chart(alt.Data(values=_records(data))).mark_line(point=True).encode(**encoding)
    if params:
        chart = chart.add_params(*params)
    for expression in filters:
        chart = chart.transform_filter(expression)
    chart = chart.properties(width=width, height=height, title=alt.TitleParams(text=title_text))
    if slider_labels:
        usermeta["sliderLabels"] = slider_labels
    if usermeta:
        chart = chart.properties(usermeta=usermeta)
    return chart


def _option_key(value: Any) -> str:
    """A select option as vega's ``'' + value`` writes it (the key of :func:`_fixed_domain`)."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _fixed_domain(
    data: pd.DataFrame,
    y: str,
    sliders: Mapping[str, Any],
    selects: Mapping[str, Sequence[Any] | None],
    *,
    log: bool,
) -> Any:
    """The y range over every offered slider state, per combination of the drop-downs' options
    (an expression that looks the range up from the chosen options); None when no row is drawn."""
    shown = data[np.logical_and.reduce([data[f"{c}__index"] >= 0 for c in sliders])]
    for column, options in selects.items():
        if options is not None:
            shown = shown[shown[column].isin(list(options))]
    shown = shown[shown[y].notna() & (shown[y] > 0 if log else True)]
    if shown.empty:
        return None
    overall = [float(shown[y].min()), float(shown[y].max())]
    if not selects:
        return overall
    table = {
        "|".join(_option_key(v) for v in (values if isinstance(values, tuple) else (values,))): [
            float(group[y].min()),
            float(group[y].max()),
        ]
        for values, group in shown.groupby(list(selects), sort=False)
    }
    key = " + '|' + ".join(f"('' + {_param_name(c)})" for c in selects)
    return {"expr": f"{json.dumps(table)}[{key}] || {json.dumps(overall)}"}


def _drop_downs(
    df: pd.DataFrame, selects: Mapping[str, Sequence[Any] | None]
) -> list[tuple[Any, str]]:
    """(parameter, filter expression) of a drop-down per column of ``selects``: its options
    (None: the values in ``df``), starting at the first."""
    out = []
    for column, options in selects.items():
        choices = list(df[column].dropna().unique()) if options is None else list(options)
        if not choices:
            raise ValueError(f"select {column!r} has no options")
        choices = [c.item() if isinstance(c, np.generic) else c for c in choices]
        name = _param_name(column)
        param = alt.param(
            name=name, value=choices[0], bind=alt.binding_select(options=choices, name=f"{column} ")
        )
        out.append((param, f"datum[{json.dumps(column)}] == {name}"))
    return out


def timeline_chart(
    df: pd.DataFrame,
    selects: Mapping[str, Sequence[Any] | None] | None = None,
    title: str = "Which layer is binary when",
    width: int = 480,
    height: int = 160,
) -> alt.Chart:
    """One bar per layer from the epoch it turns binary to the last epoch (``df`` as
    :func:`bnnlib_book.iterative.frames.timeline_frame` makes it: ``layer``, ``turn``,
    ``first epoch``, ``last epoch``), layers listed in the order they turn binary; ``selects``
    maps columns to drop-down options as in :func:`curves_chart`."""
    selects = dict(selects or {})
    used = ["layer", "turn", "first epoch", "last epoch", *selects]
    require_columns(df, used)
    data = df[list(dict.fromkeys(used))].copy()
    data["last epoch"] = data["last epoch"] + 1  # a bar covers its last epoch
    chart = (
        alt.Chart(alt.Data(values=_records(data)))
        .mark_bar()
        .encode(
            x=alt.X(field=_field("first epoch"), type="quantitative", title="epoch"),
            x2=alt.X2(field=_field("last epoch")),
            y=alt.Y(
                field="layer",
                type="nominal",
                title="layer (in the order it turns binary)",
                sort=alt.EncodingSortField(field="turn", order="ascending"),
            ),
            color=alt.Color(field="layer", type="nominal", title="layer"),
            tooltip=[
                alt.Tooltip(field="layer", type="nominal"),
                alt.Tooltip(field=_field("first epoch"), type="quantitative"),
            ],
        )
    )
    params, filters = [], []
    for param, expression in _drop_downs(df, selects):
        params.append(param)
        filters.append(expression)
    if params:
        chart = chart.add_params(*params)
    for expression in filters:
        chart = chart.transform_filter(expression)
    return chart.properties(width=width, height=height, title=_figure_title(title))


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> null, numpy scalars -> Python) to embed in a spec."""
    return json.loads(df.to_json(orient="records", double_precision=15))


def png_bytes(image: Any) -> bytes:
    """PNG encoding of an HxW or HxWx{1,3} uint8 image given as an array or nested lists."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        if array.size and (
            array.min() < 0 or array.max() > 255 or not np.all(array == np.round(array))
        ):
            raise ValueError(f"image values must be integers in [0, 255], got dtype {array.dtype}")
        array = array.astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"image must be HxW or HxWx3, got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(image: Any) -> str:
    """A ``data:`` URL so the image travels inside the chart spec."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def reconstruction_rows(
    reconstructions: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> list[dict]:
    """One row per (model, pick, kind) from ``{model label: record.extras["reconstructions"]}``."""
    rows = []
    for model, picks in reconstructions.items():
        unknown = set(picks) - set(RECONSTRUCTION_PICKS)
        if unknown:
            raise ValueError(
                f"model {model!r}: unknown reconstruction picks {sorted(unknown)}; "
                f"valid: {list(RECONSTRUCTION_PICKS)}"
            )
        for pick, example in picks.items():
            missing = [
                k for k in (*RECONSTRUCTION_KINDS, "psnr_peak1", "psnr_peak2") if k not in example
            ]
            if missing:
                raise ValueError(f"model {model!r}, pick {pick!r}: missing keys {missing}")
            caption = (
                f"{model}, {pick} test image #{example.get('index', '?')}: "
                f"PSNR {example['psnr_peak1']:.2f} dB (peak 1), {example['psnr_peak2']:.2f} dB (peak-to-peak 2)"
            )
            for kind in RECONSTRUCTION_KINDS:
                rows.append(
                    {
                        "model": model,
                        "pick": pick,
                        "kind": kind,
                        "url": png_data_url(example[kind]),
                        "caption": caption,
                    }
                )
    if not rows:
        raise ValueError("no reconstructions given")
    return rows


def reconstruction_chart(
    reconstructions: Mapping[str, Mapping[str, Mapping[str, Any]]], size: int = 192
) -> alt.LayerChart:
    """Noisy input, model output and clean target side by side, with a model selector and a
    best/median/worst switch (test images ranked by PSNR)."""
    rows = reconstruction_rows(reconstructions)
    models = list(dict.fromkeys(r["model"] for r in rows))
    picks = [p for p in RECONSTRUCTION_PICKS if any(r["pick"] == p for r in rows)]
    model = alt.param(
        name="model_param", value=models[0], bind=alt.binding_select(options=models, name="model ")
    )
    pick = alt.param(
        name="pick_param",
        value="median" if "median" in picks else picks[0],
        bind=alt.binding_radio(options=picks, name="test image "),
    )
    panel = size + 12
    base = (
        alt.Chart(alt.Data(values=rows))
        .transform_filter("datum.model == model_param")
        .transform_filter("datum.pick == pick_param")
    )
    images = base.mark_image(width=size, height=size, smooth=False).encode(
        x=alt.X(
            "kind:N",
            sort=list(RECONSTRUCTION_KINDS),
            title=None,
            axis=alt.Axis(orient="top", labelAngle=0, ticks=False, domain=False),
        ),
        y=alt.value(panel / 2),
        url="url:N",
    )
    caption = (
        base.transform_filter("datum.kind == 'output'")
        .mark_text(baseline="top")
        .encode(x=alt.value(3 * panel / 2), y=alt.value(panel + 4), text="caption:N")
    )
    return (
        alt.layer(images, caption)
        .add_params(model, pick)
        .properties(
            width=3 * panel,
            height=panel + 24,
            title=_figure_title("Noisy input, output and clean image of a test image"),
        )
    )


def _hardware_label(hardware: Any) -> str:
    if isinstance(hardware, Mapping):
        return ", ".join(str(v) for v in hardware.values() if v not in (None, ""))
    return str(hardware)


def comparison_row(
    result: str,
    record: Any,
    metric: str,
    paper: Any,
    paper_source: str,
) -> dict[str, Any]:
    """One table row: the paper's value and where it is reported beside ours, with the profile,
    data set, epochs and hardware of the run record that produced ours."""
    if metric not in record.final:
        raise ValueError(
            f"metric {metric!r} is not in the record's final metrics: {sorted(record.final)}"
        )
    provenance = record.provenance
    return {
        "result": result,
        "paper": paper,
        "paper source": paper_source,
        "ours": record.final[metric],
        "profile": record.config.get("profile"),
        "dataset": provenance.get("dataset_label", provenance.get("dataset")),
        "epochs": provenance.get("epochs"),
        "hardware": _hardware_label(provenance.get("hardware")),
    }


def comparison_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Paper-versus-ours table indexed by result, with the columns of :data:`COMPARISON_COLUMNS`."""
    rows = list(rows)
    for row in rows:
        unknown = set(row) - set(COMPARISON_COLUMNS)
        missing = set(COMPARISON_COLUMNS) - set(row)
        if unknown or missing:
            raise ValueError(
                f"comparison row {row.get('result')!r}: unknown keys {sorted(unknown)}, "
                f"missing keys {sorted(missing)}; columns: {list(COMPARISON_COLUMNS)}"
            )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).set_index("result")
