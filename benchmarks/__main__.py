"""``python -m benchmarks``: every benchmark module in this folder, one after the other, in one run."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ORDER = ["payloads", "local", "sagemaker", "fleet"]


def main() -> None:
    available = {path.stem for path in Path(__file__).parent.glob("*.py") if not path.stem.startswith("_")}
    wanted = sys.argv[1:] or [name for name in ORDER if name in available] + sorted(available - set(ORDER))
    for name in wanted:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main()
