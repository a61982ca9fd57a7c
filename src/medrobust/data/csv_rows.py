"""Reading a CSV of per-file metadata with the checks every loader needs (shared by ``covid-cxr`` and the
DICOM / NIfTI folders)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from medrobust.errors import DataError, one_line


def read_csv_rows(
    path: Path, required: Sequence[str], optional: Sequence[str] = (), *, what: str = ""
) -> list[dict[str, str]]:
    """Rows of ``path`` as dicts, each with its 1-based file line in ``"_line"``.

    The ``required`` columns must exist, and every row must have a value in them and in the ``optional``
    columns that exist; otherwise a one-line :class:`DataError` names the file (and line) and, for missing columns,
    the header found; ``what`` is appended to that message (e.g. a hint about the expected file).
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                header = one_line(", ".join(reader.fieldnames or []))  # a quoted name may hold a newline
                raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has: {header}){what}")
            used = [*required, *(c for c in optional if c in (reader.fieldnames or []))]
            rows = []
            for row in reader:
                short = [c for c in used if row[c] is None]
                if short:
                    raise DataError(f"{path}:{reader.line_num}: row too short, no value for {', '.join(short)}")
                rows.append({**row, "_line": str(reader.line_num)})
            return rows
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: unreadable CSV ({one_line(err)})") from None
