"""zoomguard: real-time AI-generated image detection (ZoomIn: locate, then examine) for Kafka pipelines."""

__version__ = "0.1.0"
