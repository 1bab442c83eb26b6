"""One module per command (pipx style): each builds values and renders them; cli.py parses and dispatches."""
