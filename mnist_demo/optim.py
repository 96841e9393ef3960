"""Optimisers: Adam on one fused kernel without torch.optim, and Muon.

`FusedAdam` is torch.optim.Adam(fused=True)'s own kernel, called directly: the same numbers,
without the torch._dynamo import that any torch.optim optimizer does on its first use.

Muon: orthogonalised momentum for the weight matrices, Adam for everything else.

Muon (Keller Jordan's speedruns, 2024) replaces each weight matrix's update by the nearest
semi-orthogonal matrix to its momentum, found by a few Newton-Schulz iterations: every
direction of the layer moves at the same rate instead of a few dominant ones. Conv filters
are matrices of (out channels, in channels x kernel). Biases and the output layer, whose
rows are per-class and should not be equalised, stay on Adam. All math is tensor math with
no host reads, so the step can be captured in a CUDA graph with `lr` as a device tensor.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Quintic Newton-Schulz coefficients from the Muon reference: they push singular values
# into roughly [0.7, 1.2] in 5 steps, which trains as well as exact orthogonalisation.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


class FusedAdam:
    """Adam (no weight decay) through the fused kernel torch.optim.Adam(fused=True) runs:
    bit-identical updates, but no torch.optim. Every torch.optim optimizer imports
    torch._dynamo when first built or stepped (`torch._disable_dynamo` on add_param_group,
    the import in `_use_grad_for_differentiable`): 1.8-2.0 s of CPU on these 2 cores, which
    `python -m mnist_demo train --json` paid before its first step and the app at start-up
    (bench/cli_overhead.py, BENCHMARKS.md tenth session).

    It keeps what the training loop and the fine-tune use: `param_groups` (one; the schedule
    sets its "lr"), `state` (per parameter: step, exp_avg, exp_avg_sq), `zero_grad`, `step`.
    All parameters are on one device with one dtype, as a model's are.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param_groups = [dict(params=list(params), lr=lr, betas=betas, eps=eps)]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        if p not in self.state:  # as torch.optim.Adam's fused state: a float32 step on p's device
            self.state[p] = dict(
                step=torch.zeros((), dtype=torch.float32, device=p.device),
                exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format),
            )
        return self.state[p]

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        states = [self._state(p) for p in params]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )


def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """An approximately semi-orthogonal matrix close to g (rows, cols): U V^T of its SVD."""
    a, b, c = NS_COEFFICIENTS
    tall = g.size(0) > g.size(1)
    x = g.T if tall else g  # iterate on the smaller Gram matrix (rows <= cols)
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1: inside NS's basin
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def muon_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(matrices for Muon, the rest for Adam): every weight of 2+ dims but the output layer's."""
    params = [p for p in model.parameters() if p.requires_grad]
    matrices = [p for p in params if p.ndim >= 2]
    output = matrices[-1] if matrices else None  # the last layer maps features to classes
    muon = [p for p in matrices if p is not output]
    return muon, [p for p in params if all(p is not q for q in muon)]


class Muon(torch.optim.Optimizer):
    """Muon for the groups marked `muon=True`, plain Adam for the others.

    Args:
        groups: parameter groups; each Muon group has `muon=True`, its own `lr` and may set
            `momentum` (else `momentum`); each Adam group its `lr` and may set `betas`.
        ns_steps: Newton-Schulz iterations per update.
    """

    def __init__(
        self, groups: list[dict], momentum: float = 0.95, ns_steps: int = 5, eps: float = 1e-8
    ) -> None:
        defaults = dict(muon=False, momentum=momentum, betas=(0.9, 0.999), eps=eps)
        super().__init__(groups, defaults)
        self.ns_steps = ns_steps

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch's signature
        for group in self.param_groups:
            if group["muon"]:
                self._muon(group)
            else:
                self._adam(group)

    def _muon(self, group: dict) -> None:
        momentum = group["momentum"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - momentum)
            nesterov = p.grad.lerp(buf, momentum)  # look ahead along the momentum
            update = orthogonalise(nesterov.reshape(len(p), -1), self.ns_steps)
            # rows > cols (conv1: 16 x 9) cannot all be unit-norm: scale up as in the reference
            scale = max(1.0, update.size(0) / update.size(1)) ** 0.5
            p.sub_(group["lr"] * scale * update.view_as(p))

    def _adam(self, group: dict) -> None:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.zeros((), device=p.device)  # a tensor: no host reads
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            state["exp_avg"].lerp_(p.grad, 1 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            corrected = state["exp_avg"] / (1 - beta1 ** state["step"])
            denom = (state["exp_avg_sq"] / (1 - beta2 ** state["step"])).sqrt_().add_(group["eps"])
            p.sub_(group["lr"] * corrected / denom)
