"""Writers of miniature datasets in their exact on-disk formats, and a one-epoch train + one-attack check."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from medrobust.attacks import ATTACKS
from medrobust.config import ExperimentConfig
from medrobust.training.runs import Run, train_run


def write_png(path: Path, value: int, size: tuple[int, int] = (20, 16), *, mode: str = "L", seed: int = 0) -> None:
    """A small image whose mean is about ``value`` (class-dependent brightness makes the data learnable)."""
    rng = np.random.default_rng(seed)
    h, w = size
    arr = np.clip(value + rng.integers(-20, 20, (h, w)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    (img.convert("RGB") if mode == "RGB" else img).save(path)


def write_class_folders(
    root: Path, counts: dict[str, int], *, ext: str = ".png", size: tuple[int, int] = (20, 16)
) -> dict[str, list[Path]]:
    """``root/<class>/img_k<ext>``; class ``i`` has brightness ``40 + 150·i/(K-1)``."""
    files: dict[str, list[Path]] = {}
    for i, (name, count) in enumerate(counts.items()):
        value = 40 + 150 * i // max(len(counts) - 1, 1)
        files[name] = [root / name / f"img_{k:03d}{ext}" for k in range(count)]
        for k, path in enumerate(files[name]):
            write_png(path, value, size, seed=100 * i + k)
    return files


def truncate(path: Path) -> None:
    """Cut a file to half its length (a truncated download)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


COHEN_COLUMNS = [
    "patientid", "offset", "sex", "age", "finding", "RT_PCR_positive", "survival", "view", "modality", "date",
    "location", "folder", "filename", "doi", "url", "license", "clinical_notes", "other_notes",
]  # fmt: skip


def write_cohen(root: Path, rows: list[dict[str, str]]) -> None:
    """Cohen et al.'s layout: ``metadata.csv`` (their columns) and the PNGs it names under ``images/``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COHEN_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COHEN_COLUMNS})


def cohen_rows(patients: int = 12, per_patient: int = 2) -> list[dict[str, str]]:
    """Rows for ``patients`` patients (every third one COVID-19), with PA/AP/L views and a CT row."""
    rows = []
    findings = ["Pneumonia/Viral/COVID-19", "Pneumonia/Bacterial/Streptococcus", "No Finding"]
    for p in range(patients):
        for k in range(per_patient):
            rows.append({
                "patientid": str(p + 1), "finding": findings[p % 3], "view": "PA" if k % 2 == 0 else "AP",
                "modality": "X-ray", "folder": "images", "filename": f"p{p + 1}_{k}.png",
            })  # fmt: skip
    rows.append({"patientid": "1", "finding": findings[0], "view": "L", "modality": "X-ray", "folder": "images",
                 "filename": "lateral.png"})  # fmt: skip
    rows.append({"patientid": "2", "finding": findings[1], "view": "Axial", "modality": "CT", "folder": "volumes",
                 "filename": "ct.nii.gz"})  # fmt: skip
    rows.append({"patientid": "99", "finding": "todo", "view": "PA", "modality": "X-ray", "folder": "images",
                 "filename": "todo.png"})  # fmt: skip
    return rows


def write_cohen_images(root: Path, rows: list[dict[str, str]]) -> None:
    for i, row in enumerate(rows):
        if row["folder"] == "images":
            write_png(root / "images" / row["filename"], 200 if "COVID-19" in row["finding"] else 60, seed=i)


def write_labels_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def train_and_attack(
    tmp_path: Path, name: str, root: Path, options: dict[str, Any], model: str = "small_cnn"
) -> tuple[Run, dict[str, float]]:
    """Train a tiny CNN for one epoch on the dataset, then attack its test split with FGSM (L∞, ε = 0.05).

    Returns:
        The run and ``{"clean": accuracy, "fgsm": accuracy under attack, "max_change": largest pixel change}``.
    """
    config = ExperimentConfig.from_dict({
        "data": {"name": name, "root": str(root), "options": options},
        "model": {"name": model, "options": {"width": 4}},
        "optim": {"lr": 0.01},
        "train": {"epochs": 1, "batch_size": 4, "eval_batch_size": 16, "progress": False, "device": "cpu",
                  "amp": False},
    })  # fmt: skip
    run, _ = train_run(config, tmp_path / "run")
    test = run.dataset("test")
    x, y, _ = test.batch(torch.arange(len(test)))
    run.model.eval()
    result = ATTACKS.create("fgsm", norm="linf")(run.model, x, y, task=run.task, eps=0.05)
    with torch.no_grad():
        clean = run.task.correct(run.model(x), y).float().mean().item()
    fooled_or_wrong = run.task.correct(result.output, y).float().mean().item()
    return run, {"clean": clean, "fgsm": fooled_or_wrong, "max_change": float((result.x_adv - x).abs().amax())}
