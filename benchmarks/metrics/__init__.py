"""The evaluation harness: feature extractors, statistics, metrics, reference caches.

    from onestep.benchmarks.metrics import evaluate
    result = evaluate(generator, "digits-8", ["fd_digits", "is_digits"], num_samples=2000, data_floor=True)
    print(result.table()); result.to_json(); result.to_csv()

Modules: statistics (float64 streaming mean/cov), frechet, kid, prc, isc (the numbers),
reference (cached / imported reference statistics), protocols (metric names, paper protocols),
evaluate (the one evaluation call), extractors/ (feature networks behind one interface).
"""
from .evaluate import EvalResult, MetricOptions, MetricRecord, evaluate, evaluate_repeated
from .protocols import METRICS, PROTOCOLS, get_protocol, parse_metrics

__all__ = ["evaluate", "evaluate_repeated", "EvalResult", "MetricRecord", "MetricOptions", "METRICS", "PROTOCOLS",
           "get_protocol", "parse_metrics"]
