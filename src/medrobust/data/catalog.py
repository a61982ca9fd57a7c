"""Where the datasets of other modules keep their files, for ``medrobust list datasets``.

The loaders in :mod:`~medrobust.data.folders`, :mod:`~medrobust.data.covid_cxr`, :mod:`~medrobust.data.medio` and
:mod:`~medrobust.data.medmnist` declare their own locations; this module adds the embedded phantoms,
Fashion-MNIST (Debian's folder by default) and MRNet.
"""

from __future__ import annotations

from pathlib import Path

from medrobust.data.idx import DEBIAN_FOLDER, FILES
from medrobust.data.paths import Location, register_location


def _fashion_present(path: Path) -> str:
    stems = [stem for pair in FILES.values() for stem in pair]
    missing = [s for s in stems if not ((path / f"{s}.gz").is_file() or (path / s).is_file())]
    return f"yes ({path})" if not missing else f"no ({len(missing)} of 4 IDX files missing in {path})"


def _mrnet_present(path: Path) -> str:
    wanted = ["train", "valid", "train-abnormal.csv", "valid-abnormal.csv"]
    missing = [w for w in wanted if not (path / w).exists()]
    return "yes" if not missing else f"no ({', '.join(missing)} missing in {path})"


for _name in ("phantom-ct", "phantom-ct-seg", "phantom-ct-landmark", "phantom-ct-det"):
    register_location(_name, Location(None, "nothing (simulated)"))
register_location("fashion-mnist", Location(DEBIAN_FOLDER, "the four Fashion-MNIST IDX files", _fashion_present))
register_location("mrnet", Location(None, "train/, valid/ and the MRNet label CSVs", _mrnet_present))
