"""IMA's white-noise attack: many random draws of uniform noise of a fixed size; broken if any draw fools.

Ma & Liang, "Increasing-Margin Adversarial (IMA) training to improve adversarial robustness of neural
networks", Computer Methods and Programs in Biomedicine, 2023 (arXiv 2005.09147).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medrobust.attacks.base import ATTACKS, AttackResult, WorstCase, check_batch, success
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, check_norm, per_sample_eps, uniform_noise
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task


@ATTACKS.register("noise", help="IMA white-noise attack: 100 draws of uniform noise of norm eps")
@dataclass(frozen=True)
class WhiteNoise:
    """Draw ``draws`` noise images per sample and keep the worst.

    L2: ``U[0, 1)^d`` rescaled to L2 norm exactly ε; L∞: ``ε·U[0, 1)^d`` (``symmetric=True``: ``U[−1, 1)``).
    The noisy input is clamped to [0, 1]. A sample is fooled if any draw fools the model; per sample the
    fooled draw (else the draw) with the highest ``task.loss`` is returned. No gradients are taken.

    Args:
        norm: ``"l2"`` or ``"linf"``.
        draws: noise draws per sample (IMA: 100).
        symmetric: zero-mean noise ``U[−1, 1)`` instead of IMA's non-negative ``U[0, 1)``.
        train_mode: run the model in train mode; default eval mode.

    Shape:
        - x: ``(N, *)`` in [0, 1]; y: targets of ``task``; eps: float or ``(N,)``.
    """

    norm: Norm = "l2"
    draws: int = 100
    symmetric: bool = False
    train_mode: bool = False

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.draws < 1:
            raise ConfigError(f"the noise attack needs draws >= 1; got {self.draws}")

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        task: Task,
        eps: float | Tensor,
        generator: torch.Generator | None = None,
    ) -> AttackResult:
        """Attack ``model`` at ``(x, y)`` with noise of size ``eps`` (``draws`` forward passes)."""
        check_batch(x, y, task, generator)
        e = per_sample_eps(eps, x)
        x = x.detach()
        best: WorstCase | None = None
        with model_mode(model, self.train_mode), torch.no_grad():
            for _ in range(self.draws):
                noisy = (x + uniform_noise(x, e, self.norm, symmetric=self.symmetric, generator=generator)).clamp_(0, 1)
                out = model(noisy)
                fooled, score = success(task, out, y, False), task.loss(out, y)
                if best is None:
                    best = WorstCase(noisy, out, fooled, score)
                else:
                    best.update(None, noisy, out, fooled, score)
        assert best is not None
        return best.result(self.draws)
