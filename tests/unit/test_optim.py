"""Muon: orthogonalised updates for the weight matrices, Adam for the rest, in the loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mnist_demo import optim, training
from mnist_demo.models import build_model
from mnist_demo.training import config_from_preset

# Quintic Newton-Schulz with the reference coefficients leaves singular values in about
# [0.68, 1.2] instead of exactly 1: close enough, and much cheaper than an SVD.
ORTHO_RANGE = (0.6, 1.25)


@pytest.mark.parametrize("shape", [(16, 9), (32, 144), (128, 1568), (10, 128)])
def test_orthogonalise_sets_every_singular_value_near_one(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g[:, 0] *= 100  # one dominant direction, as in a real gradient
    singular = torch.linalg.svdvals(optim.orthogonalise(g))
    assert ORTHO_RANGE[0] < singular.min() and singular.max() < ORTHO_RANGE[1]
    assert torch.linalg.svdvals(g).max() / torch.linalg.svdvals(g).min() > 10  # it was not


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fused_adam_moves_the_weights_exactly_as_torch_adam_does(layout):
    """The same kernel as torch.optim.Adam(fused=True), schedule changes included: the
    weights after a few steps are bit for bit the same (channels_last: the fine-tune's)."""
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=layout)
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(2))
    trained = []
    for make in (
        lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.99), fused=True),
        lambda params: optim.FusedAdam(params, lr=0.01, betas=(0.8, 0.99)),
    ):
        torch.manual_seed(0)
        model = build_model("tutorial").to(memory_format=layout)
        optimizer = make(model.parameters())
        for step in range(4):
            training._set_lr(optimizer, 0.01 / (step + 1))  # as the schedule does
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        trained.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*trained, strict=True))
    torch.manual_seed(0)
    untrained = build_model("tutorial").parameters()
    assert not all(torch.equal(a, b) for a, b in zip(trained[0], untrained, strict=True))


def test_muon_takes_the_hidden_weights_and_leaves_biases_and_the_output_layer_to_adam():
    model = build_model("tutorial")
    matrices, rest = optim.muon_parameters(model)
    names = {id(p): name for name, p in model.named_parameters()}
    assert [names[id(p)] for p in matrices] == ["conv1.weight", "conv2.weight", "fc1.weight"]
    assert sorted(names[id(p)] for p in rest) == [
        "conv1.bias",
        "conv2.bias",
        "fc1.bias",
        "fc2.bias",
        "fc2.weight",
    ]


def _muon_step(model, lr: float = 0.02):
    config = config_from_preset("fast", optimizer="muon", muon_lr=lr, device="cpu")
    return training._optimizer(model, config, torch.device("cpu"), graphed=False)


def test_a_muon_update_of_a_weight_matrix_is_orthogonal(mnist):
    model = build_model("tutorial")
    optimizer = _muon_step(model, lr=0.02)
    x = mnist[0].images[:256].float()[:, None] / 255
    F.cross_entropy(model(x), mnist[0].labels[:256]).backward()
    before = model.fc1.weight.detach().clone()
    bias_before = model.fc1.bias.detach().clone()
    optimizer.step()
    update = (before - model.fc1.weight.detach()) / 0.02
    # The gradient's leading directions differ in size by far more than 5x; the update's are
    # equalised near one (Newton-Schulz lifts singular values above ~1/500 of the largest).
    top = torch.linalg.svdvals(model.fc1.weight.grad)[:32]
    assert top[0] / top[-1] > 5
    moved = torch.linalg.svdvals(update)[:32]
    assert ORTHO_RANGE[0] < moved.min() and moved.max() < ORTHO_RANGE[1]
    bias_step = (bias_before - model.fc1.bias.detach()).abs()
    assert bias_step.max() == pytest.approx(1e-2, rel=1e-3)  # Adam's first step: lr * sign(g)


def test_muon_steps_lower_the_loss_on_a_batch(mnist):
    torch.manual_seed(0)
    model = build_model("tutorial")
    optimizer = _muon_step(model)
    x, y = mnist[0].images[:256].float()[:, None] / 255, mnist[0].labels[:256]
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.8 * losses[0]  # 2.30 -> 1.72 in 10 steps with seed 0


def test_the_schedule_scales_muons_rate_with_adams():
    model = build_model("tutorial")
    config = config_from_preset("fast", optimizer="muon", lr=1e-2, muon_lr=0.05, device="cpu")
    for graphed in (False, True):  # True: rates are tensors, as a CUDA graph needs
        optimizer = training._optimizer(model, config, torch.device("cpu"), graphed=graphed)
        training._set_lr(optimizer, 5e-3)  # half the peak
        rates = sorted(float(g["lr"]) for g in optimizer.param_groups)
        assert rates == pytest.approx([5e-3, 0.025])


def test_a_muon_run_trains_and_records_its_optimiser(tiny_mnist, make_config):
    result = training.train(make_config(optimizer="muon", epochs=1))
    assert result.history[0]["config"]["optimizer"] == "muon"
    assert result.test_accuracy > 30  # 10 steps on 2,560 images (55.6% seen); chance is 10%


def test_a_muon_step_never_reads_a_value_back_to_the_host(mnist):
    """Like Adam's: nothing in the update forces a sync, so it can be graphed on CUDA."""
    from test_training import _HostReads

    config = config_from_preset("fast", optimizer="muon", device="cpu")
    model = build_model("tutorial").to(memory_format=torch.channels_last).train()
    optimizer = training._optimizer(model, config, torch.device("cpu"), graphed=True)
    step = training._Step(model, optimizer, mnist[0], config, torch.device("cpu"))
    idx = torch.randint(0, len(mnist[0]), (64,))
    step(idx)  # allocates the state
    with _HostReads() as probe:
        step(idx)
    assert probe.ops == []


def test_warm_up_before_capture_leaves_a_fresh_muon(mnist):
    """The CUDA path warms up then zeroes the state in place: that must equal a fresh Muon."""
    config = config_from_preset("fast", optimizer="muon", device="cpu")

    def step():
        model = build_model("tutorial").to(memory_format=torch.channels_last).train()
        optimizer = training._optimizer(model, config, torch.device("cpu"), graphed=True)
        return training._Step(model, optimizer, mnist[0], config, torch.device("cpu"))

    torch.manual_seed(0)
    warmed, fresh = step(), step()
    fresh.model.load_state_dict(warmed.model.state_dict())
    batches = [torch.randint(0, len(mnist[0]), (64,)) for _ in range(3)]
    training._warm_up_without_training(warmed, batches[0])
    for idx in batches:
        warmed(idx)
        fresh(idx)
    a, b = warmed.model.state_dict(), fresh.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
