"""How a benchmark prints its result: the rows and raw figures as JSON, or a title, the load around the run and
the table (the machine is shared, so every report says how busy it was)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any


def report(title: str, result: dict[str, Any], rows: Sequence[Any], table: str, *, as_json: bool) -> bool:
    """Print the report; True when it was the human one (the caller may add lines), False for JSON."""
    if as_json:
        print(json.dumps({"rows": [asdict(row) for row in rows], "raw": result}, indent=2))
        return False
    before = ", ".join(f"{value:.2f}" for value in result["loadavg_before"])
    after = ", ".join(f"{value:.2f}" for value in result["loadavg_after"])
    print(f"{title} (load average {before} -> {after})")
    print(table, flush=True)
    return True
