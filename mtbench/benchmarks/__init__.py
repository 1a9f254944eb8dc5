"""Benchmarks known to mtbench, looked up by name."""

from collections.abc import Callable

from mtbench.errors import MtbenchError

# Constructors are imported lazily so that listing benchmarks stays cheap.
_BENCHMARKS: dict[str, str] = {
    "multidigitmnist": "mtbench.benchmarks.multidigitmnist:MultiDigitMNISTBenchmark",
    "nyuv2": "mtbench.benchmarks.dense:nyuv2",
    "nyuv2-288x384": "mtbench.benchmarks.dense:nyuv2_288x384",
    "sunrgbd": "mtbench.benchmarks.dense:sunrgbd",
}


def benchmark_names() -> list[str]:
    return sorted(_BENCHMARKS)


def get_benchmark(name: str):
    """Return an instance of the benchmark called ``name``."""
    if name not in _BENCHMARKS:
        raise MtbenchError(f"Unknown benchmark '{name}'. Known benchmarks: {', '.join(benchmark_names())}.")
    module_name, class_name = _BENCHMARKS[name].split(":")
    module = __import__(module_name, fromlist=[class_name])
    constructor: Callable = getattr(module, class_name)
    return constructor()
