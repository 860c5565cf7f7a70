"""Links of the CodeArts Check provider."""
