"""What the HTML report needs the model for: data fingerprint, per-class clean metrics, ROC curves under attack
and the example gallery (clean / adversarial / amplified perturbation per ε).

Everything is recomputed from the run folder (:func:`~medrobust.training.runs.load_run` and the run's test split)
with the attack, norm and options the results were computed with, on a fixed-seed subset, so the same run and
results give the same report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medrobust.data.base import Rows
from medrobust.evaluation.results import Results
from medrobust.evaluation.sweep import build_attack, pgd_sweep
from medrobust.metrics import classification as M
from medrobust.reporting.tables import format_level
from medrobust.runtime import eval_mode
from medrobust.training.runs import Run


@dataclass
class RocCurve:
    """ROC of the positive class under one attack at one ε (``fpr``/``tpr`` from :func:`~metrics.roc_curve`)."""

    threat: str
    eps: float
    fpr: list[float]
    tpr: list[float]
    auc: float


@dataclass
class ModelViews:
    """The model-derived parts of a report.

    Attributes:
        fingerprint: SHA-256 (first 16 hex digits) of the evaluated split's images and targets.
        n: samples behind ``per_class`` and ``roc``.
        per_class: per class ``{"class", "support", "sensitivity", "specificity", "balanced_accuracy"}`` (clean,
            one-vs-rest); empty for segmentation and landmarks.
        roc: ROC curves under each attack at each ε (binary tasks only), ε = 0 first.
        gallery: the gallery figure as PNG bytes (``None`` when the results hold no attack).
        gallery_eps: the ε shown in the gallery.
    """

    fingerprint: str
    n: int
    per_class: list[dict[str, Any]] = field(default_factory=list)
    roc: list[RocCurve] = field(default_factory=list)
    gallery: bytes | None = None
    gallery_eps: list[float] = field(default_factory=list)


def fingerprint(images: Rows, targets: Tensor, chunk: int = 256) -> str:
    """SHA-256 of the raw bytes, shapes and dtypes of ``images`` and ``targets`` (first 16 hex digits), read
    ``chunk`` rows at a time (a split cached on disk is never loaded whole).

    Example:
        >>> fingerprint(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])) == fingerprint(torch.zeros(2, 1, 4, 4),
        ...                                                                         torch.tensor([0, 1]))
        True
    """
    h = hashlib.sha256()
    for t in (images, targets):
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        for start in range(0, len(t), chunk):
            h.update(t[start : start + chunk].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _subset(total: int, n: int | None, seed: int) -> Tensor:
    """The evaluation runner's subset: a seeded random ``n`` of ``total`` indices, sorted (all when ``n`` is None)."""
    if n is None or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def attack_threats(results: Results) -> list[dict[str, Any]]:
    """The attack threats of ``results.config["threats"]`` (as stored by the runner)."""
    return [t for t in results.config.get("threats", []) if t.get("kind") == "attack"]


def model_views(
    run: Run, results: Results, *, examples: int = 4, max_n: int = 256, gallery_eps: int = 3, seed: int = 0
) -> ModelViews:
    """Compute the model-derived report parts of ``run`` for ``results`` (see :class:`ModelViews`).

    Args:
        run: the loaded run (model in eval mode).
        results: its evaluation; the split, subset, seed and attack settings are taken from it.
        examples: gallery rows.
        max_n: at most this many samples of the evaluated subset for per-class metrics and ROC curves.
        gallery_eps: at most this many positive ε columns in the gallery (spread over the grid).
        seed: seed of the gallery's example choice and attack starts.
    """
    data = run.dataset(results.split or "test")
    idx = _subset(len(data), results.config.get("subset"), results.seed)[:max_n]
    x, y, _ = data.batch(idx)
    views = ModelViews(fingerprint(data.images, data.targets), len(idx))
    task, model = run.task, run.model
    device = next(model.parameters()).device
    threats = attack_threats(results)
    with eval_mode(model):
        with torch.no_grad():
            clean = model(x.to(device)).cpu()
        if task.kind in ("multiclass", "binary"):
            views.per_class = per_class_metrics(task, clean, y)
        if task.kind == "binary":
            views.roc = _roc_curves(run, threats, x, y, clean, seed)
        if threats and examples > 0:
            gen = torch.Generator().manual_seed(seed)
            pick = torch.randperm(len(data), generator=gen)[: min(examples, len(data))].sort().values
            xg, yg, _ = data.batch(pick)
            levels = [v for v in threats[0]["levels"] if v > 0]
            shown = _spread(levels, gallery_eps)
            views.gallery, views.gallery_eps = gallery_figure(run, threats[0], xg, yg, shown, seed), shown
    return views


