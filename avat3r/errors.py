"""Exceptions raised at the project's edges.

Every message says what is wrong (naming the file or field) and what to do about it.
They subclass ValueError so that callers catching ValueError keep working.
"""


class Avat3rError(ValueError):
    """Base class of all errors the package raises on bad input."""


class InputError(Avat3rError):
    """An image, camera, capture folder or other user input is unusable."""


class CheckpointError(Avat3rError):
    """A checkpoint or weight file is missing, malformed or does not match its config."""


class FormatError(Avat3rError):
    """A file (.ply, cameras.json, dataset file) does not follow the expected layout."""
