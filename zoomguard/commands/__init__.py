"""The `zoomguard` subcommands, one module each; cli.py parses arguments and dispatches."""
