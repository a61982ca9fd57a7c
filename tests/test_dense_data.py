"""phantom-ct-seg and phantom-ct-landmark: views of the phantom-ct splits with the simulator's ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medrobust import data, models
from medrobust.errors import ConfigError
from medrobust.tasks import LandmarkTask, SegmentationTask


def test_phantom_seg_keeps_lesion_images_with_their_masks() -> None:
    seg = data.load("phantom-ct-seg", "val", size=28, n=3, progress=False)
    base = data.load("phantom-ct", "val", size=28, n=8, progress=False)  # 4·⌈3/2⌉ source samples
    src = seg.extras["phantom_index"]
    assert len(seg) == 3 and bool((base.targets[src] == 1).all())
    assert np.array_equal(seg.targets.numpy(), base.extras["mask"][src])
    assert bool((seg.targets.flatten(1).sum(1) > 0).all())  # every kept image has a lesion
    task = seg.task(reduce="mean")
    assert isinstance(task, SegmentationTask) and task.tau == 0.5 and task.reduce == "mean"
    kept = data.load("phantom-ct-seg", "val", size=28, n=8, lesion_free="keep", progress=False)
    assert len(kept) == 8 and int((kept.targets.flatten(1).sum(1) == 0).sum()) == 4
    with pytest.raises(ConfigError, match="lesion_free"):
        data.load("phantom-ct-seg", "val", size=28, n=3, lesion_free="maybe")


def test_phantom_landmarks_are_lesion_and_spine_centres() -> None:
    lm = data.load("phantom-ct-landmark", "val", size=28, n=3, tau=1.5, progress=False)
    base = data.load("phantom-ct", "val", size=28, n=8, progress=False)
    src = lm.extras["phantom_index"]
    assert lm.targets.shape == (3, 2, 2) and lm.targets.dtype == torch.float32
    assert np.allclose(lm.targets[:, 0].numpy(), base.extras["center"][src])
    assert np.allclose(lm.targets[:, 1].numpy(), base.extras["spine_center"][src])
    task = lm.task()
    assert isinstance(task, LandmarkTask) and task.num_landmarks == 2 and task.tau == 1.5
    assert lm.info.extra["pixel_mm"] == pytest.approx(360 / 28)
    spine = data.load("phantom-ct-landmark", "val", size=28, n=5, landmarks="spine", progress=False)
    assert spine.targets.shape == (5, 1, 2)


def test_unet_output_shapes() -> None:
    net = models.create("unet", in_channels=1, num_outputs=3, width=4, depth=3)
    for size in (28, 32, 17):
        assert net(torch.rand(2, 1, size, size)).shape == (2, 3, size, size)
