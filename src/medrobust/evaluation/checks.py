"""Sanity checks of a robustness evaluation (Carlini et al. 2019, "On Evaluating Adversarial Robustness").

Each check returns ``{"name", "passed", "message"}``; :func:`warn_failed` emits the failures as
:class:`RobustnessCheckWarning`. Checks on curves are pure; probes (gradients, a large-ε attack, white noise)
run on a small subset of the data. The checks:

- ``above_majority``: clean accuracy above the majority-class rate (a constant classifier looks "robust");
- ``logits``: outputs are not probabilities (in [0, 1], rows summing to 1);
- ``input_gradients``: input gradients of the margin are finite and non-zero;
- ``eps0_equals_clean``: ε = 0 reproduces the clean accuracy;
- ``monotone``: accuracy does not increase with ε;
- ``large_eps``: an ε covering the whole box drives accuracy to at most :data:`LARGE_EPS_MAX_ACCURACY`;
- ``noise_weaker``: IMA's white-noise attack is not stronger than the gradient attack at the same ε;
- ``finite_outputs``: the model's outputs are finite under every threat and level (the rows of a level with a NaN
  or infinite output hold no numbers).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from medrobust.evaluation.sweep import Attack, build_attack, pgd_sweep
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task

Check = dict[str, Any]
LARGE_EPS_MAX_ACCURACY = 0.1
PROBE_MIN_STEPS = 20
PROBE_FRACTIONS = (0.25, 0.5, 1.0)  # of the whole-box ε, swept by the large-ε probe


class RobustnessCheckWarning(UserWarning):
    """A sanity check of a robustness evaluation failed."""


@dataclass(frozen=True)
class Curve:
    """Accuracy of one attack threat over its ε list, with per-sample correctness.

    Shape:
        ``correct``: one bool tensor ``(N,)`` per level, in dataset order.
    """

    threat: str
    name: str
    norm: str
    levels: tuple[float, ...]
    accuracy: tuple[float, ...]
    correct: tuple[Tensor, ...]
    options: dict[str, Any]


def check(name: str, passed: bool, message: str) -> Check:
    """A check record."""
    return {"name": name, "passed": bool(passed), "message": message}


def warn_failed(checks: Sequence[Check]) -> None:
    """Emit one :class:`RobustnessCheckWarning` per failed check."""
    for c in checks:
        if not c["passed"]:
            warnings.warn(f"{c['name']}: {c['message']}", RobustnessCheckWarning, stacklevel=3)


def majority_rate(targets: Tensor) -> float:
    """Frequency of the most common target (class, or label vector for multi-label). Shape: ``(N,)`` or ``(N, L)``."""
    t = targets.detach().cpu().reshape(len(targets), -1).numpy()
    _, counts = np.unique(t, axis=0, return_counts=True)
    return float(counts.max() / len(t))


def check_majority(clean_accuracy: float, targets: Tensor) -> Check:
    """Flag clean accuracy at or below the majority-class rate (a constant classifier looks "robust")."""
    rate = majority_rate(targets)
    ok = clean_accuracy > rate
    msg = f"clean accuracy {clean_accuracy:.3f} vs majority-class rate {rate:.3f}"
    if not ok:
        msg += ": a constant classifier scores this, robust numbers are meaningless"
    return check("above_majority", ok, msg)


def check_logits(outputs: Tensor, *, independent: bool) -> Check:
    """Flag outputs that look like probabilities rather than logits.

    Args:
        outputs: clean model outputs ``(N, K)`` (or ``(N,)``/``(N, 1)`` for one-logit binary).
        independent: True for sigmoid outputs (one-logit binary, multi-label): all values in [0, 1] is suspect;
            otherwise values in [0, 1] with rows summing to 1.
    """
    z = outputs.detach().float().reshape(len(outputs), -1)
    in_unit = bool(((z >= 0) & (z <= 1)).all())
    looks_prob = in_unit and (independent or bool(torch.allclose(z.sum(dim=1), torch.ones(len(z)), atol=1e-3)))
    msg = "outputs look like probabilities; the model must return logits (drop the final softmax/sigmoid)"
    return check("logits", not looks_prob, msg if looks_prob else "outputs look like logits")


def check_finite_outputs(nonfinite: Sequence[str]) -> Check:
    """Fails when the model returned NaN or Inf under any of the threat levels ``nonfinite`` (e.g. ``"clean"``,
    ``"pgd@0.0314"``); their rows then hold no numbers."""
    if not nonfinite:
        return check("finite_outputs", True, "model outputs are finite under every threat")
    shown = ", ".join(nonfinite[:4]) + (f" and {len(nonfinite) - 4} more" if len(nonfinite) > 4 else "")
    msg = f"the model returned NaN or Inf ({shown}); no numbers are reported there: check the weights and the inputs"
    return check("finite_outputs", False, msg)


def check_eps_zero(curve: Curve, clean_accuracy: float, n: int) -> Check | None:
    """ε = 0 must reproduce the clean accuracy (same number of correct samples); ``None`` if 0 is not in the grid."""
    if curve.levels[0] != 0:
        return None
    acc0 = curve.accuracy[0]
    ok = math.isfinite(acc0) and math.isfinite(clean_accuracy) and round(acc0 * n) == round(clean_accuracy * n)
    msg = f"accuracy at eps=0 {acc0:.4f}, clean {clean_accuracy:.4f}"
    return check(f"eps0_equals_clean[{curve.threat}/{curve.norm}]", ok, msg)


def check_monotone(curve: Curve) -> Check:
    """Robust accuracy must not increase with ε."""
    bad = [(a, b) for a, b in zip(curve.levels, curve.levels[1:]) if _acc(curve, b) > _acc(curve, a) + 1e-12]
    msg = "accuracy is non-increasing in eps" if not bad else (
        f"accuracy rises from eps={bad[0][0]:.4g} to eps={bad[0][1]:.4g}; the attack is weak or unstable "
        "(more steps/restarts)"
    )  # fmt: skip
    return check(f"monotone[{curve.threat}/{curve.norm}]", not bad, msg)


def _acc(curve: Curve, level: float) -> float:
    return curve.accuracy[curve.levels.index(level)]


def check_gradients(model: nn.Module, task: Task, x: Tensor, y: Tensor) -> Check:
    """Input gradients of the margin ``task.margin`` must be finite and non-zero for every probed sample.

    The margin is linear in the logits, so a zero gradient means the logits do not depend on the input
    locally (masked or non-differentiable model), not merely a saturated softmax.
    """
    with model_mode(model, False), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(task.margin(model(xg), y).sum(), xg)
    norms = grad.flatten(1).norm(dim=1)
    zero = int((norms == 0).sum())
    bad = int((~torch.isfinite(norms)).sum())
    ok = zero == 0 and bad == 0
    msg = f"{zero} of {len(x)} samples have zero and {bad} non-finite input gradients of the margin"
    if not ok:
        msg += ": gradient masking or a non-differentiable model; gradient attacks will underestimate the risk"
    return check("input_gradients", ok, msg)


def large_eps(norm: str, x: Tensor) -> float:
    """An ε whose ball covers the whole [0, 1] box: 1 (L∞) or ``sqrt(d)`` (L2)."""
    return 1.0 if norm == "linf" else math.sqrt(x[0].numel())


def check_large_eps(
    model: nn.Module, task: Task, curve: Curve, x: Tensor, y: Tensor, generator: torch.Generator | None
) -> Check:
    """At an ε covering the whole input box, accuracy must be near 0; else suspect gradient masking.

    Uses the grid's own largest ε when it is that large. Otherwise probes ``(x, y)`` with a PGD sweep over
    :data:`PROBE_FRACTIONS` of :func:`large_eps`, started at ``x`` (a random start in the whole box throws ``x``
    away, and huge steps only bounce between box corners); a sample broken at a smaller ε counts as broken.
    """
    probe = large_eps(curve.norm, x)
    if curve.levels[-1] >= probe:
        eps, acc, where = curve.levels[-1], curve.accuracy[-1], "grid"
    else:
        levels = [f * probe for f in PROBE_FRACTIONS]
        r = pgd_sweep(model, x, y, task=task, attack=_probe_attack(curve), eps_list=levels, generator=generator)[-1]
        eps, acc, where = probe, float((~r.fooled).float().mean()), f"probe on {len(x)} samples"
    ok = acc <= LARGE_EPS_MAX_ACCURACY
    msg = f"accuracy {acc:.3f} at {curve.norm} eps={eps:.4g} ({where})"
    if not ok:
        msg += ": should be near 0; suspect gradient masking or too few --steps"
    return check(f"large_eps[{curve.threat}/{curve.norm}]", ok, msg)


def _probe_attack(curve: Curve) -> Attack:
    steps = max(int(curve.options.get("steps", PROBE_MIN_STEPS)), PROBE_MIN_STEPS)
    loss = curve.options.get("loss", "ce")
    return build_attack("pgd", norm=curve.norm, early_stop=True, steps=steps, loss=loss, random_start=False)


def check_noise_vs_attack(
    model: nn.Module,
    task: Task,
    curve: Curve,
    noise_curve: Curve | None,
    x: Tensor,
    y: Tensor,
    generator: torch.Generator | None,
) -> Check | None:
    """The white-noise attack must not beat the gradient attack at the same norm and ε.

    The ε compared is the largest one at which the attack leaves some accuracy (noise cannot beat an attack
    that already breaks every sample), else the smallest ε > 0. Uses the grid's white-noise curve when it has
    that ε, otherwise probes ``(x, y)`` (the first ``len(x)`` samples of the data) with 100 noise draws.
    ``None`` when the curve has no ε > 0.
    """
    positive = [k for k, e in enumerate(curve.levels) if e > 0]
    if not positive:
        return None
    k = next((k for k in reversed(positive) if curve.accuracy[k] > 0), positive[0])
    eps = curve.levels[k]
    if noise_curve is not None and eps in noise_curve.levels:
        acc_noise, acc_attack, where = _acc(noise_curve, eps), curve.accuracy[k], "grid"
    else:
        noise = build_attack("noise", norm=curve.norm)
        r = noise(model, x, y, task=task, eps=eps, generator=generator)
        acc_noise = float((~r.fooled).float().mean())
        acc_attack = float(curve.correct[k][: len(x)].float().mean())
        where = f"probe on {len(x)} samples"
    ok = acc_noise >= acc_attack
    msg = f"white noise accuracy {acc_noise:.3f} vs {curve.threat} {acc_attack:.3f} at {curve.norm} eps={eps:.4g}"
    msg += f" ({where})" if ok else f" ({where}): the attack is weaker than noise"
    return check(f"noise_weaker[{curve.threat}/{curve.norm}]", ok, msg)
