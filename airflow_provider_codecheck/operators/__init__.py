"""Operators of the CodeArts Check provider."""
