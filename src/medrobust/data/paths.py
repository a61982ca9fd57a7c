"""Where dataset files live: the default data root, per-dataset folders and the "files present?" checks.

The default data root is ``$MEDROBUST_DATA``, else ``~/.medrobust/data``; a dataset without ``--data-root``
looks in its own sub-folder there (``medmnist/``, ``covid-ct/``, ``covid-chestxray-dataset/``). Loaders of
user-made folders (``image-folder``, ``dicom-folder``, ``nifti-folder``) have no default and need a root.
``medrobust list datasets`` asks each dataset's presence check whether its files are there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medrobust.errors import DataError

ENV = "MEDROBUST_DATA"


def data_root() -> Path:
    """The default data root: ``$MEDROBUST_DATA``, else ``~/.medrobust/data``."""
    return Path(os.environ.get(ENV) or Path.home() / ".medrobust" / "data").expanduser()


@dataclass(frozen=True)
class Location:
    """How a dataset finds its files.

    Attributes:
        default_sub: its folder under :func:`data_root` (``None``: the user must give a root).
        wants: what the root must hold, for messages (e.g. ``"COVID/ and non-COVID/"``).
        check: given an existing root, a short presence report (``"yes"``, ``"no: …"``, ``"3 flags: …"``);
            ``None`` for embedded datasets that need no files.
    """

    default_sub: str | None
    wants: str
    check: Callable[[Path], str] | None = None


LOCATIONS: dict[str, Location] = {}


def register_location(name: str, location: Location) -> None:
    """Declare where dataset ``name`` keeps its files (used by :func:`dataset_root` and :func:`presence`)."""
    LOCATIONS[name] = location


def dataset_root(name: str, root: str | os.PathLike[str] | None) -> Path:
    """The folder to read dataset ``name`` from: ``root`` if given, else its default folder; it must exist.

    Raises:
        DataError: one line naming the folder, what it must hold and the ``--data-root`` flag.
    """
    loc = LOCATIONS.get(name, Location(None, "the dataset files"))
    if root is None:
        if loc.default_sub is None:
            raise DataError(f"{name}: no data root given; pass --data-root DIR holding {loc.wants}")
        path = data_root() / loc.default_sub
        if not path.is_dir():
            raise DataError(
                f"{name}: default folder {path} does not exist; pass --data-root DIR holding {loc.wants} "
                f"(or set ${ENV})"
            )
        return path
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{name}: data root {path} is not a folder; pass --data-root DIR holding {loc.wants}")
    return path


def presence(name: str, root: str | None = None) -> str:
    """A short answer to "are the files of ``name`` there?" for ``medrobust list datasets``.

    Args:
        name: registered dataset name.
        root: the ``--data-root`` to check; ``None`` checks the dataset's default folder.
    """
    loc = LOCATIONS.get(name)
    if loc is None:
        return "?"
    if loc.check is None:
        return "embedded"
    if root is None and loc.default_sub is None:
        return "needs --data-root"
    path = Path(root).expanduser() if root is not None else data_root() / str(loc.default_sub)
    if not path.is_dir():
        return f"no ({path} missing)"
    return loc.check(path)
