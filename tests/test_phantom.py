"""The embedded phantom-ct simulator: CT physics, anatomy/labels, determinism, registry and cache."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medrobust.data import load, phantom
from medrobust.data.ct_physics import default_angles, detector_bins, fbp, poisson_transmission, radon, system_matrices
from medrobust.data.phantom import simulate
from medrobust.errors import ConfigError


def disc(size: int, radius: float, center: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    c = torch.arange(size) - (size - 1) / 2
    y, x = torch.meshgrid(c, c, indexing="ij")
    return (((x - center[1]) ** 2 + (y - center[0]) ** 2) <= radius**2).float()


def test_radon_of_disc_matches_the_analytic_chord_length() -> None:
    size, radius = 64, 20.0
    sino = radon(disc(size, radius)[None])[0]
    t = torch.arange(detector_bins(size)) - (detector_bins(size) - 1) / 2
    chord = 2 * torch.sqrt((radius**2 - t**2).clamp_min(0))
    assert sino.shape == (math.ceil(math.pi / 2 * size), detector_bins(size))
    assert ((sino - chord).abs().sum(dim=1) / chord.sum()).max() < 0.03  # every view
    assert torch.allclose(sino.sum(dim=1), disc(size, radius).sum().expand(sino.shape[0]), rtol=5e-3)  # mass


def test_system_matrices_are_the_ones_the_phantom_was_published_with() -> None:
    """Projector and back-projector of 32×32 images, byte for byte as first built with SciPy (now torch only)."""
    digest = hashlib.sha256()
    for matrix in system_matrices(32, default_angles(32)):
        for part in (matrix.crow_indices(), matrix.col_indices(), matrix.values()):
            digest.update(part.numpy().tobytes())
    assert digest.hexdigest() == "5757db426541cd37cba965963b54298ba4ffd036164d6ebe0265bcc8778824bb"


@pytest.mark.parametrize("window", ["ramp", "hann"])
def test_fbp_of_a_noiseless_projection_reconstructs_the_disc(window: str) -> None:
    size = 64
    image = disc(size, 18.0, center=(-5.0, 7.0))
    recon = fbp(radon(image[None]), size, window)[0]
    corr = np.corrcoef(recon.flatten().numpy(), image.flatten().numpy())[0, 1]
    assert corr > 0.97
    assert abs(recon[disc(size, 15.0, center=(-5.0, 7.0)) > 0].mean().item() - 1.0) < 0.02  # interior value
    assert recon[disc(size, 21.0, center=(-5.0, 7.0)) == 0].abs().mean() < 0.02  # background


def test_poisson_noise_is_unbiased_with_variance_exp_p_over_dose() -> None:
    p = torch.full((2, 20_000), 2.0)
    low = poisson_transmission(p, 1e3, torch.Generator().manual_seed(0))
    high = poisson_transmission(p, 1e4, torch.Generator().manual_seed(0))
    assert abs(low.mean().item() - 2.0) < 0.01
    assert low.var().item() == pytest.approx(math.exp(2.0) / 1e3, rel=0.05)
    assert high.var().item() == pytest.approx(math.exp(2.0) / 1e4, rel=0.05)
    again = poisson_transmission(p, 1e3, [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)])
    assert torch.equal(again[0], low[0]) and not torch.equal(again[1], low[1])
    with pytest.raises(ConfigError):
        poisson_transmission(p, 0.0)


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    return simulate(24, 32, seed=3)


def test_simulate_shapes_dtypes_and_ranges(sample: dict[str, np.ndarray]) -> None:
    assert sample["image"].shape == (24, 1, 32, 32) and sample["image"].dtype == np.uint8
    assert sample["mask"].shape == sample["lung_mask"].shape == (24, 32, 32) and sample["mask"].dtype == np.uint8
    assert sample["center"].shape == sample["spine_center"].shape == (24, 2)
    assert sample["center"].dtype == np.float32 and sample["label"].dtype == np.int64
    assert set(np.unique(sample["mask"])) <= {0, 1} and sample["image"].std() > 0
    assert sample["image"].min() < 80 and sample["image"].max() > 200  # air/lung dark, tissue/bone bright


def test_labels_are_balanced_and_consistent(sample: dict[str, np.ndarray]) -> None:
    assert np.bincount(sample["label"]).tolist() == [12, 12]
    assert np.bincount(sample["label3"]).tolist() == [12, 6, 6]
    assert np.array_equal(sample["label"], (sample["label3"] > 0).astype(np.int64))
    three = simulate(24, 32, seed=3, label="3class")
    assert np.bincount(three["label3"]).tolist() == [8, 8, 8]


def test_lesion_mask_center_and_lung_field(sample: dict[str, np.ndarray]) -> None:
    has = sample["label"] == 1
    assert np.array_equal(sample["mask"].reshape(24, -1).any(axis=1), has)
    assert np.isnan(sample["center"][~has]).all() and np.isfinite(sample["center"][has]).all()
    for i in np.flatnonzero(has):
        r, c = np.round(sample["center"][i]).astype(int)
        assert sample["mask"][i, r, c] == 1 and sample["lung_mask"][i, r, c] == 1
    lesion = np.median(sample["image"][:, 0][sample["mask"] == 1])
    lung = np.median(sample["image"][:, 0][(sample["lung_mask"] == 1) & (sample["mask"] == 0)])
    assert lesion - lung > 25  # the lesion is visibly brighter than the lung parenchyma (in 1/255 units)


def test_spine_center_is_bone(sample: dict[str, np.ndarray]) -> None:
    r, c = np.round(sample["spine_center"]).astype(int).T
    assert ((r > 16) & (r < 32) & (abs(c - 16) < 4)).all()  # posterior, near the midline
    assert sample["image"][np.arange(24), 0, r, c].mean() > 220


def test_simulate_is_deterministic_prefix_stable_and_split_disjoint(sample: dict[str, np.ndarray]) -> None:
    again = simulate(24, 32, seed=3)
    assert all(np.array_equal(again[k], sample[k], equal_nan=True) for k in sample)
    prefix = simulate(10, 32, seed=3)
    assert all(np.array_equal(prefix[k], sample[k][:10], equal_nan=True) for k in sample if k != "image")
    assert np.abs(prefix["image"].astype(int) - sample["image"][:10]).max() <= 1  # float rounding of batched sums
    assert not np.array_equal(simulate(10, 32, seed=4)["image"], prefix["image"])
    assert not np.array_equal(simulate(10, 32, seed=3, split="val")["image"], prefix["image"])


def test_lower_dose_is_noisier() -> None:
    quiet = simulate(4, 32, dose=1e6)["image"].astype(float)
    noisy = simulate(4, 32, dose=2e3)["image"].astype(float)
    assert np.abs(noisy - quiet).mean() > 2.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 48}, "size"),
        ({"label": "4class"}, "label"),
        ({"n": 0}, "n >= 1"),
        ({"seed": -1}, "seed"),
        ({"dose": 0.0}, "dose"),
        ({"window": "cosine"}, "window"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load("phantom-ct", **{"n": 4, "size": 32, "cache": False, **options})


def test_load_binary_and_3class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDROBUST_CACHE", str(tmp_path))
    ds = load("phantom-ct", split="val", size=32, n=8, progress=False)
    assert ds.info.task_kind == "binary" and ds.info.class_names == ("no lesion", "lesion")
    assert ds.info.extra["seed"] == 0 and ds.info.extra["split"] == "val"
    x, _, i = ds[3]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1 and i == 3
    assert ds.extras["mask"].shape == (8, 32, 32) and ds.extras["spine_center"].shape == (8, 2)
    multi = load("phantom-ct", split="val", size=32, n=9, label="3class", progress=False)
    assert multi.info.task_kind == "multiclass" and multi.info.num_classes == 3
    assert np.array_equal(multi.targets.numpy(), multi.extras["label3"])


def test_cache_round_trip_and_corrupt_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDROBUST_CACHE", str(tmp_path / "env"))
    first = load("phantom-ct", split="test", size=32, n=6, progress=False)
    files = list((tmp_path / "env" / "phantom-ct").glob("*.npz"))
    assert len(files) == 1 and Path(first.info.extra["cache_file"]) == files[0]

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(phantom, "simulate", fail)
    second = load("phantom-ct", split="test", size=32, n=6, progress=False)
    assert torch.equal(first.images, second.images) and np.array_equal(first.extras["mask"], second.extras["mask"])
    monkeypatch.undo()
    files[0].write_bytes(b"not a zip file")
    monkeypatch.setenv("MEDROBUST_CACHE", str(tmp_path / "env"))
    with pytest.warns(UserWarning, match="unreadable"):
        third = load("phantom-ct", split="test", size=32, n=6, progress=False)
    assert torch.equal(first.images, third.images)
    assert np.load(files[0])["image"].shape == (6, 1, 32, 32)  # the corrupt file was replaced
    load("phantom-ct", split="test", size=32, n=6, root=str(tmp_path / "root"), progress=False)
    assert len(list((tmp_path / "root" / "phantom-ct").glob("*.npz"))) == 1  # root overrides the env variable
