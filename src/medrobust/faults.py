"""A testing hook: kill this process with SIGKILL at a named point, to check what a crash there leaves behind.

With ``MEDROBUST_FAULT=SITE:COUNT`` in the environment, the ``COUNT``-th call of :func:`hit` with ``SITE`` sends
SIGKILL to the calling process (no clean-up, no ``finally`` blocks run: as a power cut or the out-of-memory killer
would). ``tests/test_kill_anywhere.py`` uses it to kill ``train`` and ``evaluate`` at many points and to check that
every file left in the run folder is whole and that resuming gives the uninterrupted run's weights and rows. When the
variable is unset, :func:`hit` costs one environment lookup. It is not meant for users.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from medrobust.errors import ConfigError

ENV = "MEDROBUST_FAULT"
SITES = {
    "train.batch": "after a training batch's optimizer step",
    "train.epoch": "after an epoch's validation, before its checkpoint is written",
    "write.partial": "an atomic write with half its bytes in the temporary file",
    "write.temp": "an atomic write with the whole temporary file synced, before os.replace",
    "write.replaced": "right after an atomic write's os.replace",
    "evaluate.batch": "before each batch of each evaluation pass",
}
_hits: Counter[str] = Counter()


def hit(site: str) -> None:
    """Count a pass through ``site`` and kill this process if ``$MEDROBUST_FAULT`` asks for this pass.

    Raises:
        ConfigError: ``$MEDROBUST_FAULT`` is set but is not ``SITE:COUNT`` with a known site and a count ≥ 1.
    """
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, count = spec.rpartition(":")
    if name not in SITES or not count.isdigit() or int(count) < 1:
        raise ConfigError(f"{ENV}={spec!r} must be SITE:COUNT with COUNT >= 1 and SITE one of {', '.join(SITES)}")
    if name != site:
        return
    _hits[site] += 1
    if _hits[site] == int(count):
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
