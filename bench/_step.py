"""The engine's own CPU training step for a config, as the step benchmarks time it."""

from __future__ import annotations

import torch

from mnist_demo import training
from mnist_demo.data import Split
from mnist_demo.models import build_model


def engine_step(config: training.TrainConfig, train_split: Split) -> training._Step:
    """A fresh model (channels-last, as train() lays it out), its optimiser and `_Step`."""
    cpu = torch.device("cpu")
    model = build_model(config.model).to(memory_format=torch.channels_last).train()
    optimizer = training._optimizer(model, config, cpu, graphed=False)
    return training._Step(model, optimizer, train_split, config, cpu)
