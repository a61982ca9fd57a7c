"""Self-checks that make an adversarial evaluation trustworthy, in the spirit of AutoAttack's ``checks.py``.

Beside :mod:`medrobust.evaluation.checks`, every ``results.json`` carries:

- ``deterministic``: two forward passes on the same inputs agree (a randomised model needs EOT, and its robust
  accuracy from one draw is not an upper bound on anything);
- ``no_gradient_in_forward``: the forward pass computes no gradient of its own (an adaptive defence that does
  needs an adaptive attack);
- ``perturbation_bounds``: per attack, every adversarial point lies within ε of its input (max ‖δ‖ reported),
  inside [0, 1], and no point or output is NaN;
- ``square_vs_gradient``: in an AutoAttack cascade the score-based Square breaks at most
  :data:`MASKING_TOLERANCE` of the points the gradient attacks left robust (more means masked gradients).

The zero-input-gradient count is part of ``input_gradients`` in :mod:`medrobust.evaluation.checks`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from medrobust.evaluation.checks import Check, check
from medrobust.geometry import norm as norm_of
from medrobust.runtime import model_mode

__all__ = [
    "MASKING_TOLERANCE",
    "AttackAudit",
    "breakdown_rows",
    "check_deterministic",
    "check_gradient_free_forward",
    "check_perturbations",
    "check_square_vs_gradient",
]

MASKING_TOLERANCE = 0.002  # 0.2 percentage points of the evaluated points


@dataclass
class AttackAudit:
    """Per-ε statistics of one attack threat, accumulated over batches.

    Attributes:
        levels: the ε values.
        max_delta: the largest ‖x_adv − x‖ per ε (in the attack's norm).
        non_finite: adversarial points or outputs with NaN/Inf per ε.
        low, high: the smallest and largest adversarial pixel per ε.
        members: the cascade's member names (AutoAttack), else empty.
        broken_by: per ε, the member index that broke each point (−1 none), concatenated over batches.
    """

    norm: str
    levels: tuple[float, ...]
    max_delta: list[float] = field(default_factory=list)
    non_finite: list[int] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    broken_by: list[list[Tensor]] = field(default_factory=list)

    def __post_init__(self) -> None:
        k = len(self.levels)
        if not self.max_delta:  # a new audit (a restored one comes with its lists)
            self.max_delta, self.non_finite = [0.0] * k, [0] * k
            self.low, self.high = [float("inf")] * k, [float("-inf")] * k
            self.broken_by = [[] for _ in range(k)]

    def to_dict(self) -> dict[str, Any]:
        """The audit as plain containers and tensors (it is saved with a resumable evaluation)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> AttackAudit:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**saved, "levels": tuple(saved["levels"])})

    def add(self, level: int, x: Tensor, x_adv: Tensor, output: Tensor, details: dict[str, Any]) -> None:
        """Record one batch's adversarial points at level index ``level``.

        Shape:
            - x, x_adv: ``(B, *)``; output: ``(B, *)``.
        """
        finite = torch.isfinite(x_adv.flatten(1)).all(dim=1) & torch.isfinite(output.flatten(1)).all(dim=1)
        self.non_finite[level] += int((~finite).sum())
        if bool(finite.any()):
            self.max_delta[level] = max(self.max_delta[level], float(norm_of(x_adv - x, self.norm).max()))
            self.low[level] = min(self.low[level], float(x_adv[finite].min()))
            self.high[level] = max(self.high[level], float(x_adv[finite].max()))
        if "broken_by" in details:
            self.members = list(details["members"])
            self.broken_by[level].append(details["broken_by"].detach().cpu())

    def merge(self, later: AttackAudit) -> None:
        """Add the statistics of ``later``, accumulated over the batches that follow this one's (another rank's)."""
        for k in range(len(self.levels)):
            self.non_finite[k] += later.non_finite[k]
            self.max_delta[k] = max(self.max_delta[k], later.max_delta[k])
            self.low[k], self.high[k] = min(self.low[k], later.low[k]), max(self.high[k], later.high[k])
            self.broken_by[k] += later.broken_by[k]
        self.members = self.members or later.members

    def broken(self, level: int) -> Tensor:
        """Per point, the member that broke it at level index ``level`` (−1 none), ``(N,)``."""
        return torch.cat(self.broken_by[level]) if self.broken_by[level] else torch.empty(0, dtype=torch.long)


