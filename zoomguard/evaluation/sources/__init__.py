"""The datasets `zoomguard eval` reads, one reader per format, each listing items and then reading their images."""
