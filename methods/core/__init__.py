"""Small shared utilities: typed configs with helpful errors, atomic file writes."""