def breakdown_rows(threat: str, audit: AttackAudit, clean_correct: Tensor) -> list[dict[str, Any]]:
    """Rows ``accuracy_after:<member>``: robust accuracy after each member of the cascade has run, per ε.

    Shape:
        - clean_correct: ``(N,)`` bool, correctness on clean inputs.
    """
    rows: list[dict[str, Any]] = []
    if not audit.members:
        return rows
    n = len(clean_correct)
    for i, level in enumerate(audit.levels):
        broken = audit.broken(i)
        for k, member in enumerate(audit.members):
            robust = float((clean_correct & ~((broken >= 0) & (broken <= k))).float().mean())
            metric = f"accuracy_after:{member}"
            rows.append({"threat": threat, "norm": audit.norm, "level": float(level), "metric": metric, "value": robust,
                         "n": n})  # fmt: skip
    return rows


def check_perturbations(threat: str, audit: AttackAudit) -> Check:
    """Every adversarial point within ε (relative tolerance 1e-4), inside [0, 1], finite."""
    slack = [e * 1e-4 + 1e-6 for e in audit.levels]
    over = [(e, d) for e, d, s in zip(audit.levels, audit.max_delta, slack) if d > e + s]
    bad = sum(audit.non_finite)
    outside = any(lo < 0 or hi > 1 for lo, hi in zip(audit.low, audit.high) if lo <= hi)
    worst = ", ".join(f"ε {e:.4g}: {d:.4g}" for e, d in zip(audit.levels, audit.max_delta))
    if over or bad or outside:
        msg = f"{threat}: adversarial points outside the threat model (max ‖δ‖ {worst}; {bad} non-finite"
        return check("perturbation_bounds", False, msg + ("; pixels outside [0, 1])" if outside else ")"))
    return check("perturbation_bounds", True, f"{threat}: max ‖δ‖ per ε {worst}; all finite, in [0, 1]")


def check_square_vs_gradient(threat: str, audit: AttackAudit) -> Check | None:
    """Square may break at most :data:`MASKING_TOLERANCE` of the points the gradient members left robust."""
    if "square" not in audit.members:
        return None
    k = audit.members.index("square")
    rates = [float((audit.broken(i) == k).float().mean()) if audit.broken(i).numel() else 0.0
             for i in range(len(audit.levels))]  # fmt: skip
    worst = max(rates, default=0.0)
    if worst > MASKING_TOLERANCE:
        msg = (f"{threat}: the score-based Square attack broke {worst:.1%} of the points after the gradient attacks "
               "failed on them: gradients are masked; trust only the ensemble's number")  # fmt: skip
        return check("square_vs_gradient", False, msg)
    return check("square_vs_gradient", True, f"{threat}: Square added at most {worst:.2%} (≤ {MASKING_TOLERANCE:.1%})")


def check_deterministic(model: nn.Module, x: Tensor) -> Check:
    """Two eval-mode forward passes on ``x`` agree (relative tolerance 1e-5)."""
    with model_mode(model, False), torch.no_grad():
        a, b = model(x).float(), model(x).float()
    same = bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))
    msg = "repeated forward passes agree" if same else (
        "repeated forward passes differ: the model is randomised, so one draw's robust accuracy means little; "
        "evaluate with EOT (average the gradient over draws)")  # fmt: skip
    return check("deterministic", same, msg)


@contextlib.contextmanager
def _count_gradient_calls() -> Iterator[list[int]]:
    """Count ``torch.autograd.grad`` and ``Tensor.backward`` calls inside the block."""
    calls = [0]
    grad, backward = torch.autograd.grad, torch.Tensor.backward

    def counting_grad(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return grad(*args, **kwargs)

    def counting_backward(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return backward(self, *args, **kwargs)

    torch.autograd.grad, torch.Tensor.backward = counting_grad, counting_backward  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        torch.autograd.grad, torch.Tensor.backward = grad, backward  # type: ignore[method-assign]


def check_gradient_free_forward(model: nn.Module, x: Tensor) -> Check:
    """The forward pass itself takes no gradient (a defence that does is adaptive and needs an adaptive attack)."""
    with model_mode(model, False), torch.no_grad(), _count_gradient_calls() as calls:
        model(x)
    if calls[0]:
        return check("no_gradient_in_forward", False, f"the forward pass computed {calls[0]} gradient(s) itself: an "
                     "adaptive defence; the attacks here do not adapt to it")  # fmt: skip
    return check("no_gradient_in_forward", True, "the forward pass computes no gradient")
