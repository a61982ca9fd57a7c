"""AugMix with the Jensen–Shannon consistency loss (Hendrycks et al., "AugMix: A Simple Data Processing Method to
Improve Robustness and Uncertainty", ICLR 2020), on batched tensors and driven by a ``torch.Generator``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from medrobust.errors import ConfigError
from medrobust.methods._common import positive
from medrobust.methods.augmix_ops import GEOMETRIC, OPS, affine, op_names, sign
from medrobust.methods.base import Batch, StepContext, StepOutput, TrainingMethod
from medrobust.methods.trades import log_distribution
from medrobust.tasks.base import Task

MIXTURE_FLOOR = 1e-7  # the official code clamps the mixture distribution at 1e-7


def sample_gamma(alpha: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Gamma(``alpha``, 1) draws of the shape of ``alpha`` (Marsaglia & Tsang 2000, with ``U^(1/α)`` for α < 1).

    ``torch.distributions`` takes no generator, hence this sampler. Shape: ``alpha (*)`` → ``(*)``.
    """
    a = alpha.double()
    boost = a < 1
    d = torch.where(boost, a + 1, a) - 1 / 3
    c = 1 / torch.sqrt(9 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    while bool(todo.any()):
        z = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp(min=1e-300))) & todo
        out = torch.where(ok, d * v, out)
        todo = todo & ~ok
    u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    return torch.where(boost, out * u ** (1 / a), out).to(alpha.dtype)


