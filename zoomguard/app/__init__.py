"""Process wiring: the root settings, the worker service, the settings reference."""
