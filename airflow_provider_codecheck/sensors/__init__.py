"""Sensors of the CodeArts Check provider."""
