"""AugMix's image operations on batched tensors (Hendrycks et al., "AugMix: A Simple Data Processing Method to
Improve Robustness and Uncertainty", ICLR 2020; ``augmentations.py`` of the official code).

Every op maps ``x (B, C, H, W)`` in [0, 1] and per-sample magnitudes ``level (B,)`` (drawn from U(0.1, severity)
by the caller, on AugMix's 0…10 scale) to a tensor of the same shape, dtype and range; the random sign of the
geometric ops comes from ``generator``. ``C`` is 1 (grayscale, as for most medical images) or 3 (RGB); colour
ops act per channel as PIL does per band. Magnitudes follow the official code (METHODS §1.7): rotate
``int(30·l/10)`` degrees, shear ``0.3·l/10``, translate ``int(l·(size/3)/10)`` pixels of the *real* image size,
posterize to ``4 − int(4·l/10)`` bits, solarize above ``256 − int(256·l/10)``; the enhance ops (``all_ops``
only, they overlap test corruptions) use the factor ``1.8·l/10 + 0.1``. Geometric ops resample bilinearly and
fill with 0, as PIL does; shear and translate map output pixel ``(u, v)`` to input ``(u + s·v, v)``
(PIL's affine about the top-left corner), rotation turns about the centre.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Op = Callable[[Tensor, Tensor, torch.Generator | None], Tensor]
_GRAY = (0.299, 0.587, 0.114)  # PIL's convert("L") weights


def _view(v: Tensor, x: Tensor) -> Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


def sign(level: Tensor, generator: torch.Generator | None) -> Tensor:
    """±1 per sample (the official code flips the sign with probability 1/2)."""
    u = torch.rand(level.shape, generator=generator, device=level.device)
    return torch.where(u > 0.5, -1.0, 1.0).to(level.device)


def _to_uint8(x: Tensor) -> Tensor:
    return (x * 255).round().clamp(0, 255).long()


def affine(x: Tensor, theta: Tensor) -> Tensor:
    """Resample ``x`` at ``theta`` (normalised output → input coordinates), bilinear, zero fill.

    Shape:
        - x: ``(B, C, H, W)``; theta: ``(B, 2, 3)``.
    """
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


def autocontrast(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Stretch each channel of each image to span [0, 1] (PIL ``autocontrast``, cutoff 0); ignores ``level``."""
    flat = x.flatten(2)
    lo, hi = flat.amin(dim=2, keepdim=True), flat.amax(dim=2, keepdim=True)
    span = hi - lo
    out = (flat - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, out, flat).clamp(0, 1).reshape(x.shape)


