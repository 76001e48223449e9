"""bnnlib_book.charts chart specs and tables, and the bnnlib_book.widgets panels (no browser needed)."""

from __future__ import annotations

import io
import json

import altair as alt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bnnlib.experiment.records import RunRecord
from bnnlib_book import charts as report
from bnnlib_book.assets import CHART_CLASS, vendored


@pytest.fixture
def curves() -> pd.DataFrame:
    rows = []
    for threshold in (1e-8, 1e-7, 1e-6):
        for norm in ("bn", "ln"):
            for epoch in (1, 2):
                rows.append(
                    {
                        "epoch": epoch,
                        "train_acc": threshold * 1e8 + epoch,
                        "hparams.threshold": threshold,
                        "norm": norm,
                        "note": None,
                    }
                )
    return pd.DataFrame(rows)


def test_vendored_vega_matches_altair() -> None:
    libraries = vendored()
    assert libraries["vega-lite"]["version"] == alt.VEGALITE_VERSION
    assert libraries["vega"]["version"].split(".")[0] == alt.VEGA_VERSION.split(".")[0]
    assert libraries["vega-embed"]["version"].split(".")[0] == alt.VEGAEMBED_VERSION.split(".")[0]


def test_curves_chart_embeds_data_and_indexes_the_slider(curves: pd.DataFrame) -> None:
    thresholds = [1.0e-6, float("1e-8"), 1e-7 * (1 + 1e-12)]
    spec = report.curves_chart(
        curves, sliders={"hparams.threshold": thresholds}, selects={"norm": None}, color="norm"
    ).to_dict()
    assert "url" not in spec["data"]
    values = spec["data"]["values"]
    assert len(values) == len(curves)
    index = {row["hparams.threshold"]: row["hparams.threshold__index"] for row in values}
    assert index == {1e-8: 0, 1e-7: 1, 1e-6: 2}
    slider, select = spec["params"]
    assert slider["bind"] == {
        "input": "range",
        "min": 0,
        "max": 2,
        "step": 1,
        "name": "hparams.threshold ",
    }
    assert spec["usermeta"] == {"sliderLabels": {slider["name"]: ["1e-8", "1e-7", "1e-6"]}}
    assert slider["value"] == 1
    assert select["bind"]["options"] == ["bn", "ln"] and select["value"] == "bn"
    assert spec["encoding"]["x"]["field"] == "epoch"
    assert '["1e-8", "1e-7", "1e-6"][' in spec["title"]["text"]["expr"]
    filters = [t["filter"] for t in spec["transform"]]
    assert filters == [
        f'datum["hparams.threshold__index"] == {slider["name"]}',
        f'datum["norm"] == {select["name"]}',
    ]


def test_accuracy_is_drawn_in_percent_with_titled_axes(curves: pd.DataFrame) -> None:
    spec = report.curves_chart(curves, y="train_acc").to_dict()
    assert [r["train_acc"] for r in spec["data"]["values"]] == pytest.approx(
        list(curves["train_acc"] * 100)
    )
    assert spec["encoding"]["y"]["title"] == "train accuracy (%)"
    assert spec["encoding"]["x"]["title"] == "epoch"
    curves["score"] = curves["train_acc"] / 100
    spec = report.curves_chart(curves, y="score", y_percent=True, y_title="score (%)").to_dict()
    assert spec["data"]["values"][0]["score"] == pytest.approx(curves["train_acc"][0])
    assert spec["encoding"]["y"]["title"] == "score (%)"


def test_y_title_follows_a_select(curves: pd.DataFrame) -> None:
    spec = report.curves_chart(
        curves, y="train_acc", selects={"norm": None}, y_title_from="norm"
    ).to_dict()
    assert spec["encoding"]["y"]["title"] == "bn / ln"
    assert spec["usermeta"]["yTitleExpr"] == "'' + norm_param"
    with pytest.raises(ValueError, match="y_title_from='metric' must be one of the selects"):
        report.curves_chart(curves, y="train_acc", y_title_from="metric")


def test_y_range_stays_fixed_across_slider_states(curves: pd.DataFrame) -> None:
    curves.loc[curves["norm"] == "ln", "train_acc"] *= 10
    spec = report.curves_chart(curves, sliders={"hparams.threshold": None}).to_dict()
    assert spec["encoding"]["y"]["scale"]["domain"] == pytest.approx([200.0, 102000.0])
    spec = report.curves_chart(
        curves, sliders={"hparams.threshold": [1e-8, 1e-7]}, selects={"norm": None}
    ).to_dict()
    expr = spec["encoding"]["y"]["scale"]["domain"]["expr"]
    table, fallback = expr.split("[('' + norm_param)] || ")
    assert json.loads(table) == {"bn": [200.0, 1200.0], "ln": [2000.0, 12000.0]}
    assert json.loads(fallback) == [200.0, 12000.0]


