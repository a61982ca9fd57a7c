"""User-facing exceptions.

Every error a user can cause (bad path, unknown name, bad value, corrupt file) raises a subclass of
:class:`MedrobustError` whose message is one line saying what was wrong and what to do. The CLI prints it
without a traceback and exits with status 2.
"""

from __future__ import annotations


class MedrobustError(Exception):
    """Base class of all user errors raised by medrobust."""


class ConfigError(MedrobustError, ValueError):
    """An impossible or malformed setting."""


class DataError(MedrobustError):
    """A missing, corrupt or inconsistent dataset file, or invalid tensors."""


class UnknownNameError(MedrobustError, KeyError):
    """A name that is not in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WriteError(MedrobustError, OSError):
    """A file could not be written (disk full, file-size limit, read-only folder); its previous version is intact."""


def one_line(err: object) -> str:
    """``str(err)`` with all whitespace runs (newlines from library messages) collapsed to one space."""
    return " ".join(str(err).split())
