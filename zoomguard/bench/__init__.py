"""`zoomguard bench`: throughput, latency, prefix reuse, pre-processing cost and memory, side by side."""
