"""Where the studies write: ``benchmarks/results/studies/NAME.{json,log}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coreprune.io import atomic_write_bytes

OUT = Path(__file__).resolve().parents[1] / "results" / "studies"


def write_study(name: str, lines: list[str], result: Any = None) -> None:
    """Write the study's table ``lines`` to ``NAME.log`` and its numbers ``result`` (when given)
    to ``NAME.json``, each atomically (replacing the previous run's), and print the table."""
    OUT.mkdir(parents=True, exist_ok=True)
    if result is not None:
        atomic_write_bytes(OUT / f"{name}.json", (json.dumps(result, indent=2) + "\n").encode(),
                           overwrite=True)
    atomic_write_bytes(OUT / f"{name}.log", ("\n".join(lines) + "\n").encode(), overwrite=True)
    print("\n".join(lines))
