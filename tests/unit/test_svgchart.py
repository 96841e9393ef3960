"""The live charts' SVG (mnist_demo/svgchart.py via charts.line_svg): axes that read true,
series told apart, an empty state that says what will appear."""

from __future__ import annotations

import re

from support import chart_dots, chart_points

from mnist_demo import charts, svgchart
from mnist_demo.charts import TEST_ALL, TRAIN


def axis(svg: str, title: str) -> list[str]:
    """The tick labels of the axis titled `title`, as the page shows them."""
    for group in re.findall(r'<g class="mark-group role-axis".*?</g></g>', svg):
        if re.search(rf">{re.escape(title)}</text></g></g>$", group):
            labels = re.search(r'<g class="role-axis-label">(.*?)</g>', group).group(1)
            return re.findall(r">([^<]*)</text>", labels)
    raise AssertionError(f"no axis titled {title!r}")


def test_a_log_loss_axis_labels_real_loss_values_without_empty_decades():
    rows = [{"epoch": e / 10, "loss": 2.3 * 0.6**e, "series": "train loss"} for e in range(11)]
    svg = charts.line_svg(rows, "loss", title="Loss", y_title="loss", log_y=True)

    assert axis(svg, "loss") == ["0.01", "0.1", "1"]  # 0.014 to 2.3, no empty decade
    assert axis(svg, "epoch") == ["0", "0.2", "0.4", "0.6", "0.8", "1"]
    assert chart_points(svg) == {"train loss": 11}


def test_a_short_log_range_gets_twos_and_fives_and_linear_axes_get_round_steps():
    assert svgchart.log_ticks(0.1, 1) == [0.1, 0.2, 0.5, 1.0]
    assert svgchart.linear_ticks(0, 0.25) == [0, 0.05, 0.1, 0.15, 0.2, 0.25]
    assert [svgchart.label(v) for v in (0.005, 99.16, 0.25, 7000, 0.0)] == [
        "0.005",
        "99.16",
        "0.25",
        "7,000",
        "0",
    ]


def test_train_is_solid_the_sample_dashed_and_the_full_test_dots_only():
    rows = [
        {"epoch": 0.0, "accuracy": 12.6, "series": TEST_ALL},
        {"epoch": 0.5, "accuracy": 95.0, "series": TRAIN},
        {"epoch": 1.0, "accuracy": 98.0, "series": TRAIN},
        {"epoch": 0.5, "accuracy": 97.0, "series": charts.sample_label(590)},
        {"epoch": 1.0, "accuracy": 99.16, "series": TEST_ALL},
    ]
    svg = charts.line_svg(rows, "accuracy", title="Accuracy (%)", y_title="%")

    lines = dict(re.findall(r'data-series="([^"]*)"><path d="[^"]*" fill="none" ([^/]*)/>', svg))
    assert "stroke-dasharray" not in lines[TRAIN]
    assert "stroke-dasharray" in lines["test: 590-image sample"]
    assert TEST_ALL not in lines, "two full tests are never joined by a line"
    assert "test: all 10,000: 99.16 at epoch 1" in chart_dots(svg)
    assert chart_points(svg)[TEST_ALL] == 2
    assert svg.count(f">{TEST_ALL}</text>") == 1, "in the legend"


def test_an_empty_chart_says_what_will_appear_and_text_is_escaped():
    svg = charts.line_svg([], "loss", title="Loss <1>", y_title="loss", empty="Press Start & see")

    assert "Press Start &amp; see" in svg and "Loss &lt;1&gt;" in svg
    assert "role-axis" not in svg and "mark-line" not in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_one_point_and_a_flat_line_still_have_a_readable_axis():
    svg = charts.line_svg(
        [{"epoch": 0.01, "images/s": 5000, "series": "images/s"}],
        "images/s",
        title="Throughput",
        y_title="images/s",
    )
    ticks = axis(svg, "images/s")
    assert len(ticks) >= 2 and chart_points(svg) == {"images/s": 1}
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


def test_a_diverged_runs_loss_stays_on_a_readable_chart():
    rows = [
        {"epoch": 0.1 * i, "loss": loss, "series": "train loss"}
        for i, loss in enumerate([2.3, 40.0, 1e30, float("inf"), float("nan"), 3.0])
    ]
    svg = charts.line_svg(rows, "loss", title="Loss", y_title="loss", log_y=True)

    assert chart_points(svg) == {"train loss": 4}, "inf and NaN left out"
    assert 3 <= len(axis(svg, "loss")) <= 7
    assert "inf" not in svg.lower() and "nan" not in svg.lower()
