"""Hooks of the CodeArts Check provider."""
