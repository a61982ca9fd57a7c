"""medrobust: train medical-image networks that stay correct under adversarial attacks and noise, and measure
that robustness honestly.

Quick start::

    import medrobust
    from medrobust import data
    test = data.load("phantom-ct", split="test")
    model = medrobust.load_model("runs/demo/standard")
"""

from medrobust.errors import ConfigError, DataError, MedrobustError, UnknownNameError
from medrobust.training.runs import Run, load_model, load_run, train_run

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "MedrobustError",
    "Run",
    "UnknownNameError",
    "__version__",
    "load_model",
    "load_run",
    "train_run",
]
