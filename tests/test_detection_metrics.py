"""COCO mAP and lesion sensitivity of :mod:`medrobust.metrics.detection` against pycocotools and by hand."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from medrobust.metrics.detection import Detections, box_iou, coco_map, sensitivity_at_fppi


def _fixed_boxes(seed: int = 0) -> tuple[list[Detections], list[Detections]]:
    """Six images, three classes: true boxes and jittered, missed, duplicated and spurious detections."""
    rng = np.random.default_rng(seed)
    dets, truth = [], []
    for image in range(6):
        g = int(rng.integers(0, 4)) if image else 0  # image 0 has no true boxes, only false positives
        xy = rng.uniform(0, 80, (g, 2))
        wh = rng.uniform(4, 30, (g, 2))
        gt_boxes = np.hstack([xy, xy + wh])
        gt_labels = rng.integers(0, 3, g) if image != 5 else np.zeros(g, dtype=np.int64)
        jitter = gt_boxes + rng.normal(0, 2.5, gt_boxes.shape)
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)
        keep = rng.uniform(size=g) < 0.8  # some lesions are missed
        extra_xy = rng.uniform(0, 90, (3, 2))
        spurious = np.hstack([extra_xy, extra_xy + rng.uniform(3, 20, (3, 2))])
        boxes = np.vstack([jitter[keep], jitter[keep][:1] + 0.5, spurious])  # a near-duplicate of the first hit
        labels = np.concatenate([gt_labels[keep], gt_labels[keep][:1], rng.integers(0, 3, 3)])
        scores = np.round(rng.uniform(0.05, 1, len(boxes)), 2)  # rounded: ties between images
        dets.append(Detections(boxes, labels.astype(np.int64), scores))
        truth.append(Detections(gt_boxes, gt_labels.astype(np.int64), np.ones(g)))
    return dets, truth


def _pycocotools_stats(dets: list[Detections], truth: list[Detections], num_classes: int) -> np.ndarray:
    coco_mod = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    anns, results = [], []
    for i, (d, t) in enumerate(zip(dets, truth), start=1):
        for b, lab in zip(t.boxes, t.labels):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab) + 1, "bbox": xywh(b),
                         "area": float(w * h), "iscrowd": 0})  # fmt: skip
        for b, lab, s in zip(d.boxes, d.labels, d.scores):
            results.append({"image_id": i, "category_id": int(lab) + 1, "bbox": xywh(b), "score": float(s)})
    gt = coco_mod.COCO()
    gt.dataset = {"images": [{"id": i} for i in range(1, len(truth) + 1)], "annotations": anns,
                  "categories": [{"id": c + 1} for c in range(num_classes)]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = cocoeval.COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_matches_pycocotools(seed: int) -> None:
    dets, truth = _fixed_boxes(seed)
    stats = _pycocotools_stats(dets, truth, 3)
    ours = coco_map(dets, truth, 3)
    assert ours["map"] == pytest.approx(stats[0], abs=1e-12)
    assert ours["map@0.5"] == pytest.approx(stats[1], abs=1e-12)
    assert ours["map@0.75"] == pytest.approx(stats[2], abs=1e-12)
    assert 0 < ours["map"] < ours["map@0.5"] < 1  # the fixture is neither perfect nor hopeless


def test_coco_map_perfect_and_empty() -> None:
    truth = [Detections(np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([1]), np.ones(1))]
    assert coco_map(truth, truth, 2)["map"] == pytest.approx(1.0)  # class 0 has no ground truth: left out of the mean
    none = [Detections(np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0))]
    assert coco_map(none, truth, 2)["map"] == 0.0
    assert np.isnan(coco_map(none, none, 2)["map"])


def test_box_iou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    assert box_iou(a, b).tolist() == [[pytest.approx(1 / 7), 0.0, 1.0]]


def test_sensitivity_at_fppi_by_hand() -> None:
    truth = [Detections(np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]), np.array([0, 0]), np.ones(2)),
             Detections(np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0))]  # fmt: skip
    hit1, hit2, fp = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [50.0, 50.0, 60.0, 60.0]
    dets = [Detections(np.array([hit1, hit2]), np.array([0, 0]), np.array([0.9, 0.3])),
            Detections(np.array([fp, fp]), np.array([0, 0]), np.array([0.8, 0.5]))]  # fmt: skip
    # by score: hit (0.9), fp (0.8), fp (0.5), hit (0.3); two images
    assert sensitivity_at_fppi(dets, truth, 1, fppi=0.5) == 0.5  # one false positive allowed
    assert sensitivity_at_fppi(dets, truth, 1, fppi=1.0) == 1.0  # two allowed
    assert sensitivity_at_fppi(dets, truth, 1, fppi=0.1) == 0.5  # stop before the first false positive
