"""TrainConfig validation, presets, the schedule, augmentation and the training loop itself."""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import asdict
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from support import WatchedControl
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mnist_demo import limits, training
from mnist_demo.data import Split, random_shift, to_network_input
from mnist_demo.models import build_model
from mnist_demo.records import is_kind, of_kind
from mnist_demo.training import (
    ConfigError,
    Control,
    TrainConfig,
    config_from_preset,
    lr_at,
    resolve_device,
    train,
)

BOUND = 60.0  # seconds: generous upper bound for any wait on a loaded 2-core machine

# --- configuration ------------------------------------------------------------------------------


def test_default_config_is_valid_and_validate_chains():
    config = TrainConfig()
    assert config.validate() is config


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(lr=0.0), "learning rate"),
        (dict(lr=1e-320), "learning rate"),  # a subnormal: Adam would never move
        (dict(lr=-1e-3), "learning rate"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(lr=float("inf")), "learning rate"),
        (dict(lr=11.0), "learning rate"),
        (dict(batch_size=0), "batch size"),
        (dict(batch_size=60_001), "batch size"),
        (dict(batch_size=64.0), "batch size"),  # a float is not a batch size
        (dict(epochs=0), "epochs"),
        (dict(epochs=201), "epochs"),
        (dict(epochs=True), "epochs"),  # bools are ints in Python, not here
        (dict(model="resnet"), "unknown model 'resnet'"),
        (dict(schedule="step"), "schedule"),
        (dict(beta1=1.0), "beta1"),
        (dict(optimizer="sgd"), "optimizer must be one of adam, muon"),
        (dict(muon_lr=0.0), "muon_lr"),
        (dict(muon_lr=float("nan")), "muon_lr"),
        (dict(muon_momentum=1.0), "muon_momentum"),
        (dict(warmup=1.0), "warmup"),
        (dict(warmup=-0.1), "warmup"),
        (dict(augment=5), "augment"),
        (dict(label_smoothing=-0.1), "label smoothing"),
        (dict(label_smoothing=0.6), "label smoothing"),
        (dict(seed=-1), "seed"),
        (dict(log_every=0), "log_every"),
        (dict(max_steps=-1), "max_steps"),
        (dict(device="tpu"), "device 'tpu'"),
        (dict(device="cuda:x"), "device 'cuda:x'"),
        pytest.param(dict(device="cuda"), "no CUDA GPU", marks=NO_CUDA),
        pytest.param(dict(device="cuda:0"), "no CUDA GPU", marks=NO_CUDA),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else None,
)
def test_validate_rejects_bad_settings_with_a_message(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes).validate()


def test_auto_device_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_tutorial_preset_is_the_seed_tutorials_recipe():
    config = config_from_preset("tutorial")
    assert (config.model, config.lr, config.batch_size, config.epochs, config.schedule) == (
        "tutorial",
        1e-3,
        64,
        20,
        "constant",
    )
    assert (config.beta1, config.beta2, config.augment) == (0.9, 0.999, 0)  # plain Adam
    assert config.label_smoothing == 0  # plain cross-entropy
    assert config.precision == "float32"  # the seed's arithmetic, whatever the CPU
    config.validate()


def test_presets_take_overrides_and_refuse_unknowns():
    assert config_from_preset("tutorial", epochs=3, lr=None).epochs == 3
    assert config_from_preset("tutorial", lr=None).lr == 1e-3  # None keeps the preset's value
    with pytest.raises(ConfigError, match="unknown preset"):
        config_from_preset("turbo")
    with pytest.raises(ConfigError, match="colour"):
        config_from_preset("fast", colour="red")


def test_onecycle_warms_up_peaks_then_decays_to_near_zero():
    config = TrainConfig(lr=1e-2, schedule="onecycle")
    total = 500
    lrs = [lr_at(config, step, total) for step in range(total)]
    warm = int(0.2 * total)

    assert lrs[0] == pytest.approx(1e-3)  # starts at a tenth of the peak
    assert all(a < b for a, b in pairwise(lrs[: warm + 1]))  # rises
    assert max(lrs) == pytest.approx(1e-2) == lrs[warm]
    assert all(a >= b for a, b in pairwise(lrs[warm:]))  # then only falls
    assert lrs[-1] < 1e-2 * 0.01  # ends near zero
    assert all(lr > 0 for lr in lrs)