def mixing_weights(
    batch: int, width: int, alpha: float, generator: torch.Generator | None = None, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """Chain weights ``w ~ Dirichlet(α·1_width)`` ``(batch, width)`` and blend ``m ~ Beta(α, α)`` ``(batch,)``."""
    shape = torch.full((batch, width + 2), float(alpha), dtype=torch.float64, device=device)
    g = sample_gamma(shape, generator)
    w = g[:, :width] / g[:, :width].sum(dim=1, keepdim=True)
    m = g[:, width] / (g[:, width] + g[:, width + 1])
    return w.float(), m.float()


def apply_random_ops(
    x: Tensor, ops: Sequence[str], severity: float, active: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """One chain step: each ``active`` sample gets one op drawn uniformly from ``ops`` at a level ~ U(0.1, severity).

    Shape:
        - x: ``(B, C, H, W)``; active: bool ``(B,)``.
    """
    b, (h, w) = x.shape[0], x.shape[-2:]
    choice = torch.randint(len(ops), (b,), generator=generator, device=x.device)
    level = 0.1 + (severity - 0.1) * torch.rand(b, generator=generator, device=x.device)
    signs = sign(level, generator)
    theta = torch.eye(2, 3, dtype=torch.float64, device=x.device).repeat(b, 1, 1)
    geometric = torch.zeros(b, dtype=torch.bool, device=x.device)
    out = x.clone()
    for k, name in enumerate(ops):
        pick = active & (choice == k)
        idx = pick.nonzero().squeeze(1)
        if not idx.numel():
            continue
        if name in GEOMETRIC:  # collected, then resampled in one call
            theta[idx] = GEOMETRIC[name](level[idx], signs[idx], h, w)
            geometric |= pick
        else:
            out[idx] = OPS[name](x[idx], level[idx], generator)
    idx = geometric.nonzero().squeeze(1)
    if idx.numel():
        out[idx] = affine(x[idx], theta[idx])
    return out


def augment_and_mix(
    x: Tensor,
    generator: torch.Generator | None = None,
    *,
    ops: Sequence[str] | None = None,
    severity: float = 3.0,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
) -> Tensor:
    """AugMix one view per sample: ``(1 − m)·x + m·Σ_i w_i·chain_i(x)``.

    Each of ``width`` chains applies ``depth`` random ops (``depth = −1``: uniformly 1…3 per chain and sample).

    Shape:
        - x: ``(B, C, H, W)`` in [0, 1]; returns the same shape, dtype and range.
    """
    ops = tuple(ops) if ops is not None else op_names()
    w, m = mixing_weights(x.shape[0], width, alpha, generator, x.device)
    mix = torch.zeros_like(x)
    for i in range(width):
        if depth > 0:
            steps = torch.full((x.shape[0],), depth, device=x.device)
        else:
            steps = torch.randint(1, 4, (x.shape[0],), generator=generator, device=x.device)
        chain = x
        for j in range(int(steps.amax())):
            chain = apply_random_ops(chain, ops, severity, steps > j, generator)
        mix = mix + w[:, i].reshape(-1, 1, 1, 1).to(x.dtype) * chain
    m4 = m.reshape(-1, 1, 1, 1).to(x.dtype)
    return ((1 - m4) * x + m4 * mix).clamp(0, 1)


def jensen_shannon(log_probs: Sequence[Tensor]) -> Tensor:
    """Per-sample ``JS = mean_i KL(p_i ‖ M)``, ``M = clamp(mean_i p_i, 1e-7, 1)`` (the official code), in nats.

    Lies in ``[0, ln k]`` for ``k`` distributions. Multi-label outputs (one Bernoulli per label) sum over labels.

    Shape:
        - log_probs: ``k`` tensors ``(N, K)`` (or ``(N, L, 2)``) of log-probabilities; returns ``(N,)``.
    """
    probs = [lp.exp() for lp in log_probs]
    log_m = torch.clamp(torch.stack(probs).mean(dim=0), MIXTURE_FLOOR, 1).log()
    kls = [(torch.xlogy(p, p) - p * log_m).flatten(1).sum(dim=1) for p in probs]
    return torch.stack(kls).mean(dim=0)


def consistency_loss(task: Task, outputs: Tensor, target: Tensor, views: int, weight: float) -> tuple[Tensor, Tensor]:
    """``mean L(clean) + weight·mean JS`` from one concatenated forward of ``views`` equally long chunks.

    Returns ``(loss, js)`` (``js`` detached); the clean chunk comes first.
    """
    chunks = outputs.chunk(views)
    js = jensen_shannon([log_distribution(task, o) for o in chunks]).mean()
    return task.loss(chunks[0], target).mean() + weight * js, js.detach()


class AugMix(TrainingMethod):
    """AugMix training (METHODS §1.7): ``L(x) + λ·JS(p(x), p(aug₁), p(aug₂))`` in one concatenated forward.

    Batch norm therefore sees clean and augmented images together, as in the official code. With ``jsd=False``
    the model trains on one AugMix view only (the official ``--no-jsd``).

    Args:
        severity: op magnitudes are drawn from U(0.1, severity) on the 0…10 scale (3).
        width: chains mixed per view (3).
        depth: ops per chain; −1 draws 1…3 uniformly (−1).
        alpha: Dirichlet / Beta concentration of the mixing weights (1).
        all_ops: also use brightness, color, contrast, sharpness (they overlap common test corruptions).
        jsd_weight: ``λ`` (12).
        jsd: use the consistency loss.

    Shape:
        - batch.x: ``(B, C, H, W)`` in [0, 1], C = 1 or 3.
    """

    name = "augmix"

    def __init__(
        self,
        severity: float = 3.0,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = False,
        jsd_weight: float = 12.0,
        jsd: bool = True,
    ) -> None:
        positive(self.name, "severity", severity)
        positive(self.name, "width", width)
        positive(self.name, "alpha", alpha)
        positive(self.name, "jsd_weight", jsd_weight, allow_zero=True)
        if severity > 10 or int(width) != width or int(depth) != depth or not (depth == -1 or depth >= 1):
            raise ConfigError(f"{self.name}: need 0 < severity <= 10, integer width >= 1 and depth -1 or >= 1; "
                              f"got severity={severity}, width={width}, depth={depth}")  # fmt: skip
        self.severity, self.width, self.depth, self.alpha = float(severity), int(width), int(depth), float(alpha)
        self.ops = op_names(all_ops)
        self.jsd_weight, self.jsd = float(jsd_weight), bool(jsd)

    def setup(self, model: nn.Module, train_size: int, task: Task) -> None:
        if task.dense:  # the geometric ops would move the image but not its targets
            raise ConfigError(
                f"{self.name} augments images only (rotate/shear/translate would misalign masks and landmarks); "
                f"use it for classification, not {task.kind}"
            )

    def augment(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """One AugMix view of each image ``(B, C, H, W)``."""
        if x.ndim != 4:
            raise ConfigError(f"{self.name} needs 2-D images (B, C, H, W); got shape {tuple(x.shape)}")
        return augment_and_mix(x, generator, ops=self.ops, severity=self.severity, width=self.width,
                               depth=self.depth, alpha=self.alpha)  # fmt: skip

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        x = batch.x
        if not self.jsd:
            out = model(self.augment(x, ctx.generator))
            return StepOutput(ctx.task.loss(out, batch.target).mean(), out.detach())
        views = torch.cat([x, self.augment(x, ctx.generator), self.augment(x, ctx.generator)])
        outputs = model(views)
        loss, js = consistency_loss(ctx.task, outputs, batch.target, 3, self.jsd_weight)
        return StepOutput(loss, outputs[: len(x)].detach(), {"jsd": float(js)})
