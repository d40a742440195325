"""Scoring a model on a dataset split: metrics, calibration fit, charts."""
