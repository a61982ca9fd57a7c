"""Parallel-beam CT physics: Radon transform, Poisson photon noise and filtered back-projection.

The projector is Joseph's method (one linear interpolation per row or column a ray crosses, weighted by the
path length); the back-projector is the usual pixel-driven one (linear interpolation on the detector). Both are
sparse matrices (torch CSR, duplicates summed in float64) built once per image size and cached in memory, so a
whole batch is projected or back-projected with one sparse-dense product.

References:
    P. M. Joseph, "An improved algorithm for reprojecting rays through pixel images", IEEE TMI 1982.
    A. C. Kak and M. Slaney, *Principles of Computerized Tomographic Imaging*, IEEE Press 1988, ch. 3.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from medrobust.errors import ConfigError

FILTERS = ("ramp", "hann")


def default_angles(size: int) -> int:
    """Number of views over [0, π) for an image of side ``size`` (≈ π/2 · size, the usual sampling rule)."""
    return math.ceil(math.pi / 2 * size)


def detector_bins(size: int) -> int:
    """Detector bins (unit spacing, odd, centred) covering the image diagonal."""
    return 2 * math.ceil(size * math.sqrt(2) / 2) + 1


def _sparse(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> Tensor:
    """A float32 CSR matrix from COO triplets: duplicates summed in float64, column indices sorted per row."""
    indices = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    coo = torch.sparse_coo_tensor(indices, torch.from_numpy(vals.astype(np.float64)), shape, check_invariants=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return coo.coalesce().float().to_sparse_csr()


def _joseph(size: int, n_angles: int) -> Tensor:
    """Forward projector, rows = rays (angle-major), columns = pixels (row-major)."""
    n_det = detector_bins(size)
    theta = np.arange(n_angles) * math.pi / n_angles
    t = np.arange(n_det) - (n_det - 1) / 2
    c = np.arange(size) - (size - 1) / 2
    rows, cols, vals = [], [], []
    for a, th in enumerate(theta):
        cos, sin = math.cos(th), math.sin(th)
        ray = a * n_det + np.repeat(np.arange(n_det), size)
        step = np.tile(c, n_det)  # the row (or column) coordinate each sample sits on
        if abs(cos) >= abs(sin):  # walk over rows: x = (t - y sin) / cos
            pos, weight = (np.repeat(t, size) - step * sin) / cos, 1 / abs(cos)
        else:  # walk over columns: y = (t - x cos) / sin
            pos, weight = (np.repeat(t, size) - step * cos) / sin, 1 / abs(sin)
        u = pos + (size - 1) / 2
        lo = np.floor(u).astype(np.int64)
        frac = u - lo
        fixed = np.tile(np.arange(size), n_det)
        for idx, w in ((lo, 1 - frac), (lo + 1, frac)):
            ok = (idx >= 0) & (idx < size) & (w > 0)
            pix = fixed * size + idx if abs(cos) >= abs(sin) else idx * size + fixed
            rows.append(ray[ok])
            cols.append(pix[ok])
            vals.append(weight * w[ok])
    shape = (n_angles * n_det, size * size)
    return _sparse(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), shape)


def _backprojector(size: int, n_angles: int) -> Tensor:
    """Pixel-driven back-projector, rows = pixels, columns = rays; includes the π / n_angles quadrature weight."""
    n_det = detector_bins(size)
    theta = np.arange(n_angles) * math.pi / n_angles
    c = np.arange(size) - (size - 1) / 2
    y, x = np.meshgrid(c, c, indexing="ij")
    u = x.ravel()[None, :] * np.cos(theta)[:, None] + y.ravel()[None, :] * np.sin(theta)[:, None] + (n_det - 1) / 2
    lo = np.floor(u).astype(np.int64)
    frac = u - lo
    pix = np.broadcast_to(np.arange(size * size)[None, :], u.shape)
    base = (np.arange(n_angles) * n_det)[:, None]
    rows = np.concatenate([pix.ravel(), pix.ravel()])
    cols = np.concatenate([(base + lo).ravel(), (base + np.minimum(lo + 1, n_det - 1)).ravel()])
    vals = np.concatenate([(1 - frac).ravel(), frac.ravel()]) * (math.pi / n_angles)
    return _sparse(rows, cols, vals, (size * size, n_angles * n_det))


@lru_cache(maxsize=8)
def system_matrices(size: int, n_angles: int) -> tuple[Tensor, Tensor]:
    """The cached sparse ``(projector, back-projector)`` pair for ``size``×``size`` images and ``n_angles`` views."""
    return _joseph(size, n_angles), _backprojector(size, n_angles)


def radon(images: Tensor, n_angles: int | None = None) -> Tensor:
    """Parallel-beam line integrals (in pixel units) of a batch of square images.

    Args:
        images: attenuation per pixel.
        n_angles: views over [0, π); default :func:`default_angles`.

    Shape:
        ``images`` ``(N, S, S)`` → sinogram ``(N, n_angles, detector_bins(S))``.
    """
    n, size = images.shape[0], images.shape[-1]
    angles = n_angles or default_angles(size)
    projector, _ = system_matrices(size, angles)
    flat = images.reshape(n, size * size).float().T.contiguous()
    return (projector @ flat).T.reshape(n, angles, detector_bins(size))


def _filter_response(n_det: int, window: str) -> Tensor:
    """Frequency response of the band-limited ramp (Kak & Slaney, ch. 3), optionally Hann-apodised."""
    if window not in FILTERS:
        raise ConfigError(f"unknown reconstruction filter {window!r}; use one of {', '.join(FILTERS)}")
    n_fft = 1 << (2 * n_det - 1).bit_length()
    k = np.concatenate([np.arange(1, n_fft // 2 + 1, 2), np.arange(n_fft // 2 - 1, 0, -2)])
    h = np.zeros(n_fft)
    h[0] = 0.25
    h[1::2] = -1 / (math.pi * k) ** 2
    response = np.real(np.fft.rfft(h))
    if window == "hann":
        freq = np.fft.rfftfreq(n_fft)
        response = response * (0.5 + 0.5 * np.cos(2 * math.pi * freq))
    return torch.from_numpy(response.astype(np.float32))


def fbp(sinogram: Tensor, size: int, window: str = "ramp") -> Tensor:
    """Filtered back-projection of a parallel-beam sinogram (inverse of :func:`radon`).

    Args:
        sinogram: line integrals from :func:`radon` (views over [0, π), unit detector spacing).
        size: side ``S`` of the reconstructed image.
        window: ``"ramp"`` (Ram-Lak) or ``"hann"`` (ramp × Hann, less noise, slightly blurrier).

    Shape:
        ``sinogram`` ``(N, A, D)`` → images ``(N, S, S)``.
    """
    n, angles, n_det = sinogram.shape
    response = _filter_response(n_det, window)
    n_fft = 2 * (response.shape[0] - 1)
    spectrum = torch.fft.rfft(sinogram.float(), n=n_fft, dim=-1) * response
    filtered = torch.fft.irfft(spectrum, n=n_fft, dim=-1)[..., :n_det]
    _, backprojector = system_matrices(size, angles)
    flat = filtered.reshape(n, angles * n_det).T.contiguous()
    return (backprojector @ flat).T.reshape(n, size, size)


def poisson_transmission(
    line_integrals: Tensor, photons: float, generators: torch.Generator | list[torch.Generator] | None = None
) -> Tensor:
    """Noisy line integrals ``-log(counts / I0)`` with ``counts ~ Poisson(I0 · exp(-p))`` (Beer–Lambert).

    Zero counts (photon starvation) are clamped to half a photon before the log, as scanners do.

    Args:
        line_integrals: noiseless ``p`` (dimensionless, attenuation × length).
        photons: incident photons per ray ``I0`` (the dose setting; higher is less noisy).
        generators: one torch generator for the batch, or one per sample (each sample's noise then does not
            depend on the rest of the batch).

    Shape:
        ``(N, ...)`` → same shape.
    """
    if not photons > 0:
        raise ConfigError(f"dose (photons per ray) must be > 0, got {photons}")
    expected = photons * torch.exp(-line_integrals)
    if isinstance(generators, list):
        counts = torch.stack([torch.poisson(e, generator=g) for e, g in zip(expected, generators)])
    else:
        counts = torch.poisson(expected, generator=generators)
    return -torch.log(counts.clamp_min(0.5) / photons)
