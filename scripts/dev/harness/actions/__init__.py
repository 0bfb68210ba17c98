"""Marketplace actions' stand-ins that jobs run (``python -P -m scripts.dev.harness.actions.X``)."""
