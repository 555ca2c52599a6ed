"""The ``qfarm`` command (Typer + Rich)."""
