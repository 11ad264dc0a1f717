"""The evaluation harness: feature extractors, statistics, metrics, reference caches."""
