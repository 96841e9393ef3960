"""The tutorial CNN exactly as the seed tutorial builds it, the improved CNN, the registry."""

from __future__ import annotations

import copy

import pytest
import torch

from mnist_demo.models import (
    MODELS,
    DigitNet,
    ImprovedCNN,
    TutorialCNN,
    build_model,
    count_parameters,
    fold_for_inference,
)


def test_tutorial_has_the_seed_tutorials_parameter_count():
    # conv1 16*1*9+16, conv2 32*16*9+32, fc1 1568*128+128, fc2 128*10+10
    assert count_parameters(build_model("tutorial")) == 160 + 4_640 + 200_832 + 1_290 == 206_922


def test_tutorial_layers_match_the_seed_tutorial():
    model = build_model("tutorial")
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "conv1.weight": (16, 1, 3, 3),
        "conv1.bias": (16,),
        "conv2.weight": (32, 16, 3, 3),
        "conv2.bias": (32,),
        "fc1.weight": (128, 1568),
        "fc1.bias": (128,),
        "fc2.weight": (10, 128),
        "fc2.bias": (10,),
    }
    assert model.conv1.padding == (1, 1) and model.conv2.padding == (1, 1)  # 28x28 kept


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("batch", [1, 5])
def test_models_map_a_batch_to_ten_logits(name, batch):
    model = build_model(name).eval()
    with torch.no_grad():
        logits = model(torch.randn(batch, 1, 28, 28))
    assert logits.shape == (batch, 10)
    assert torch.isfinite(logits).all()


def test_tutorial_features_have_the_documented_shapes():
    a1, a2 = TutorialCNN().features(torch.zeros(2, 1, 28, 28))
    assert a1.shape == (2, 16, 14, 14) and a2.shape == (2, 32, 7, 7)


def test_improved_model_trains_in_batches_and_is_the_bigger_model():
    model = ImprovedCNN().train()
    model(torch.randn(4, 1, 28, 28)).sum().backward()  # BatchNorm in training mode
    assert all(p.grad is not None for p in model.parameters())
    assert count_parameters(model) > count_parameters(TutorialCNN())


def test_registry_builds_fresh_models_and_refuses_unknown_names():
    assert isinstance(build_model("tutorial"), TutorialCNN)
    assert isinstance(build_model("improved"), ImprovedCNN)
    assert build_model("tutorial") is not build_model("tutorial")
    with pytest.raises(ValueError, match="unknown model 'resnet'.*tutorial, improved"):
        build_model("resnet")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_declares_the_features_the_draw_tab_shows(name):
    model = build_model(name).eval()
    assert isinstance(model, DigitNet)
    stages = model.features(torch.zeros(2, 1, 28, 28))
    assert len(stages) >= 2 and all(a.ndim == 4 and a.shape[0] == 2 for a in stages)


@pytest.mark.parametrize("name", ["tutorial", "improved"])
def test_a_folded_model_answers_as_the_model_it_was_folded_from(name):
    torch.manual_seed(0)
    model = build_model(name)
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so folding shows
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.eval()
    folded = fold_for_inference(copy.deepcopy(model))
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x), atol=1e-4)
        assert [a.shape for a in folded.features(x)] == [a.shape for a in model.features(x)]
    kinds = {type(m) for m in folded.modules()}
    assert not kinds & {torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.Dropout}


def test_folding_refuses_a_model_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_for_inference(build_model("improved").train())
