"""The in-epoch test curve: a fixed, balanced test sample tested at regular fractions of an
epoch, so every run (a quarter epoch included) draws a test curve of real points."""

from __future__ import annotations

import pytest
import torch

from mnist_demo import training
from mnist_demo.records import of_kind
from mnist_demo.training import MIN_TEST_POINTS, _probe_steps, train


def test_the_sample_is_fixed_balanced_and_in_the_splits_order(mnist):
    _, test = mnist
    idx = test.stratified(500)
    assert torch.equal(idx, test.stratified(500)), "the same images every time"
    assert torch.bincount(test.labels[idx], minlength=10).tolist() == [50] * 10
    assert torch.all(idx[1:] > idx[:-1])


@pytest.mark.parametrize(
    ("steps_per_epoch", "epochs", "every"),
    [(234, 1, 1 / 8), (234, 0.25, 1 / 32), (234, 3, 1 / 4), (937, 20, 1 / 4), (234, 2, 1 / 4)],
)
def test_probes_sit_at_regular_fractions_and_give_every_run_enough_points(
    steps_per_epoch, epochs, every
):
    total = round(steps_per_epoch * epochs)
    at = sorted(_probe_steps(steps_per_epoch, total))
    expected = [round(j * every * steps_per_epoch) for j in range(1, round(1 / every))]
    assert at == expected
    in_run = sum(1 for e in range(int(epochs) + 1) for s in at if e * steps_per_epoch + s < total)
    epoch_ends = max(1, int(epochs))
    assert 1 + in_run + epoch_ends >= MIN_TEST_POINTS  # untrained + probes + full tests


def test_a_short_run_records_a_test_curve_of_real_points(tiny_mnist, make_config):
    # tiny data: 10 steps of 256 per epoch, a 500-image test split (~50 per digit)
    result = train(make_config(epochs=1, probe_images=100, log_every=5), test_first=True)

    probes = of_kind(result.history, "probe")
    assert [p["step"] for p in probes] == [0, 1, 2, 4, 5, 6, 8, 9, 10]  # 0, eighths, the end
    assert [p["epochs_done"] for p in probes] == [0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.0]
    assert all(p["images"] == 100 for p in probes)
    assert all(p["seconds"] > 0 for p in probes[:-1]), "the untrained and in-epoch passes"
    assert probes[-1]["seconds"] == 0, "read from the epoch's full pass"
    assert "test_accuracy" not in result.history[0], "chance level needs no 10,000 images"
    assert probes[0]["test_accuracy"] < 40 < probes[-1]["test_accuracy"]
    kinds = [r["kind"] for r in result.history]
    assert kinds.index("epoch") == len(kinds) - 1, "the sample's end point comes first"


def test_the_free_end_point_equals_testing_the_sample_alone(tiny_mnist, make_config):
    result = train(make_config(epochs=1, probe_images=100), test_first=True)
    _, test = tiny_mnist
    idx = test.stratified(100)
    alone = training.test_pass(result.model, training.Split(test.images[idx], test.labels[idx]))
    end = of_kind(result.history, "probe")[-1]
    assert end["test_accuracy"] == pytest.approx(alone.accuracy)
    assert end["test_loss"] == pytest.approx(alone.loss, rel=1e-4)


def test_probing_changes_nothing_in_the_training(tiny_mnist, make_config):
    with_probes = train(make_config(max_steps=8, log_every=2, probe_images=100))
    without = train(make_config(max_steps=8, log_every=2, probe_images=0))
    losses = [[r["loss"] for r in of_kind(run.history, "step")] for run in (with_probes, without)]
    assert losses[0] == losses[1]
    assert not of_kind(without.history, "probe")
    for a, b in zip(with_probes.model.parameters(), without.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_probe_images_is_validated(make_config):
    with pytest.raises(training.ConfigError, match="probe_images"):
        make_config(probe_images=-1)


def test_a_probe_runs_on_one_cpu_thread_and_training_keeps_its_threads(
    tiny_mnist, make_config, monkeypatch
):
    """A few hundred images gain nothing from a second thread, which only waits at each op's
    barrier (bench/probe_threads.py); the training steps keep the configured threads."""
    threads_seen: list[tuple[int, int]] = []  # (images tested, threads while testing)
    real_test_pass = training.test_pass

    def spy(model, split, *args, **kwargs):
        threads_seen.append((len(split), torch.get_num_threads()))
        return real_test_pass(model, split, *args, **kwargs)

    monkeypatch.setattr(training, "test_pass", spy)
    before = torch.get_num_threads()
    try:
        train(make_config(epochs=1, probe_images=100, threads=2))
        assert torch.get_num_threads() == 2, "the run's own setting, restored after each probe"
    finally:
        torch.set_num_threads(before)
    probes = [threads for images, threads in threads_seen if images == 100]
    full = [threads for images, threads in threads_seen if images != 100]
    assert probes and set(probes) == {1}
    assert full and set(full) == {2}, "the full test keeps both threads"


def test_one_cpu_thread_leaves_other_devices_alone():
    before = torch.get_num_threads()
    with training._one_cpu_thread(torch.device("cuda")):
        assert torch.get_num_threads() == before
    with training._one_cpu_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