def test_warmup_sets_where_the_onecycle_peaks():
    for warmup in (0.0, 0.1, 0.5):
        config = TrainConfig(lr=1e-2, warmup=warmup)
        lrs = [lr_at(config, step, 200) for step in range(200)]
        assert lrs.index(max(lrs)) == max(1, int(warmup * 200))


def test_constant_schedule_is_constant():
    config = TrainConfig(lr=1e-3, schedule="constant")
    assert {lr_at(config, step, 100) for step in range(100)} == {1e-3}


# --- augmentation -------------------------------------------------------------------------------


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) -> (B, 2) row and column centres of the pixel mass."""
    weights = images.double()
    coords = torch.arange(28, dtype=torch.float64)
    mass = weights.sum((1, 2))
    rows = (weights.sum(2) * coords).sum(1) / mass
    cols = (weights.sum(1) * coords).sum(1) / mass
    return torch.stack([rows, cols], 1)


@pytest.fixture
def blobs() -> torch.Tensor:
    images = torch.zeros(64, 28, 28, dtype=torch.uint8)
    images[:, 11:17, 12:15] = 200  # well inside the frame: no shift can clip it
    images[:, 11, 12] = 255  # an asymmetric pixel, so a shift is not a no-op by symmetry
    return images


def test_random_shift_keeps_shape_and_dtype(blobs):
    shifted = random_shift(blobs, 2)
    assert shifted.shape == blobs.shape and shifted.dtype == torch.uint8


def test_random_shift_by_zero_is_identity(blobs):
    assert torch.equal(random_shift(blobs, 0), blobs)


@pytest.mark.parametrize("max_shift", [1, 2, 4])
def test_random_shift_moves_content_by_at_most_max_shift(blobs, max_shift):
    torch.manual_seed(0)
    shifted = random_shift(blobs, max_shift)

    moved = (centre_of_mass(shifted) - centre_of_mass(blobs)).round().long()
    assert moved.abs().max() == max_shift  # never further; with 64 images the extremes occur
    assert len({tuple(m) for m in moved.tolist()}) > 5  # independent shifts per image
    for image, original, (dy, dx) in zip(shifted, blobs, moved.tolist(), strict=True):
        # the same pixels, moved as a whole: not cropped, smeared or resampled
        assert torch.equal(image, original.roll((dy, dx), dims=(0, 1)))


# --- the loop -----------------------------------------------------------------------------------


def kinds(result) -> list[str]:
    return [r["kind"] for r in result.history]


def step_records(result) -> list[dict]:
    return of_kind(result.history, "step")


def test_records_start_steps_and_one_epoch_record_per_completed_epoch(tiny_mnist, make_config):
    # tiny data: 2,560 images / 256 = 10 steps per epoch
    result = train(make_config(epochs=2, batch_size=256, log_every=4))

    assert kinds(result) == ["start", "step", "step", "step", "epoch"] * 1 + [
        "step",
        "step",
        "step",
        "epoch",
    ]
    start = result.history[0]
    assert start["total_steps"] == 20 and start["steps_per_epoch"] == 10
    assert start["mode"] == "eager" and start["device"].startswith("cpu")
    assert start["config"] == asdict(result.config)
    # every log_every steps, plus the last step of each epoch
    assert [r["step"] for r in step_records(result)] == [4, 8, 10, 12, 16, 20]
    for record in step_records(result):
        assert math.isfinite(record["loss"]) and record["loss"] > 0
        assert 0 <= record["train_accuracy"] <= 100
        assert record["lr"] > 0 and record["samples_per_second"] > 0
    epochs = of_kind(result.history, "epoch")
    assert [(r["epoch"], r["step"]) for r in epochs] == [(1, 10), (2, 20)]
    assert (result.epochs_completed, result.steps, result.stopped) == (2, 20, False)
    assert result.test_accuracy == epochs[-1]["test_accuracy"]
    assert not result.model.training  # handed back ready for inference


@pytest.mark.parametrize("probe_images", [0, 100])
def test_test_first_records_the_untrained_accuracy_and_changes_nothing_else(
    tiny_mnist, make_config, probe_images
):
    config = make_config(max_steps=4, log_every=2, probe_images=probe_images)
    plain, first = train(config), train(config, test_first=True)

    assert "test_accuracy" not in plain.history[0]
    if probe_images:  # tested on the sample, as the test curve's first point
        untrained = first.history[1]
        assert (untrained["kind"], untrained["step"]) == ("probe", 0)
        assert "test_accuracy" not in first.history[0]
    else:  # on all the test images, in the start record
        untrained = first.history[0]
    assert 0 <= untrained["test_accuracy"] <= 30, "untrained: about chance level"
    losses = [[r["loss"] for r in of_kind(run.history, "step")] for run in (plain, first)]
    assert losses[0] == losses[1], "the extra test pass draws no random numbers"


def test_max_steps_ends_the_run_with_an_evaluation_of_the_partial_epoch(tiny_mnist, make_config):
    # Documented knob for tests/CI: a max_steps run still reports a test accuracy.
    result = train(make_config(epochs=2, batch_size=256, log_every=4, max_steps=7))

    assert kinds(result) == ["start", "step", "step", "epoch"]
    assert [r["step"] for r in step_records(result)] == [4, 7]
    assert result.history[0]["total_steps"] == 7
    assert (result.epochs_completed, result.steps, result.stopped) == (1, 7, False)
    assert result.test_accuracy is not None


def test_training_clearly_learns(trained_tutorial):
    """120 real steps of 256 images (half an epoch) take the tutorial CNN past 95%."""
    steps = step_records(trained_tutorial)
    assert trained_tutorial.steps == 120 and trained_tutorial.epochs_completed == 1
    assert trained_tutorial.test_accuracy >= 95.0
    assert steps[-1]["loss"] < 0.25 * steps[0]["loss"]


def losses(config) -> list[float]:
    return [r["loss"] for r in step_records(train(config))]


def test_same_seed_repeats_exactly_and_another_seed_differs(tiny_mnist, make_config):
    config = dict(max_steps=20, batch_size=64, log_every=1, augment=1)  # augmentation is seeded too
    first = losses(make_config(seed=3, **config))
    again = losses(make_config(seed=3, **config))
    other = losses(make_config(seed=4, **config))

    assert len(first) == 20
    assert first == again
    assert all(a != b for a, b in zip(first, other, strict=True))


def run_in_thread(config, control, pause_at: int):
    """Train in a thread that pauses itself right after step `pause_at`'s record."""
    out: dict = {}

    def on_record(record, model):
        if is_kind(record, "step") and record["step"] == pause_at:
            control.pause()

    def target():
        out["result"] = train(config, control=control, on_record=on_record)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def test_pause_blocks_the_loop_until_resume(tiny_mnist, make_config):
    control = WatchedControl()
    thread, out = run_in_thread(make_config(max_steps=12, batch_size=64, log_every=1), control, 5)

    assert control.blocked.wait(BOUND), "the loop never reached the pause"
    thread.join(0.5)  # bounded: a loop that ignored the pause would finish or log meanwhile
    assert thread.is_alive()
    assert "result" not in out

    control.resume()
    thread.join(BOUND)
    assert not thread.is_alive()
    result = out["result"]
    assert [r["step"] for r in step_records(result)] == list(range(1, 13))  # none lost
    assert not result.stopped and result.steps == 12