def per_class_metrics(task: Any, outputs: Tensor, targets: Tensor) -> list[dict[str, Any]]:
    """Clean one-vs-rest sensitivity, specificity and their mean (balanced accuracy) per class.

    Shape:
        ``outputs (N, K)`` logits (``(N, 1)`` single-logit binary); ``targets (N,)``.
    """
    k = task.num_classes
    pred = task.predict(outputs).cpu().numpy()
    t = targets.cpu().long().numpy()
    sens, spec = M.recall_per_class(t, pred, k), M.specificity_per_class(t, pred, k)
    names = list(task.class_names) or [str(i) for i in range(k)]
    return [{"class": names[i], "support": int((t == i).sum()), "sensitivity": float(sens[i]),
             "specificity": float(spec[i]), "balanced_accuracy": float((sens[i] + spec[i]) / 2)}
            for i in range(k)]  # fmt: skip


def _roc_curves(
    run: Run, threats: Sequence[dict[str, Any]], x: Tensor, y: Tensor, clean: Tensor, seed: int
) -> list[RocCurve]:
    task, device = run.task, next(run.model.parameters()).device
    positive = (y == task.positive_class).numpy()
    out = [_roc("clean", 0.0, positive, task.log_odds(clean).numpy())]
    for t in threats:
        levels = [v for v in t["levels"] if v > 0]
        if not levels:
            continue
        attack = build_attack(t["name"], norm=t["norm"], **t.get("options", {}))
        gen = torch.Generator(device=device).manual_seed(seed)
        sweep = pgd_sweep(run.model, x.to(device), y.to(device), task=task, attack=attack, eps_list=levels,
                          generator=gen)  # fmt: skip
        out += [_roc(_label(t), e, positive, task.log_odds(r.output).cpu().numpy()) for e, r in zip(levels, sweep)]
    return out


def _roc(threat: str, eps: float, positive: np.ndarray, score: np.ndarray) -> RocCurve:
    fpr, tpr, _ = M.roc_curve(positive, score)
    return RocCurve(threat, eps, fpr.tolist(), tpr.tolist(), M.roc_auc_binary(positive, score))


def _label(t: dict[str, Any]) -> str:
    return t.get("label") or t["name"]


def _spread(levels: Sequence[float], k: int) -> list[float]:
    """At most ``k`` of ``levels``, evenly spread and always including the largest."""
    if len(levels) <= k:
        return list(levels)
    picks = np.linspace(0, len(levels) - 1, k).round().astype(int)
    return [levels[i] for i in sorted(set(picks.tolist()))]


def gallery_figure(
    run: Run, threat: dict[str, Any], x: Tensor, y: Tensor, eps: Sequence[float], seed: int = 0
) -> bytes:
    """PNG of the example gallery: per example the clean input and, per ε, the adversarial input and the
    amplified perturbation, each titled with the prediction and its confidence (Dice for segmentation, error
    for landmarks); masks and landmarks are drawn over the images. The attack runs at each ε from the clean
    input, without early stopping.

    Shape:
        ``x (E, C, *spatial)`` in [0, 1]; ``y (E, *)``.
    """
    from matplotlib.figure import Figure

    from medrobust.reporting.png import png_bytes

    task, model = run.task, run.model
    device = next(model.parameters()).device
    attack = build_attack(threat["name"], norm=threat["norm"], early_stop=False, **threat.get("options", {}))
    gen = torch.Generator(device=device).manual_seed(seed)
    columns: list[tuple[str, Tensor, Tensor]] = []
    with torch.no_grad():
        columns.append(("clean", x, model(x.to(device)).cpu()))
    for e in eps:
        r = attack(model, x.to(device), y.to(device), task=task, eps=e, generator=gen)
        columns.append((f"ε {format_level(e)}", r.x_adv.detach().cpu(), r.output.detach().cpu()))
    rows, ncols = len(x), 1 + 2 * len(eps)
    fig = Figure(figsize=(1.9 * ncols, 2.1 * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, ncols, squeeze=False))
    for i in range(rows):
        for j, (name, xs, out) in enumerate(columns):
            ax = axes[i, 0 if j == 0 else 2 * j - 1]
            _show(ax, xs[i])
            _overlay(ax, task, out[i : i + 1], y[i : i + 1])
            ax.set_title(f"{name}\n{_verdict(task, out[i : i + 1], y[i : i + 1])}", fontsize=7)
            if j > 0:
                delta = _slice(xs[i] - x[i]).mean(dim=0)
                top = float(delta.abs().max())
                heat = axes[i, 2 * j]
                heat.imshow(delta.numpy(), cmap="RdBu_r", vmin=-max(top, 1e-12), vmax=max(top, 1e-12))
                heat.set_title(f"perturbation {name}\n×{1 / max(top, 1e-12):.0f} (max {top:.3g})", fontsize=7)
                heat.set_axis_off()
    return png_bytes(fig)