def test_a_slider_can_start_at_a_chosen_value(curves: pd.DataFrame) -> None:
    spec = report.curves_chart(
        curves, sliders={"hparams.threshold": None}, slider_start={"hparams.threshold": 1e-8}
    ).to_dict()
    assert spec["params"][0]["value"] == 0
    with pytest.raises(ValueError, match="slider_start 0.5 for 'hparams.threshold' is not one"):
        report.curves_chart(
            curves, sliders={"hparams.threshold": None}, slider_start={"hparams.threshold": 0.5}
        )


def test_figures_are_numbered_per_page_when_asked(curves: pd.DataFrame) -> None:
    report.use_renderer(interactive=True, number_figures=True)
    try:
        first = report.curves_chart(curves, title="a").to_dict()["title"]["text"]
        second = report.curves_chart(curves, sliders={"hparams.threshold": None}, title="b")
        assert first == "Figure 1. a"
        assert second.to_dict()["title"]["text"]["expr"].startswith('"Figure 2. b')
        report.use_renderer(interactive=True, number_figures=True)
        assert report.curves_chart(curves, title="c").to_dict()["title"]["text"] == "Figure 1. c"
    finally:
        report.use_renderer(interactive=True)
    assert report.curves_chart(curves, title="d").to_dict()["title"]["text"] == "d"


def test_values_not_offered_are_never_shown(curves: pd.DataFrame) -> None:
    spec = report.curves_chart(curves, sliders={"hparams.threshold": [1e-8, 1e-6]}).to_dict()
    kept = {r["hparams.threshold"]: r["hparams.threshold__index"] for r in spec["data"]["values"]}
    assert kept[1e-7] == -1 and kept[1e-8] == 0 and kept[1e-6] == 1


def test_dotted_columns_are_escaped_for_vega_lite(curves: pd.DataFrame) -> None:
    spec = report.curves_chart(curves, x="hparams.threshold", y="train_acc").to_dict()
    assert spec["encoding"]["x"]["field"] == "hparams\\.threshold"


def test_unknown_column_is_named(curves: pd.DataFrame) -> None:
    with pytest.raises(
        ValueError, match="column 'test_acc' is not in the frame; columns: .*'train_acc'"
    ):
        report.curves_chart(curves, y="test_acc")


def test_book_renderer_emits_offline_html(curves: pd.DataFrame) -> None:
    curves["norm"] = "</script><script>alert(1)</script>"
    chart = report.curves_chart(curves, color="norm")
    report.use_renderer(interactive=False)
    try:
        bundle = chart._repr_mimebundle_()
    finally:
        report.use_renderer(interactive=True)
    html = bundle["text/html"] if isinstance(bundle, dict) else bundle[0]["text/html"]
    assert f'<div class="{CHART_CLASS}"></div>' in html
    assert html.count("</script>") == 1
    assert "src=" not in html and "cdn" not in html
    payload = html.split("})(", 1)[1].rsplit(");", 1)[0]
    spec = json.loads("[" + payload.replace("<\\/", "</") + "]")[0]
    assert spec["data"]["values"][0]["norm"] == "</script><script>alert(1)</script>"


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (1e-7, "1e-7"),
        (1e-3, "1e-3"),
        (2.5e-5, "2.5e-5"),
        (0.5, "0.5"),
        (0.0, "0"),
        ("bn", "bn"),
        (3, "3"),
    ],
)
def test_format_value(value: object, label: str) -> None:
    assert report.format_value(value) == label


