"""Promotion: the gate, the model registry, the update event, and the retrain cycle."""