def test_stop_while_paused_mid_epoch_ends_promptly_and_tests_what_it_trained(
    tiny_mnist, make_config
):
    control = WatchedControl()
    thread, out = run_in_thread(make_config(batch_size=64, log_every=1), control, 3)

    assert control.blocked.wait(BOUND)
    control.stop()
    thread.join(BOUND)

    assert not thread.is_alive()
    result = out["result"]
    assert result.stopped and result.steps == 3
    (epoch,) = of_kind(result.history, "epoch")  # a partial epoch, tested on the way out
    assert (epoch["step"], epoch["epochs_done"]) == (3, round(3 / 40, 3))
    assert result.test_accuracy == epoch["test_accuracy"] and result.epochs_done == 0.075


def test_stop_from_a_record_callback_ends_at_the_next_step(tiny_mnist, make_config):
    control = Control()

    def on_record(record, model):
        if is_kind(record, "step") and record["step"] == 4:
            control.stop()

    result = train(make_config(batch_size=64, log_every=2), control=control, on_record=on_record)

    assert result.stopped and result.steps == 4
    assert kinds(result) == ["start", "step", "step", "epoch"]


def test_a_run_stopped_before_it_starts_does_no_steps(tiny_mnist, make_config):
    control = Control()
    control.stop()
    result = train(make_config(), control=control)
    assert kinds(result) == ["start"]
    assert result.stopped and result.steps == 0 and result.test_accuracy is None


