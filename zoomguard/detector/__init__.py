"""The ZoomIn detector."""
