"""Triggers of the CodeArts Check provider."""
