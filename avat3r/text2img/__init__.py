"""Text -> portrait (diffusion) for the text route: see docs/TEXT2IMG.md."""
