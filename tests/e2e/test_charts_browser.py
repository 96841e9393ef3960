"""Every chart tells the truth for every run: the idle Train tab, a quarter-epoch run, the
one-epoch default and a 3-epoch run, their twin-axis figures, Compare runs with a line for each,
and the chosen Draw model after a restart.

The runs are real training with the default (fast) settings: the quarter and the one-epoch
run on all of MNIST's training images (~10 s an epoch alone on 2 cores; several times that on
a shared machine, where the niced training thread yields), the 3-epoch run on the first 12,000
of them, so that it costs what 0.6 of an epoch does. Every run is tested on all 10,000 test
images. Screenshots land in artifacts/screenshots/charts-*.png; look at them.
"""

from __future__ import annotations

import re

import pytest
from pages import open_app
from support import TRAINING_ARGS, launch

from mnist_demo import data
from mnist_demo.data import Split

pytestmark = pytest.mark.e2e

FIGURE_LOADED = "(document.querySelector('#tutorial-figure img') || {}).naturalWidth > 0"
RUNS = ((0.25, "quarter", None), (1, "one-epoch", None), (3, "three-epochs", 12_000))


def wait_text(page, selector: str, text: str, timeout: float = 30_000) -> None:
    page.wait_for_function(
        f"(document.querySelector('{selector}') || {{}}).textContent?.includes({text!r})",
        timeout=timeout,
    )


def axis_labels(page, elem_id: str, title: str) -> list[str]:
    """The labelled ticks of the Vega axis titled `title` in a chart (its SVG text)."""
    return page.evaluate(
        """([id, title]) => [...document.querySelectorAll(`#${id} .role-axis`)]
          .filter((axis) => axis.querySelector('.role-axis-title')?.textContent === title)
          .flatMap((axis) => [...axis.querySelectorAll('.role-axis-label text')]
            .map((t) => t.textContent).filter(Boolean))""",
        [elem_id, title],
    )


def marks(page, elem_id: str) -> int:
    """Drawn lines and dots in a Vega chart: > 0 means measured data is shown."""
    return page.evaluate(
        f"document.querySelectorAll('#{elem_id} .mark-line path, #{elem_id} .mark-symbol path')"
        ".length"
    )


def train(app, page, epochs: float) -> dict:
    """A run of the default settings started as the Start button does; wait for its end."""
    message = app.dashboard.train.start("fast", **{**TRAINING_ARGS, "epochs": epochs})
    assert message.endswith("started."), message
    assert app.dashboard.job.wait(300), "the run did not end"
    snap = app.dashboard.job.snapshot().as_dict()
    wait_text(page, "#status", f"Finished · run {snap['run_id']} ·")  # this run's, in the page
    return snap


def test_every_run_length_draws_real_curves_compare_runs_and_a_draw_model_that_stays(
    browser, screenshots, tmp_path, mnist, monkeypatch
):
    runs_dir = tmp_path / "runs"
    app = launch(runs_dir)
    try:
        page = open_app(browser, app.url)
        # Idle: the Draw model's own training curves and figure, never blank boxes.
        wait_text(page, "#loss-plot", "How the shipped improved checkpoint learned")
        page.wait_for_function(FIGURE_LOADED, timeout=30_000)
        assert marks(page, "loss-plot") > 0 and marks(page, "acc-plot") > 0
        wait_text(page, "#speed-plot", "Press Start")
        page.screenshot(path=screenshots / "charts-idle.png", full_page=True)

        for epochs, name, train_images in RUNS:
            if train_images:  # the training thread loads the data when its run starts
                train_split, test_split = mnist
                part = Split(train_split.images[:train_images], train_split.labels[:train_images])
                splits = (part, test_split)
                monkeypatch.setattr(data, "load_mnist", lambda data_dir=None, s=splits: s)
            snap = train(app, page, epochs)
            monkeypatch.undo()
            probes = [r for r in snap["records"] if r["kind"] == "probe"]
            assert len(probes) >= 8, f"{name}: a test curve of real points"
            # the last one at the run's end: 58 steps of 234.4 make 0.2475 of an epoch
            assert max(p["epochs_done"] for p in probes) == pytest.approx(epochs, abs=0.005)
            wait_text(page, "#acc-plot", "sample")
            wait_text(page, "#acc-plot", "all 10,000")
            # the run's own figure (the idle one was the Draw model's): its file name says so
            page.wait_for_function(
                f"{FIGURE_LOADED} && document.querySelector('#tutorial-figure img').src"
                f".includes('run-{snap['run_id']}-')",
                timeout=30_000,
            )
            loss_ticks = axis_labels(page, "loss-plot", "loss")
            assert loss_ticks and all(float(t) > 0 for t in loss_ticks), (
                f"{name}: loss values on a log axis, not log10 values: {loss_ticks}"
            )
            assert marks(page, "acc-plot") > 0 and marks(page, "loss-plot") > 0
            page.locator("#status").scroll_into_view_if_needed()
            page.screenshot(path=screenshots / f"charts-{name}.png", full_page=True)

        page.locator("#compare").get_by_text("Compare runs").click()
        for run in ("#1", "#2", "#3"):
            wait_text(page, "#history-plot", run)
            wait_text(page, "#history-loss-plot", run)
        page.locator("#history-table").wait_for(state="visible")
        table = page.inner_text("#history-table")
        for done in ("0.25 of 0.25", "1 of 1", "3 of 3"):
            assert done in table, f"{done} epochs in the table"
        ticks = axis_labels(page, "history-plot", "epoch")
        assert ticks and all(len(t) <= 4 for t in ticks), f"readable epoch ticks: {ticks}"
        assert all(float(t) > 0 for t in axis_labels(page, "history-loss-plot", "loss"))
        page.locator("#compare").scroll_into_view_if_needed()
        page.screenshot(path=screenshots / "charts-compare.png", full_page=True)
        page.locator("#run-pick input").click()
        page.get_by_role("option", name=re.compile(r"^#1 tutorial, 0\.25 epochs")).click()
        for button in ("#run-checkpoint", "#run-csv", "#run-figure"):
            page.locator(button).wait_for(state="visible", timeout=15_000)
        page.screenshot(path=screenshots / "charts-compare-downloads.png", full_page=True)

        # The Draw model: the newest run was adopted; choose the quarter-epoch run instead.
        page.get_by_role("tab", name="Draw").click()
        page.locator("#draw-pick input").click()
        page.get_by_role("option", name=re.compile(r"^run-1-tutorial \(tutorial")).click()
        wait_text(page, "#draw-pick-message", "run-1-tutorial")
        assert app.dashboard.predictor.version.label == "saved run run-1-tutorial"
        page.screenshot(path=screenshots / "charts-draw-model-chosen.png", full_page=True)
    finally:
        app.close()

    restarted = launch(runs_dir)  # the same runs folder: a restart
    try:
        assert restarted.dashboard.predictor.version.label == "saved run run-1-tutorial"
        page = open_app(browser, restarted.url)
        page.get_by_role("tab", name="Draw").click()
        page.wait_for_function(
            "(document.querySelector('#draw-pick input') || {}).value?.startsWith("
            "'run-1-tutorial')",
            timeout=30_000,
        )
        page.screenshot(path=screenshots / "charts-draw-model-after-restart.png", full_page=True)
    finally:
        restarted.close()
