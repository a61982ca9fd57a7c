"""Per-sample minimal adversarial distance: bisection search over ε with PGD, then boundary refinement.

The per-sample margin of IMA (Ma & Liang, CMPB 2023, arXiv 2005.09147), measured after training for
robustness curves and margin histograms.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medrobust.attacks.base import check_batch
from medrobust.attacks.boundary import bisect_boundary
from medrobust.attacks.pgd import PGD
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, check_norm, view
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task


def estimate_margins(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    task: Task,
    norm: Norm = "l2",
    eps_max: float,
    attack: PGD | None = None,
    search_steps: int = 10,
    bisect_steps: int = 10,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Smallest ε at which the attack breaks each sample.

    Clean-correct samples are attacked at ``eps_max``; those it breaks enter a bisection over ε (``search_steps``
    halvings of ``[0, eps_max]``, all samples at once with a per-sample ε), keeping the adversarial point found at
    the smallest breaking ε; finally the segment from ``x`` to that point is bisected onto the boundary
    (``bisect_steps``). The estimate is ``‖first_wrong − x‖``: a misclassified point at that distance exists, so it
    is an upper bound on the true margin, tight when the attack is strong.

    Args:
        model: the classifier.
        x: inputs in [0, 1]; y: targets.
        task: defines "correct".
        norm: ``"l2"`` or ``"linf"``.
        eps_max: largest radius searched.
        attack: the untargeted :class:`PGD` to use (its norm must equal ``norm``); default 20 steps of the margin
            loss from ``x`` itself (no random start, whose off-gradient part would inflate the estimate) with early
            stopping.
        search_steps: halvings of the ε bracket; the bracket ends ``eps_max / 2^search_steps`` wide.
        bisect_steps: halvings of the final segment.
        generator: randomness of the attack's random starts.

    Returns:
        ``(N,)`` margins: 0 for samples misclassified when clean, ``inf`` for samples not broken at ``eps_max``.

    Shape:
        - x: ``(N, *)``; y: targets of ``task``; output: ``(N,)``.
    """
    check_norm(norm)
    if not 0 < eps_max < float("inf"):
        raise ConfigError(f"eps_max must be a finite number > 0; got {eps_max}")
    if search_steps < 0:
        raise ConfigError(f"search_steps must be >= 0; got {search_steps}")
    if attack is None:
        attack = PGD(norm=norm, steps=20, random_start=False, loss="margin", early_stop=True)
    if attack.norm != norm or attack.targeted:
        raise ConfigError(f"the margin attack must be untargeted with norm {norm!r}; got {attack}")
    check_batch(x, y, task, generator)
    x = x.detach()
    with model_mode(model, attack.train_mode), torch.no_grad():
        clean_ok = task.correct(model(x), y)
    margins = torch.where(clean_ok, torch.inf, 0.0).to(x.dtype)
    ids = clean_ok.nonzero().squeeze(1)
    if ids.numel() == 0:
        return margins
    first = attack(model, x[ids], y[ids], task=task, eps=eps_max, generator=generator)
    keep = first.fooled
    ids, xs, ys, far = ids[keep], x[ids][keep], y[ids][keep], first.x_adv[keep]
    if ids.numel() == 0:
        return margins
    lo, hi = xs.new_zeros(ids.numel()), xs.new_full((ids.numel(),), eps_max)
    for _ in range(search_steps):
        mid = (lo + hi) / 2
        run = attack(model, xs, ys, task=task, eps=mid, generator=generator)
        lo, hi = torch.where(run.fooled, lo, mid), torch.where(run.fooled, mid, hi)
        far = torch.where(view(run.fooled, far), run.x_adv, far)
    crossed = torch.ones_like(ids, dtype=torch.bool)
    edge = bisect_boundary(
        model, xs, far, ys, task=task, steps=bisect_steps, norm=norm, crossed=crossed, train_mode=attack.train_mode
    )
    margins[ids] = edge.upper
    return margins
