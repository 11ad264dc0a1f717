"""Feature extractors behind one interface (see base.FeatureExtractor)."""