def equalize(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Histogram equalisation of each channel on 256 grey levels (PIL ``ImageOps.equalize``); ignores ``level``.

    PIL's rule: ``step = (n − count of the last used level) // 255``; level ``i`` maps to
    ``(cumcount_before_i + step // 2) // step`` (clipped at 255); identity when ``step`` is 0.
    """
    b, c = x.shape[:2]
    v = _to_uint8(x).flatten(2).reshape(b * c, -1)
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    last_used = 255 - torch.flip(hist > 0, dims=[1]).long().argmax(dim=1)
    step = (v.shape[1] - hist.gather(1, last_used[:, None])) // 255  # (b·c, 1)
    before = torch.cumsum(hist, dim=1) - hist
    lut = ((before + step // 2) // step.clamp(min=1)).clamp(max=255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device).expand_as(lut))
    return (lut.gather(1, v).to(x.dtype) / 255).reshape(x.shape)


def posterize(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Keep the top ``4 − int(4·l/10)`` bits of each 8-bit value (PIL ``posterize``)."""
    bits = (4 - (level * 4 / 10).long()).clamp(0, 8)
    mask = (255 - (2 ** (8 - bits) - 1)).to(x.device)
    return (_to_uint8(x) & mask.reshape(-1, *([1] * (x.ndim - 1)))).to(x.dtype) / 255


def solarize(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Invert values at or above ``(256 − int(256·l/10))/255`` (PIL ``solarize``)."""
    threshold = (256 - (level * 256 / 10).long()).to(x.dtype) / 255
    return torch.where(x >= _view(threshold, x), 1 - x, x)


def _theta(n: int, device: torch.device) -> Tensor:
    return torch.eye(2, 3, device=device, dtype=torch.float64).repeat(n, 1, 1)


def rotate_theta(level: Tensor, sign: Tensor, h: int, w: int) -> Tensor:
    """Affine ``(n, 2, 3)`` of a rotation by ``sign·int(30·l/10)`` degrees about the centre."""
    rad = torch.deg2rad((level * 30 / 10).long().double() * sign.double())
    theta = _theta(len(level), level.device)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(rad), -torch.sin(rad) * h / w
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(rad) * w / h, torch.cos(rad)
    return theta


def _shear_theta(level: Tensor, sign: Tensor, h: int, w: int, axis: int) -> Tensor:
    s = level.double() * 0.3 / 10 * sign.double()
    theta = _theta(len(level), level.device)
    ratio = h / w if axis == 0 else w / h
    theta[:, axis, 1 - axis] = s * ratio
    theta[:, axis, 2] = s * ratio
    return theta


def _translate_theta(level: Tensor, sign: Tensor, h: int, w: int, axis: int) -> Tensor:
    size = w if axis == 0 else h
    theta = _theta(len(level), level.device)
    theta[:, axis, 2] = 2 * (level * (size / 3) / 10).long().double() * sign.double() / size
    return theta


ThetaFn = Callable[[Tensor, Tensor, int, int], Tensor]
GEOMETRIC: dict[str, ThetaFn] = {
    "rotate": rotate_theta,
    "shear_x": lambda level, sign, h, w: _shear_theta(level, sign, h, w, 0),
    "shear_y": lambda level, sign, h, w: _shear_theta(level, sign, h, w, 1),
    "translate_x": lambda level, sign, h, w: _translate_theta(level, sign, h, w, 0),
    "translate_y": lambda level, sign, h, w: _translate_theta(level, sign, h, w, 1),
}


def _geometric(name: str, x: Tensor, level: Tensor, generator: torch.Generator | None) -> Tensor:
    return affine(x, GEOMETRIC[name](level, sign(level, generator), *x.shape[-2:]))


def rotate(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Rotate by ``±int(30·l/10)`` degrees about the centre."""
    return _geometric("rotate", x, level, generator)


def shear_x(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Horizontal shear by ``±0.3·l/10`` (input ``u + s·v``)."""
    return _geometric("shear_x", x, level, generator)


def shear_y(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Vertical shear by ``±0.3·l/10`` (input ``v + s·u``)."""
    return _geometric("shear_y", x, level, generator)


def translate_x(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Shift by ``±int(l·(W/3)/10)`` pixels horizontally."""
    return _geometric("translate_x", x, level, generator)


def translate_y(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Shift by ``±int(l·(H/3)/10)`` pixels vertically."""
    return _geometric("translate_y", x, level, generator)


def _factor(level: Tensor, x: Tensor) -> Tensor:
    return _view(level * 1.8 / 10 + 0.1, x)


def _blend(degenerate: Tensor, x: Tensor, level: Tensor) -> Tensor:
    """PIL ``ImageEnhance``: ``degenerate + f·(x − degenerate)``, clipped."""
    return (degenerate + _factor(level, x) * (x - degenerate)).clamp(0, 1)


def _gray(x: Tensor) -> Tensor:
    if x.shape[1] != 3:
        return x
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand_as(x)


def brightness(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scale towards black by the factor ``1.8·l/10 + 0.1`` (``all_ops`` only)."""
    return _blend(torch.zeros_like(x), x, level)


def color(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Saturation: blend with the grey image (``all_ops`` only); the identity on one-channel images."""
    return _blend(_gray(x), x, level)


def contrast(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Blend with the image's mean grey value (``all_ops`` only)."""
    mean = _gray(x).flatten(1).mean(dim=1)
    return _blend(_view(mean, x).expand_as(x), x, level)


def sharpness(x: Tensor, level: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Blend with PIL's SMOOTH-filtered image (kernel ``[[1,1,1],[1,5,1],[1,1,1]]/13``, border kept)."""
    c = x.shape[1]
    k = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    k[1, 1] = 5
    smooth = F.conv2d(x, (k / 13).expand(c, 1, 3, 3), groups=c)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, level)


OPS: dict[str, Op] = {
    "autocontrast": autocontrast,
    "equalize": equalize,
    "posterize": posterize,
    "rotate": rotate,
    "solarize": solarize,
    "shear_x": shear_x,
    "shear_y": shear_y,
    "translate_x": translate_x,
    "translate_y": translate_y,
    "brightness": brightness,
    "color": color,
    "contrast": contrast,
    "sharpness": sharpness,
}
DEFAULT_OPS: tuple[str, ...] = tuple(list(OPS)[:9])
ALL_OPS: tuple[str, ...] = tuple(OPS)


def op_names(all_ops: bool = False) -> tuple[str, ...]:
    """The default op set, or every op (adds brightness, color, contrast, sharpness)."""
    return ALL_OPS if all_ops else DEFAULT_OPS
