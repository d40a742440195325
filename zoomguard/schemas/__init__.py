"""Typed contracts: the model's structured answers and the events zoomguard reads and writes."""