def test_a_stop_after_an_epoch_reports_the_accuracy_of_the_weights_kept(
    tiny_mnist, make_config, monkeypatch
):
    """Stopped mid-epoch 2: the accuracy returned is measured on the final weights."""
    evaluated_at_steps = []
    real_test_pass = training.test_pass

    def counting_test_pass(model, split, *args, **kwargs):
        evaluated_at_steps.append(len(steps))
        return real_test_pass(model, split, *args, **kwargs)

    monkeypatch.setattr(training, "test_pass", counting_test_pass)
    control = training.Control()
    steps = []

    def on_record(record, model):
        if is_kind(record, "step"):
            steps.append(record["step"])
            if record["epoch"] == 2:
                control.stop()

    result = training.train(
        make_config(epochs=3, batch_size=256, log_every=2), control=control, on_record=on_record
    )
    assert result.stopped and result.epochs_completed == 2
    assert len(evaluated_at_steps) == 2, "one pass after epoch 1, one on the weights kept"
    assert evaluated_at_steps[1] > evaluated_at_steps[0]
    last = of_kind(result.history, "epoch")[-1]
    assert last["epochs_done"] < 2 and result.test_accuracy == last["test_accuracy"]


def test_label_smoothing_changes_the_update_but_the_reported_loss_stays_plain(
    mnist, trained_tutorial
):
    train_split = mnist[0]
    idx = torch.arange(256)
    x = to_network_input(train_split.images[idx])  # (B, 1, 28, 28)
    with torch.no_grad():
        plain = F.cross_entropy(trained_tutorial.model(x), train_split.labels[idx]).item()
        smoothed = F.cross_entropy(
            trained_tutorial.model(x), train_split.labels[idx], label_smoothing=0.1
        ).item()
    assert smoothed > plain + 0.1, "a confident model: the two losses are far apart"

    weights = {}
    for smoothing in (0.0, 0.1):
        config = config_from_preset(
            "fast", device="cpu", label_smoothing=smoothing, precision="float32"
        )
        model = copy.deepcopy(trained_tutorial.model).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        step = training._Step(model, optimizer, train_split, config, torch.device("cpu"))
        step(idx)
        assert step.stats[0].item() / 256 == pytest.approx(plain, rel=1e-4), smoothing
        weights[smoothing] = model.fc2.weight.detach().clone()
    assert not torch.allclose(weights[0.0], weights[0.1]), "smoothing changed the gradient"


def test_cpu_replicas_train_like_one_model(tiny_mnist, make_config):
    """Two replicas on two slices sum to the full-batch gradient: same losses, repeatably."""

    def losses(threads: int, parallel: str) -> tuple[str, list[float]]:
        config = make_config(threads=threads, cpu_parallel=parallel, max_steps=8, log_every=2)
        result = training.train(config)
        return result.history[0]["mode"], [r["loss"] for r in of_kind(result.history, "step")]

    mode_one, one = losses(1, "replicas")
    mode_two, two = losses(2, "replicas")
    assert mode_one == "eager" and mode_two == "eager, 2 replicas"
    assert two == pytest.approx(one, rel=2e-3)
    assert losses(2, "replicas")[1] == two, "the tutorial model stays bit-repeatable with replicas"
    mode_threads, threads = losses(2, "threads")
    assert mode_threads == "eager, 2 threads" and threads == pytest.approx(one, rel=2e-3)


