"""Landmark detection by heatmap regression, with sub-pixel decoding and the predicate "error ≤ τ".

The model outputs one heatmap per landmark and is trained to regress a Gaussian of width ``sigma`` centred on
the true position (Payer et al. 2019; the AMAT landmark model adds offsets, METHODS §1.6). Decoding takes the
integer argmax and refines it by a local soft-argmax: the softmax (temperature ``temperature``) of the heatmap
values in the ``(2w+1)²`` window around the peak weights the window's pixel positions. It is differentiable in
the heatmap values, so the radial error itself serves as the attack margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from medrobust.errors import ConfigError, DataError
from medrobust.metrics import landmark as L
from medrobust.tasks.base import sdr_headline

_PAD = -1e4  # heatmap value outside the image (zero softmax weight without inf arithmetic)


@dataclass(frozen=True)
class LandmarkTask:
    """Per-sample heatmap loss, radial-error predicate and MRE/SDR metrics for ``K`` 2D landmarks.

    Args:
        num_landmarks: ``K``.
        class_names: optional landmark names.
        sigma: width (pixels) of the Gaussian target heatmaps.
        tau: a sample is right while its mean radial error over landmarks is ≤ ``tau`` (error unit).
        radii: SDR radii (error unit).
        spacing: error unit per pixel (e.g. mm per pixel; 1 reports pixels).
        window: half-width ``w`` of the soft-argmax window.
        temperature: softmax temperature of the soft-argmax (relative to a peak height of 1).

    Shape:
        - output: ``(N, K, H, W)`` heatmaps.
        - target: ``(N, K, 2)`` float ``(row, col)`` pixel coordinates (pixel centres at integers).
    """

    num_landmarks: int = 1
    class_names: tuple[str, ...] = ()
    sigma: float = 1.5
    tau: float = 2.0
    radii: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
    spacing: float = 1.0
    window: int = 1
    temperature: float = 0.1
    kind: str = "landmark"

    def __post_init__(self) -> None:
        if self.kind != "landmark":
            raise ConfigError(f"LandmarkTask has kind 'landmark', got {self.kind!r}")
        if self.num_landmarks < 1:
            raise ConfigError(f"a landmark task needs at least 1 landmark, got {self.num_landmarks}")
        if self.class_names and len(self.class_names) != self.num_landmarks:
            raise ConfigError(f"{len(self.class_names)} landmark names for {self.num_landmarks} landmarks")
        for name in ("sigma", "tau", "spacing", "temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"landmark task: {name} must be > 0, got {getattr(self, name)}")
        if self.window < 0:
            raise ConfigError(f"landmark task: window must be >= 0, got {self.window}")
        object.__setattr__(self, "radii", tuple(float(r) for r in self.radii))

    @property
    def dense(self) -> bool:
        """True: heatmaps per sample; ``accuracy`` is the rate of error ≤ ``tau``."""
        return True

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """``mre`` and one SDR (``sdr@2`` when 2 is one of the radii, else the first radius)."""
        return ("mre", sdr_headline(self.radii))

    @property
    def calibrated(self) -> bool:
        """False: no per-sample class probabilities."""
        return False

    @property
    def has_majority_rate(self) -> bool:
        """False: there is no majority class."""
        return False

    @property
    def output_dim(self) -> int:
        """Output channels the model must produce (one heatmap per landmark)."""
        return self.num_landmarks

    def _check_output(self, output: Tensor) -> None:
        if output.ndim != 4 or output.shape[1] != self.num_landmarks:
            raise DataError(
                f"landmark output has shape {tuple(output.shape)}; expected (N, {self.num_landmarks}, H, W)"
            )

    def heatmaps(self, target: Tensor, shape: tuple[int, int]) -> Tensor:
        """Gaussian target heatmaps ``(N, K, H, W)`` with peak 1 at the (sub-pixel) landmark positions."""
        h, w = shape
        rows = torch.arange(h, device=target.device, dtype=torch.float32).view(1, 1, h, 1)
        cols = torch.arange(w, device=target.device, dtype=torch.float32).view(1, 1, 1, w)
        t = target.float()
        d2 = (rows - t[..., 0, None, None]) ** 2 + (cols - t[..., 1, None, None]) ** 2
        return torch.exp(-d2 / (2 * self.sigma**2))

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample squared heatmap error, summed over pixels and averaged over landmarks ``(N,)``."""
        self._check_output(output)
        z = output.float()
        g = self.heatmaps(target, (z.shape[2], z.shape[3]))
        return (z - g).pow(2).sum(dim=(2, 3)).mean(dim=1)

    def decode(self, output: Tensor) -> Tensor:
        """Sub-pixel landmark positions ``(N, K, 2)`` (row, col): argmax plus local soft-argmax offset."""
        self._check_output(output)
        z = output.float()
        w = z.shape[3]
        r = self.window
        peak = z.flatten(2).argmax(dim=2)
        pr, pc = peak // w, peak % w
        padded = F.pad(z, (r, r, r, r), value=_PAD).flatten(2)
        offsets = torch.arange(-r, r + 1, device=z.device)
        dr = offsets.repeat_interleave(2 * r + 1)
        dc = offsets.repeat(2 * r + 1)
        idx = (pr[..., None] + r + dr) * (w + 2 * r) + (pc[..., None] + r + dc)
        weights = torch.softmax(padded.gather(2, idx) / self.temperature, dim=2)
        row = pr.float() + (weights * dr.float()).sum(dim=2)
        col = pc.float() + (weights * dc.float()).sum(dim=2)
        return torch.stack([row, col], dim=-1)

    def errors(self, output: Tensor, target: Tensor) -> Tensor:
        """Radial error per sample and landmark ``(N, K)`` in the task's unit."""
        return L.radial_errors(self.decode(output), target, self.spacing).to(torch.float32)

    def error(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample mean radial error over landmarks ``(N,)``."""
        return self.errors(output, target).mean(dim=1)

    def predict(self, output: Tensor) -> Tensor:
        """The decoded positions ``(N, K, 2)``."""
        return self.decode(output)

    def correct(self, output: Tensor, target: Tensor) -> Tensor:
        """Bool ``(N,)``: mean radial error ≤ ``tau``."""
        return self.error(output, target) <= self.tau

    def margin(self, output: Tensor, target: Tensor) -> Tensor:
        """``error − tau`` ``(N,)``: > 0 exactly when wrong; differentiable through the soft-argmax."""
        return self.error(output, target) - self.tau

    def check_target(self, target: Tensor) -> None:
        """Raise :class:`DataError` unless ``target`` is finite float ``(N, K, 2)``."""
        if target.ndim != 3 or target.shape[1:] != (self.num_landmarks, 2):
            raise DataError(f"landmark targets must have shape (N, {self.num_landmarks}, 2); got {tuple(target.shape)}")
        if not torch.is_floating_point(target) or not bool(torch.isfinite(target).all()):
            raise DataError("landmark targets must be finite float (row, col) coordinates; drop or fill missing ones")

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """``mre``, ``mre_std``, ``sdr@r`` for each radius, and ``accuracy`` (fraction with error ≤ ``tau``)."""
        e = self.errors(outputs, targets)
        out = L.landmark_metrics(e, self.radii)
        out["accuracy"] = float((e.mean(dim=1) <= self.tau).double().mean())
        return out
