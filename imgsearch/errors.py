"""Errors that carry a message meant for the user (the CLI prints them without a traceback)."""


class ImgsearchError(Exception):
    """Base class: the message is a complete sentence for the user."""


class DatabaseUnavailable(ImgsearchError):
    """The database cannot be reached or is not usable."""


class PgvectorMissing(DatabaseUnavailable):
    """The server lacks pgvector, or has a version that is too old."""


class Busy(ImgsearchError):
    """The work asked for waits on other costly work too long; try again in a moment."""


class WeightsUnavailable(ImgsearchError):
    """An encoder's weights are not on this machine and cannot be downloaded."""


class UnknownEncoder(ImgsearchError):
    """No encoder of that name is registered."""


class NotFound(ImgsearchError):
    """What was asked for (an image, a folder, a cluster) does not exist."""


class ImageNotFound(NotFound):
    """No indexed image has the id asked for."""


class DiskFull(ImgsearchError):
    """A file could not be written: the disk (or the quota) is full."""


class ImageDecodeError(ImgsearchError):
    """An image could not be read; `kind` classifies the reason for reports."""

    def __init__(self, message: str, kind: str = "decode") -> None:
        super().__init__(message)
        self.kind = kind


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