def test_auto_precision_is_bfloat16_only_on_a_cpu_that_computes_it(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(training, "_cpu_computes_bfloat16", lambda native=native: native)
        auto = TrainConfig()
        assert training.compute_dtype(auto, cpu) == (torch.bfloat16 if native else torch.float32)
        assert training.compute_dtype(auto, cuda) == torch.float32  # the graphed step's
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            assert training.compute_dtype(TrainConfig(precision=name), cpu) == dtype
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="float16").validate()


@pytest.mark.parametrize("threads, parallel", [(1, "threads"), (2, "replicas")])
def test_a_bfloat16_run_computes_its_forward_in_bfloat16_and_keeps_float32_weights(
    tiny_mnist, make_config, threads, parallel
):
    """Autocast is per thread: each replica's thread must enter it too, or it runs float32."""
    seen: list[torch.dtype] = []
    model = build_model("tutorial")
    model.conv2.register_forward_hook(  # training forwards only: tests stay float32
        lambda module, args, out: seen.append(out.dtype) if module.training else None
    )

    def run(precision: str) -> training.TrainResult:
        config = make_config(
            precision=precision, threads=threads, cpu_parallel=parallel, max_steps=20, log_every=5
        )
        return train(config, model=copy.deepcopy(model))

    result = run("bfloat16")
    assert result.precision == result.history[0]["precision"] == "bfloat16"
    assert result.device == f"cpu ({threads} threads, bfloat16)"  # the status line says so
    assert seen and set(seen) == {torch.bfloat16}, "every forward, in every thread"
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    losses = [r["loss"] for r in of_kind(result.history, "step")]
    seen.clear()
    plain = run("float32")
    assert set(seen) == {torch.float32} and plain.history[0]["precision"] == "float32"
    assert plain.device == f"cpu ({threads} threads)"
    # from the same weights the first steps agree to bfloat16's rounding (later ones drift
    # apart as any two runs do), yet they are not float32's own numbers
    reference = [r["loss"] for r in of_kind(plain.history, "step")]
    assert losses[0] == pytest.approx(reference[0], rel=0.02) and losses != reference
    assert losses[-1] < losses[0] - 0.3, "it learns"


def test_auto_parallel_trains_like_one_model_and_says_which_mode_ran(tiny_mnist, make_config):
    config = make_config(threads=2, max_steps=30, log_every=3, batch_size=64)
    result = training.train(config)
    steps = of_kind(result.history, "step")
    assert result.history[0]["mode"] == "eager, 2 threads or replicas (auto)"
    assert {r["parallel"] for r in steps} <= {"threads", "replicas"}
    one = training.train(make_config(threads=1, max_steps=30, log_every=3, batch_size=64))
    reference = [r["loss"] for r in of_kind(one.history, "step")]
    assert [r["loss"] for r in steps] == pytest.approx(reference, rel=5e-3)


class _Timed:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, 0
        self.optimizer, self.stats = None, None

    def __call__(self, idx) -> None:
        self.calls += 1
        time.sleep(self.seconds)

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_auto_parallel_keeps_the_faster_mode_and_checks_again():
    slow_threads, fast_replicas = _Timed(0.004), _Timed(0.0)
    step = training._AdaptiveStep(slow_threads, fast_replicas)
    a = step.WARMUP + 2 * step.TRIAL
    for _ in range(a + 20):
        step(None)
    assert step.current == "replicas"
    assert slow_threads.calls == step.WARMUP + step.TRIAL, "after its trial, the slow one rests"
    slow_threads.seconds, fast_replicas.seconds = 0.0, 0.004  # the machine changed
    for _ in range(step.EVERY):
        step(None)
    assert step.current == "threads"


def test_a_step_pinned_through_a_trial_keeps_its_mode_until_the_next_trial():
    """A training process pins the step while requests come (_limit_cores); pinned through
    a trial's timed steps and let go at its decision, the step used to fail the run."""
    slow_threads, fast_replicas = _Timed(0.002), _Timed(0.0)
    step = training._AdaptiveStep(slow_threads, fast_replicas)
    step.pinned = "threads"
    for _ in range(step.WARMUP + 2 * step.TRIAL):  # the whole trial, pinned
        step(None)
    step.pinned = None
    step(None)  # the decision, with neither mode timed
    assert step.current == "threads" and fast_replicas.calls == 0
    for _ in range(step.EVERY):  # the next trial times both and decides
        step(None)
    assert step.current == "replicas"