def test_png_bytes_round_trip() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(report.png_bytes(rgb.tolist())))), rgb)
    gray = rgb[:, :, :1]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(report.png_bytes(gray)))), gray[:, :, 0])
    with pytest.raises(ValueError, match="HxW or HxWx3"):
        report.png_bytes(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        report.png_bytes([[300, 1]])


def reconstructions(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i, pick in enumerate(("best", "median", "worst")):
        images = {
            k: rng.integers(0, 256, size=(4, 4, 3)).tolist() for k in report.RECONSTRUCTION_KINDS
        }
        out[pick] = {"index": i, "psnr_peak1": 30.0 - i, "psnr_peak2": 36.02 - i, **images}
    return out


def test_reconstruction_chart_rows_and_controls() -> None:
    spec = report.reconstruction_chart(
        {"AE+Adam": reconstructions(0), "BAE+Bop": reconstructions(1)}
    ).to_dict()
    rows = spec["data"]["values"]
    assert len(rows) == 2 * 3 * 3
    assert all(r["url"].startswith("data:image/png;base64,") for r in rows)
    assert {r["caption"] for r in rows if r["model"] == "BAE+Bop" and r["pick"] == "worst"} == {
        "BAE+Bop, worst test image #2: PSNR 28.00 dB (peak 1), 34.02 dB (peak-to-peak 2)"
    }
    params = {p["name"]: p for p in spec["params"]}
    assert params["model_param"]["bind"]["options"] == ["AE+Adam", "BAE+Bop"]
    assert params["pick_param"]["bind"]["options"] == ["best", "median", "worst"]
    assert params["pick_param"]["value"] == "median"


def test_reconstruction_input_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown reconstruction picks \\['top'\\]"):
        report.reconstruction_rows({"m": {"top": reconstructions(0)["best"]}})
    broken = reconstructions(0)
    del broken["best"]["clean"]
    with pytest.raises(ValueError, match="missing keys \\['clean'\\]"):
        report.reconstruction_rows({"m": broken})


def record(profile: str = "cpu") -> RunRecord:
    return RunRecord(
        key="abc",
        config={"profile": profile, "model": "binarynet"},
        history=[],
        final={"test_acc": 0.8123},
        provenance={"dataset_label": "MNIST", "epochs": 3, "hardware": "CPU x, 2 cores"},
    )


def test_comparison_table_puts_paper_beside_ours() -> None:
    table = report.comparison_table(
        [report.comparison_row("BinaryNet, Bop", record(), "test_acc", 0.9121, "Table 2 [P1]")]
    )
    assert table.index.tolist() == ["BinaryNet, Bop"]
    assert table.loc["BinaryNet, Bop"].to_dict() == {
        "paper": 0.9121,
        "paper source": "Table 2 [P1]",
        "ours": 0.8123,
        "profile": "cpu",
        "dataset": "MNIST",
        "epochs": 3,
        "hardware": "CPU x, 2 cores",
    }
    with pytest.raises(ValueError, match="metric 'test_top5' is not in the record's final metrics"):
        report.comparison_row("x", record(), "test_top5", 1.0, "s")
    with pytest.raises(ValueError, match="missing keys \\['epochs'"):
        report.comparison_table([{k: 1 for k in report.COMPARISON_COLUMNS if k != "epochs"}])


def test_curves_panel_steps_through_values(curves: pd.DataFrame) -> None:
    from bnnlib_book import widgets

    panel = widgets.curves_panel(
        curves, sliders={"hparams.threshold": None}, selects={"norm": None}
    )
    slider, dropdown, output = panel.children
    assert [label for label, _ in slider.options] == ["1e-8", "1e-7", "1e-6"]
    assert slider.value == 1e-7 and dropdown.value == "bn"
    slider.value = 1e-6
    dropdown.value = "ln"
    with pytest.raises(ValueError, match="column 'nope'"):
        widgets.curves_panel(curves, y="nope")


def test_reconstruction_panel_switches_images() -> None:
    from bnnlib_book import widgets

    data = {"AE": reconstructions(0), "BAE": reconstructions(1)}
    panel = widgets.reconstruction_panel(data)
    model, pick, images, caption = panel.children
    shown = [column.children[1].value for column in images.children]
    assert shown == [report.png_bytes(data["AE"]["median"][k]) for k in report.RECONSTRUCTION_KINDS]
    model.value = "BAE"
    pick.value = "worst"
    shown = [column.children[1].value for column in images.children]
    assert shown == [report.png_bytes(data["BAE"]["worst"][k]) for k in report.RECONSTRUCTION_KINDS]
    assert caption.value.startswith("BAE, worst test image #2")


def test_timeline_chart_bars_cover_each_binary_layer_and_its_drop_down_filters_runs():
    frame = pd.DataFrame(
        {
            "run": ["forward", "forward", "reverse"],
            "layer": ["fc1", "fc2", "fc2"],
            "turn": [1, 2, 1],
            "first epoch": [1, 3, 1],
            "last epoch": [4, 4, 4],
        }
    )
    spec = report.timeline_chart(frame, selects={"run": None}).to_dict()
    rows = spec["data"]["values"]
    assert [r["last epoch"] for r in rows] == [5, 5, 5]  # a bar covers its last epoch
    assert spec["encoding"]["y"]["sort"]["field"] == "turn"
    (param,) = spec["params"]
    assert param["bind"]["options"] == ["forward", "reverse"] and param["value"] == "forward"
    assert any('datum["run"]' in t["filter"] for t in spec["transform"])
    with pytest.raises(ValueError, match="has no options"):
        report.timeline_chart(frame, selects={"run": []})
