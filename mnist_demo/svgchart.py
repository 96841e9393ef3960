"""A small line chart as an SVG string, for the live charts the dashboard redraws while a run
trains.

Why not Vega: the browser compiles and embeds a Vega-Lite spec from scratch on every update.
With the three live charts sent 1.2 times a second, headless Chromium on our 2-core machine
was busy 5.1 s of 8.2 s, against 1.4 s with the charts held still (bench/browser_profile.py),
and that CPU comes from the training's cores. An SVG string is parsed and laid out like any
other HTML. Vega still draws the charts that change once per run (Compare runs).

Pure functions, no Gradio and no torch. The element classes are Vega's own (`role-axis`,
`role-axis-title`, `role-axis-label`, `mark-line`, `mark-symbol`), so one reading of the page
serves both kinds of chart (the browser tests').
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, NamedTuple

WIDTH = 400  # viewBox units; the SVG scales to its box (about 1:1 in a desktop column)
MAX_SCALE = 1.25  # alone in a full-width row it would scale its text 2.5x: capped here
LEFT, RIGHT, BOTTOM = 52, 12, 34  # room for the y ticks and title, and the x ticks and title
FONT, SMALL = 11, 10
CHAR = 0.58 * FONT  # an average glyph's width, for laying out the legend


class SeriesStyle(NamedTuple):
    color: str
    dashed: bool = False
    dots_only: bool = False  # points never joined: nothing was measured between them


def nice_step(span: float, count: int = 5) -> float:
    """A 1, 2, 2.5 or 5 times a power of ten close to span / count (never 0)."""
    raw = max(span, 1e-12) / count
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)


def linear_ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = nice_step(high - low, count)
    first = math.ceil(low / step - 1e-9) * step
    n = int(math.floor((high - first) / step + 1e-9)) + 1
    return [round(first + i * step, 10) for i in range(max(n, 0))]


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten in [low, high]; with 2s and 5s when that gives fewer than three ticks."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks: list[float] = []
    for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        candidates = (float(f"{m * 10.0**d:.6g}") for d in decades for m in mantissas)
        ticks = [t for t in candidates if low * 0.999 <= t <= high * 1.001]
        if len(ticks) >= 3:
            break
    stride = -(-len(ticks) // 7)  # a diverged run's loss spans many decades: at most 7 ticks
    return ticks[::stride]


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def label(value: float) -> str:
    """A tick's text: up to 4 decimals, no trailing zeros; an exponent only beyond those."""
    if abs(value) >= 1e6 or 0 < abs(value) < 1e-3:  # a diverged loss, or a tiny one
        return f"{value:.3g}"
    text = f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return "0" if text in ("-0", "") else text


def _y_domain(values: Sequence[float], log_y: bool) -> tuple[float, float, list[float]]:
    low, high = min(values), max(values)
    if log_y:  # out to the nearest 1, 2 or 5 times a power of ten: no empty decades
        low, high = max(low, 1e-12), max(high, 1e-12)
        decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 2)
        steps = [m * 10.0**d for d in decades for m in (1, 2, 5)]
        low = max(t for t in steps if t <= low * 1.0001)
        high = min(t for t in steps if t >= high * 0.9999)
        if high <= low:
            high = steps[steps.index(low) + 1]
        return low, high, log_ticks(low, high)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    step = nice_step(high - low)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    return low, high, linear_ticks(low, high)


def _text(x: float, y: float, text: str, **attrs: Any) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{escape(text)}</text>'


def _dot(x: float, y: float, r: float) -> str:
    return f"M{x - r:.1f},{y:.1f}a{r},{r} 0 1,0 {2 * r},0a{r},{r} 0 1,0 {-2 * r},0"


