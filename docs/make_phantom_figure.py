"""Draw ``docs/img/phantom-ct.png``: example ``phantom-ct`` slices without lesion, with a solid nodule, with a
ground-glass opacity, each lesion outlined.

Usage: ``python docs/make_phantom_figure.py [--size 128] [--out docs/img/phantom-ct.png]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medrobust.data.phantom import DEFAULT_DOSE, simulate
from medrobust.data.phantom_anatomy import LESION_KINDS

PER_ROW = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "img" / "phantom-ct.png"))
    args = parser.parse_args()
    data = simulate(6 * PER_ROW, args.size, args.seed, split="test", label="3class")
    fig, axes = plt.subplots(3, PER_ROW, figsize=(2.6 * PER_ROW, 8.4), layout="constrained")
    for kind, row in enumerate(axes):
        for ax, i in zip(row, np.flatnonzero(data["label3"] == kind)[:PER_ROW]):
            ax.imshow(data["image"][i, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            if kind:
                ax.contour(data["mask"][i], levels=[0.5], colors="#ff5050", linewidths=0.8)
            r, c = data["spine_center"][i]
            ax.plot(c, r, "+", color="#40c0ff", markersize=5, markeredgewidth=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(LESION_KINDS[kind], fontsize=12)
    fig.suptitle(
        f"phantom-ct: simulated chest CT ({args.size}×{args.size}, {DEFAULT_DOSE:,.0f} photons/ray, lung window)\n"
        "red: lesion mask · blue +: spine landmark",
        fontsize=11,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
