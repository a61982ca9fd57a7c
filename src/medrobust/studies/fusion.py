"""Logistic-regression fusion of per-plane scores (MRNet; Bien et al., PLoS Medicine 2018), in torch.

The fitted model is scikit-learn's default ``LogisticRegression`` (L2 penalty on the weights, not on the
intercept, strength ``1/C``): it minimises ``Σᵢ log(1 + e^{zᵢ}) − yᵢ·zᵢ + ‖w‖²/(2C)`` with ``z = Xw + b``. The
problem is smooth and strictly convex, so a damped Newton method reaches the optimum to machine precision in a
few iterations (the tests compare coefficients and probabilities with scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from medrobust.errors import ConfigError, DataError


def _objective(a: Tensor, y: Tensor, theta: Tensor, c: float) -> Tensor:
    z = a @ theta
    return (torch.nn.functional.softplus(z) - y * z).sum() + theta[:-1].pow(2).sum() / (2 * c)


@dataclass
class LogisticFusion:
    """Binary logistic regression ``p = σ(w·x + b)`` over a few scores per case.

    Attributes:
        coef: weights ``(P,)``; intercept: ``b``; iterations: Newton steps taken.
    """

    coef: Tensor
    intercept: float
    iterations: int = 0

    @classmethod
    def fit(
        cls, features: Tensor, targets: Tensor, *, c: float = 1.0, tol: float = 1e-10, max_iter: int = 100
    ) -> LogisticFusion:
        """Fit by damped Newton steps (float64).

        Args:
            features: ``(N, P)`` scores (e.g. the three plane models' probabilities).
            targets: ``(N,)`` labels 0/1, both present.
            c: inverse L2 strength (scikit-learn's ``C``).
            tol: stop when the gradient's max-norm falls below ``tol``.
            max_iter: Newton steps at most.
        """
        if not c > 0:
            raise ConfigError(f"logistic fusion: C must be > 0, got {c}")
        x, y = features.detach().double(), targets.detach().double().reshape(-1)
        if x.ndim != 2 or len(x) != len(y):
            raise DataError(f"logistic fusion: features {tuple(x.shape)} do not match targets {tuple(y.shape)}")
        if not bool(((y == 0) | (y == 1)).all()) or y.min() == y.max():
            raise DataError("logistic fusion needs 0/1 targets with both classes present in the fitting split")
        a = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        reg = torch.full((a.shape[1],), 1.0 / c, dtype=x.dtype)
        reg[-1] = 0.0
        theta = torch.zeros(a.shape[1], dtype=x.dtype)
        for it in range(1, max_iter + 1):
            p = torch.sigmoid(a @ theta)
            grad = a.T @ (p - y) + reg * theta
            if float(grad.abs().max()) < tol:
                return cls(theta[:-1].float(), float(theta[-1]), it - 1)
            hess = (a.T * (p * (1 - p))) @ a + torch.diag(reg)
            step = torch.linalg.solve(hess, grad)
            theta = _line_search(a, y, theta, step, c)
        return cls(theta[:-1].float(), float(theta[-1]), max_iter)

    def decision_function(self, features: Tensor) -> Tensor:
        """Fused logit ``(N,)`` of ``(N, P)`` features (differentiable, for attacks on the fused model)."""
        return features @ self.coef.to(features) + self.intercept

    def predict_proba(self, features: Tensor) -> Tensor:
        """Fused probability of the positive class, ``(N,)``."""
        return torch.sigmoid(self.decision_function(features))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly parameters."""
        return {"coef": self.coef.tolist(), "intercept": self.intercept, "iterations": self.iterations}


def _line_search(a: Tensor, y: Tensor, theta: Tensor, step: Tensor, c: float) -> Tensor:
    """Newton step with backtracking (halving) until the objective does not increase."""
    f0 = _objective(a, y, theta, c)
    t = 1.0
    for _ in range(30):
        cand = theta - t * step
        if _objective(a, y, cand, c) <= f0:
            return cand
        t /= 2
    return theta
