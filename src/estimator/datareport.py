"""The data report: every change made to the input data, one row each.

Nothing is ever dropped or altered without a row here. Stages receive a ``DataReport`` and
``add`` to it; only ``io`` writes it to ``data_report.csv``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

COLUMNS = ("file", "line", "hole", "code", "what", "action")


@dataclass
class DataReport:
    """Collects data problems.

    Each row: ``file`` (name as given), ``line`` (1-based line in that file, header = line 1;
    ``None`` when not tied to a line), ``hole``, ``code`` (short machine-readable kind, e.g.
    ``below_detection``), ``what`` (the problem in the geologist's words, with the value) and
    ``action`` (what was done: ``set to 0.005``, ``row left out``, ``hole left out`` ...).
    """

    rows: list[dict] = field(default_factory=list)

    def add(self, file, line, hole, code: str, what: str, action: str) -> None:
        """Record one problem."""
        self.rows.append(
            {
                "file": "" if file is None else str(file),
                "line": None if line is None or pd.isna(line) else int(line),
                "hole": ""
                if hole is None or (not isinstance(hole, str) and pd.isna(hole))
                else str(hole),
                "code": code,
                "what": what,
                "action": action,
            }
        )

    def counts(self) -> dict[str, int]:
        """Number of rows per ``code``, in first-seen order."""
        return dict(Counter(r["code"] for r in self.rows))

    def to_frame(self) -> pd.DataFrame:
        """The report as a DataFrame with columns ``COLUMNS`` (``line`` is a nullable int)."""
        df = pd.DataFrame(self.rows, columns=list(COLUMNS))
        df["line"] = df["line"].astype("Int64")
        return df

    def __len__(self) -> int:
        return len(self.rows)
