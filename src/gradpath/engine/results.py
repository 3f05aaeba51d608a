"""``results.csv``: one row per epoch, columns fixed when the run starts (so a resumed run appends to the same file)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

__all__ = ["ResultsCSV"]


class ResultsCSV:
    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)

    def append(self, row: dict[str, Any]) -> None:
        """Add an epoch's row (missing columns stay empty: e.g. metrics on epochs without evaluation)."""
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in self.columns})

    def reset(self) -> None:
        """Start the file anew (a new run in a folder that holds an older run's results)."""
        self.path.unlink(missing_ok=True)

    def truncate(self, last_epoch: int) -> None:
        """On resume, drop rows of epochs the checkpoint does not contain (the run died after logging them)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                if int(r["epoch"]) <= last_epoch:
                    w.writerow(r)


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