# --- what the CUDA graph relies on, checked on the CPU ------------------------------------------
# CI has no GPU, so the graphed step itself never runs here (tests/unit/test_cuda.py does, on a
# GPU). These pin the two properties its capture depends on, with the very same _Step.


class _HostReads(TorchDispatchMode):
    """Records every op that makes the device's value known to the host (a sync on CUDA)."""

    READS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "equal", "is_nonzero")

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        bool_index = name.startswith(("aten.index.", "aten.index_put")) and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in tree_leaves(args)
        )
        if bool_index or any(read in name for read in self.READS):
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


def _one_step(model_name: str, augment: int, split: Split) -> training._Step:
    config = config_from_preset("fast", model=model_name, augment=augment, device="cpu")
    model = build_model(model_name).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    return training._Step(model, optimizer, split, config, torch.device("cpu"))


def test_host_read_probe_sees_the_reads_a_graph_cannot_hold():
    t = torch.ones(4)
    with _HostReads() as probe:
        t.sum().item()
        bool(t[0] > 0)
        t[t > 0] = 2.0
    assert len(probe.ops) == 3, probe.ops


@pytest.mark.parametrize(("model_name", "augment"), [("tutorial", 0), ("improved", 2)])
def test_a_training_step_never_reads_a_value_back_to_the_host(mnist, model_name, augment):
    """Gather, augmentation, forward, backward, Adam and the stats all stay on the device."""
    step = _one_step(model_name, augment, mnist[0])
    idx = torch.randint(0, len(mnist[0]), (64,))
    step(idx)  # the first step allocates Adam's state
    with _HostReads() as probe:
        step(idx)
        step(idx)
    assert probe.ops == []
    assert step.stats[1] > 0, "the step did run: it counted correct predictions"


def test_warm_up_before_capture_leaves_no_trace(mnist):
    """After the warm-up, training goes exactly as from the untouched model and a fresh Adam."""
    torch.manual_seed(0)
    warmed = _one_step("improved", 2, mnist[0])  # dropout, augmentation and BatchNorm buffers
    fresh = _one_step("improved", 2, mnist[0])
    fresh.model.load_state_dict(warmed.model.state_dict())
    batches = [torch.randint(0, len(mnist[0]), (64,)) for _ in range(3)]

    torch.manual_seed(1)
    training._warm_up_without_training(warmed, batches[0])
    assert warmed.optimizer.state, "the warm-up allocated the optimiser's state"
    for idx in batches:
        warmed(idx)
    torch.manual_seed(1)
    for idx in batches:
        fresh(idx)

    a, b = warmed.model.state_dict(), fresh.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "weights and BatchNorm statistics"
    assert torch.equal(warmed.stats, fresh.stats)
    for p, q in zip(warmed.model.parameters(), fresh.model.parameters(), strict=True):
        sa, sb = warmed.optimizer.state[p], fresh.optimizer.state[q]
        assert all(torch.equal(sa[k], sb[k]) for k in sb), "Adam's step count and moments"


def test_warm_up_leaves_a_runs_random_numbers_alone(tiny_mnist):
    """The app warms up at start; the first run must train exactly as it would have without."""
    state = torch.get_rng_state()
    training.warm_up()
    assert torch.equal(torch.get_rng_state(), state)


def test_the_loop_gives_way_after_each_cpu_step_and_counts_the_pause_as_training(
    tiny_mnist, make_config
):
    """A visitor's request in flight for the whole run: every step is followed by a pause
    within GiveWay's bound, and the charts' training time includes it (the cost shows)."""
    in_flight = limits.InFlight()
    give_way = limits.GiveWay(in_flight, share=0.25)
    steps: list[float] = []

    def spy(seconds: float) -> float:
        steps.append(seconds)
        return give_way(seconds)

    with in_flight.serving():
        result = train(make_config(batch_size=64, max_steps=6), control=Control(give_way=spy))

    assert len(steps) == result.steps == 6 and min(steps) > 0
    assert give_way.paused > 0
    assert give_way.paused <= 3 * sum(steps) + 1e-6  # 25%: at most 3x the steps' own time
    assert result.train_seconds >= give_way.paused
