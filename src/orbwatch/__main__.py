"""``python -m orbwatch``."""

from orbwatch.cli.main import app

app()
