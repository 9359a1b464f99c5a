"""``python -m benchmarks [NAME ...] [OPTION ...]``: the benchmarks of this folder, one after the other, in one run.

With no name, every benchmark of ``BENCHMARKS`` runs, in its order. Options the runner does not know go, as they
are, to each named benchmark's own ``main(argv)`` (``python -m benchmarks fleet --moto-rounds 3``); names come
first. ``python -m benchmarks NAME --help`` shows that benchmark's options.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["BENCHMARKS", "Selection", "main", "parse"]

# One line per benchmark: the module ``benchmarks.<name>`` (its ``main()`` or ``main(argv)``) and what it measures.
BENCHMARKS: dict[str, str] = {
    "payloads": "payload codecs side by side with tritonclient",
    "local": "the local target on a real tritonserver against tritonclient.http",
    "sagemaker": "the SageMaker adapter on moto: wall time and AWS API calls",
    "fleet": "fleets, reap and status: parallel against sequential, API calls per operation",
    "aio": "asyncio invoke throughput on a local tritonserver against tritonclient.http.aio",
    "grpc": "the gRPC transport on a real tritonserver against tritonclient.grpc",
    "day2": "status --metrics: wall time on a local endpoint, API calls per SageMaker endpoint on moto",
    "verify": "time the quickstart's verify checks add to apply on a real tritonserver",
    "tls": "HTTP and gRPC over TLS through a loopback TLS front against tritonclient, connections reused",
}


@dataclass(frozen=True)
class Selection:
    """What to run: benchmark names in order, the options passed to each, and whether help was asked."""

    names: tuple[str, ...]
    options: tuple[str, ...]
    help: bool = False


def _parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in BENCHMARKS)
    listing = "\n".join(f"  {name:<{width}}  {summary}" for name, summary in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        usage="%(prog)s [-h] [NAME ...] [OPTION ...]",
        description="Run the benchmarks, one after the other (all of them when no NAME is given).",
        epilog=f"benchmarks:\n{listing}\n\nOPTIONs go to each named benchmark; see python -m benchmarks NAME --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # --help after a NAME is that benchmark's
    )
    parser.add_argument(
        "-h", "--help", action="store_true", help="show this help (after a NAME: its options)"
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="a benchmark to run (see the list below)")
    return parser


def parse(argv: Sequence[str]) -> Selection:
    """The command line as a :class:`Selection`; exits with status 2 and a usage message for an unknown name."""
    parser = _parser()
    known, options = parser.parse_known_args(list(argv))
    names = tuple(dict.fromkeys(known.names))
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark {', '.join(repr(name) for name in unknown)} (choose from {', '.join(BENCHMARKS)})"
        )
    if known.help and not names:
        parser.print_help()
        parser.exit(0)
    if known.help:
        options = ["--help", *options]
    return Selection(names or tuple(BENCHMARKS), tuple(options), known.help)


def _entry(name: str, options: Sequence[str]) -> Callable[[], None]:
    """Benchmark ``name``'s ``main``, bound to ``options``; exits with status 2 if it takes none but was given some."""
    benchmark_main = importlib.import_module(f"benchmarks.{name}").main
    if not inspect.signature(benchmark_main).parameters:
        if options:
            _parser().error(f"benchmark {name!r} takes no options, got: {' '.join(options)}")
        return lambda: benchmark_main()
    return lambda: benchmark_main(list(options))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmarks the command line names (``argv`` defaults to ``sys.argv[1:]``)."""
    selection = parse(sys.argv[1:] if argv is None else argv)
    # Every module is loaded and its options checked before the first benchmark starts: a typo fails at once.
    entries = {name: _entry(name, selection.options) for name in selection.names}
    for name, run in entries.items():
        if not selection.help:
            print(f"\n=== benchmarks.{name} ===", flush=True)
        run()


if __name__ == "__main__":
    main()
