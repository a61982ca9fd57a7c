"""One writer per run folder: an advisory lock that the operating system drops when its holder ends.

``train`` and ``evaluate`` hold the lock of the run folder they work on; a second one aimed at the same folder is
refused with a one-line :class:`ConfigError` naming the holder. The lock is ``flock`` on ``.medrobust.lock``
(``msvcrt.locking`` on Windows), so a crashed or killed process never leaves it stuck: the file may stay, the
lock does not. Whoever takes the lock removes the temporary files that a killed writer left in the folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from medrobust.errors import ConfigError
from medrobust.training.checkpoint import remove_temporaries

LOCK = ".medrobust.lock"


@contextmanager
def run_lock(folder: str | Path, command: str) -> Iterator[None]:
    """Hold the lock of run folder ``folder`` (created if missing) while ``command`` writes in it; once it is held,
    the temporary files of a killed writer are removed (:func:`~medrobust.training.checkpoint.remove_temporaries`).

    Raises:
        ConfigError: another process holds the lock.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK).open("a+") as f:
        if not _try_lock(f):
            f.seek(0)
            holder = f.read().strip() or "another medrobust process"
            raise ConfigError(f"{folder} is in use by {holder}; wait for it to end or choose another folder")
        f.seek(0)
        f.truncate()
        f.write(f"medrobust {command} (pid {os.getpid()})")
        f.flush()
        remove_temporaries(folder)
        yield  # closing the file releases the lock


def _try_lock(f: IO[str]) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
