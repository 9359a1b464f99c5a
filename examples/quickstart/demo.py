"""The quickstart end to end on a real local Triton: apply, invoke with sample.jpg as binary+json, print the
top 3 labels, destroy. Run it with `make demo`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import endpointkit as ek

HERE = Path(__file__).resolve().parent


def main() -> int:
    spec = ek.load_spec(HERE / "endpoint.yaml")
    labels = (HERE / "model_repository" / "classifier" / "labels.txt").read_text().split()
    started = time.perf_counter()
    seen: set[tuple[str, str]] = set()

    def progress(event: ek.ProgressEvent) -> None:
        if (event.subject, event.status) not in seen:
            seen.add((event.subject, event.status))
            print(f"  {event.subject}: {event.status} ({event.elapsed:.1f}s)")

    state = ek.apply(spec, target="local", progress=progress)
    print(f"{state.name} is {state.status.value} at {state.url} after {time.perf_counter() - started:.1f}s")
    try:
        image = np.frombuffer((HERE / "sample.jpg").read_bytes(), dtype=np.uint8)
        response = ek.invoke_endpoint(state, {"IMAGE": image[np.newaxis, :]}, binary=True)
        scores = response["SCORES"].reshape(-1)
        print(f"SCORES from {response.model_name}: {scores.size} values, sum {scores.sum():.4f}")
        for rank, index in enumerate(np.argsort(scores)[::-1][:3], start=1):
            print(f"  {rank}. {labels[index]:<12} {scores[index]:.4f}")
    finally:
        ek.destroy(spec, target="local")
        print(f"{state.name} destroyed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