def line_chart(
    rows: Sequence[Mapping[str, Any]],
    y: str,
    styles: Mapping[str, SeriesStyle],
    *,
    title: str,
    y_title: str,
    subtitle: str = "",
    log_y: bool = False,
    color: str = "series",
    height: int = 220,
    empty: str = "",
) -> str:
    """`rows` ({"epoch": x, y: value, color: series}) as one line per series against epochs,
    with `title`, axes, ticks and a legend; `empty` centred in the box when there are no rows.
    """
    values = [
        r for r in rows if _finite(r.get(y)) and _finite(r.get("epoch")) and (r[y] > 0 or not log_y)
    ]  # a diverged run's inf or NaN loss is left out, not drawn off the chart
    top = 24 + (14 if subtitle else 0)
    series = list(dict.fromkeys(r[color] for r in values))
    legend_rows, legend = _legend(series, styles, top + height + BOTTOM + 14)
    total = top + height + BOTTOM + 18 * legend_rows + 4
    right = WIDTH - RIGHT
    parts = [
        f'<svg class="marks live-chart" viewBox="0 0 {WIDTH} {total}" width="100%" role="img" '
        f'aria-label="{escape(title)}" style="color:var(--body-text-color,#1f2937);'
        f'font-family:inherit;font-size:{FONT}px;max-width:{WIDTH * MAX_SCALE:.0f}px">',
        _text(4, 15, title, font_size=13, font_weight=600, fill="currentColor"),
    ]
    if subtitle:
        parts.append(_text(4, 30, subtitle, font_size=SMALL, fill="currentColor", opacity=0.7))
    if not values:
        parts.append(
            _text(
                WIDTH / 2,
                top + height / 2,
                empty or "No data yet.",
                text_anchor="middle",
                font_size=13,
                fill="#6b7280",
            )
        )
        return "".join(parts) + "</svg>"

    x_high = max(max(r["epoch"] for r in values), 1e-3)
    x_ticks = [t for t in linear_ticks(0, x_high) if t <= x_high * 1.0001]
    y_low, y_high, y_ticks = _y_domain([r[y] for r in values], log_y)

    def px(x: float) -> float:
        return LEFT + (right - LEFT) * x / x_high

    def py(v: float) -> float:
        if log_y:
            share = (math.log10(v) - math.log10(y_low)) / (math.log10(y_high) - math.log10(y_low))
        else:
            share = (v - y_low) / (y_high - y_low)
        return top + height * (1 - share)

    bottom = top + height
    grid = "".join(
        f'<line x1="{LEFT}" x2="{right}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>' for t in y_ticks
    )
    parts.append(f'<g stroke="currentColor" stroke-opacity="0.12">{grid}</g>')
    parts.append(
        _axis(
            [(px(t), bottom + 14, label(t)) for t in x_ticks],
            "middle",
            "epoch",
            (LEFT + right) / 2,
            bottom + 29,
            0,
        )
    )
    parts.append(
        _axis(
            [(LEFT - 5, py(t) + 3.5, label(t)) for t in y_ticks],
            "end",
            y_title,
            11,
            top + height / 2,
            -90,
        )
    )
    clip = "clip-" + re.sub(r"\W+", "-", title.lower())  # one per chart in the page
    parts.append(
        f'<clipPath id="{clip}"><rect x="{LEFT - 6}" y="{top - 6}" '
        f'width="{right - LEFT + 12}" height="{height + 12}"/></clipPath>'
    )
    marks = [f'<g clip-path="url(#{clip})">']
    points = len(values) < 40
    for name in series:
        style = styles.get(name, SeriesStyle("#1f77b4"))
        mine = [r for r in values if r[color] == name]
        xy = [(px(r["epoch"]), py(r[y])) for r in mine]
        tag = f'data-series="{escape(name)}"'
        if not style.dots_only:
            path = "M" + "L".join(f"{a:.1f},{b:.1f}" for a, b in xy)
            dash = ' stroke-dasharray="6,3"' if style.dashed else ""
            marks.append(
                f'<g class="mark-line" {tag}><path d="{path}" fill="none" '
                f'stroke="{style.color}" stroke-width="2"{dash}/></g>'
            )
        if style.dots_only or points:
            r = 4.5 if style.dots_only else 2.5
            dots = "".join(
                f'<path d="{_dot(a, b, r)}"><title>{escape(name)}: {label(row[y])} at epoch '
                f"{label(row['epoch'])}</title></path>"
                for (a, b), row in zip(xy, mine, strict=True)
            )
            marks.append(f'<g class="mark-symbol" {tag} fill="{style.color}">{dots}</g>')
    parts.append("".join(marks) + "</g>")
    parts.append(legend)
    return "".join(parts) + "</svg>"


def _axis(
    ticks: list[tuple[float, float, str]],
    anchor: str,
    title: str,
    title_x: float,
    title_y: float,
    rotate: int,
) -> str:
    labels = "".join(_text(x, y, text, text_anchor=anchor) for x, y, text in ticks)
    turn = f' transform="rotate({rotate} {title_x:.1f} {title_y:.1f})"' if rotate else ""
    return (
        f'<g class="mark-group role-axis" fill="currentColor" font-size="{SMALL}">'
        f'<g class="role-axis-label">{labels}</g>'
        f'<g class="role-axis-title"{turn}>'
        f"{_text(title_x, title_y, title, text_anchor='middle', font_size=FONT)}</g></g>"
    )


def _legend(series: list[str], styles: Mapping[str, SeriesStyle], y: float) -> tuple[int, str]:
    """The legend's rows (wrapped to the width) and its SVG."""
    items, x, row = [], LEFT, 0
    for name in series:
        style = styles.get(name, SeriesStyle("#1f77b4"))
        width = 26 + CHAR * len(name) + 14
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, row = LEFT, row + 1
        cy = y + 18 * row
        if style.dots_only:
            swatch = f'<path d="{_dot(x + 9, cy - 4, 4)}" fill="{style.color}"/>'
        else:
            dash = ' stroke-dasharray="5,3"' if style.dashed else ""
            swatch = (
                f'<line x1="{x}" x2="{x + 18}" y1="{cy - 4}" y2="{cy - 4}" '
                f'stroke="{style.color}" stroke-width="2"{dash}/>'
            )
        items.append(swatch + _text(x + 24, cy, name, fill="currentColor"))
        x += width
    return (row + 1 if series else 0), f'<g class="legend">{"".join(items)}</g>'