def _slice(img: Tensor) -> Tensor:
    """``(C, *spatial)`` → ``(C, H, W)``: the middle slice of a volume."""
    return img[:, img.shape[1] // 2] if img.ndim == 4 else img


def _show(ax: Any, img: Tensor) -> None:
    s = _slice(img.detach().float())
    if s.shape[0] == 3:
        ax.imshow(s.permute(1, 2, 0).clamp(0, 1).numpy())
    else:
        ax.imshow(s[0].numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()


def _overlay(ax: Any, task: Any, out: Tensor, y: Tensor) -> None:
    """Predicted mask (filled) and true mask (contour) for segmentation; predicted (×) and true (○) landmarks;
    true boxes (cyan) and detections with score ≥ the task's (red) for detection."""
    if task.kind == "segmentation":
        pred = task.predict(out)[0].float()
        pred, truth = (pred[pred.shape[0] // 2], y[0][y.shape[1] // 2]) if pred.ndim == 3 else (pred, y[0])
        ax.imshow(
            np.ma.masked_equal(pred.numpy(), 0), cmap="autumn", alpha=0.45, vmin=0, vmax=max(task.num_classes - 1, 1)
        )
        if bool((truth > 0).any()):
            ax.contour((truth > 0).float().numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
    elif task.kind == "landmark":
        p, t = task.predict(out)[0].numpy(), y[0].numpy()
        ax.scatter(t[:, 1], t[:, 0], s=18, facecolors="none", edgecolors="cyan", linewidths=0.9)
        ax.scatter(p[:, 1], p[:, 0], s=18, marker="x", color="red", linewidths=0.9)
    elif task.kind == "detection":
        from matplotlib.patches import Rectangle

        shown = task.predict(out)[0]
        for boxes, colour in ((y[0][y[0][:, 4] >= 0], "cyan"), (shown[shown[:, 4] >= task.score], "red")):
            for x0, y0, x1, y1 in boxes[:, :4].tolist():  # pixel j spans [j, j + 1); imshow centres it at j
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=colour, lw=0.8))


def _verdict(task: Any, out: Tensor, y: Tensor) -> str:
    """``pred NAME (confidence) ✓/✗`` for classification; Dice or radial error for dense tasks."""
    ok = "✓" if bool(task.correct(out, y)[0]) else "✗"
    if task.kind == "segmentation":
        return f"Dice {float(task.dice(out, y, reduce=None).reshape(-1)[0]):.2f} {ok}"
    if task.kind == "landmark":
        return f"error {float(task.error(out, y)[0]):.2f} {ok}"
    if task.kind == "detection":
        return f"{int((y[0][:, 4] >= 0).sum())} lesions {ok}"
    probs = task.probabilities(out)[0]
    names = list(task.class_names) or [str(i) for i in range(task.num_classes)]
    if task.kind == "multilabel":
        on = [names[i] for i in range(len(probs)) if probs[i] > 0.5]
        return f"{'+'.join(on) or 'none'} {ok}"
    k = int(task.predict(out)[0])
    return f"pred {names[k]} ({float(probs[k]):.2f}) {ok}"
