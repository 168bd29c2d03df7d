"""The exceptions fairnc raises. Every one is a :class:`Error`; each also derives from the
built-in exception of its kind, so ``except FileNotFoundError`` and ``except ValueError`` work as
they would for any Python library. The message is the CLI's one line: the file, option or step,
and what is wrong with it."""

from __future__ import annotations

__all__ = ["Error", "InputError", "FileNotFound", "PermissionDenied"]


class Error(Exception):
    """Base of every fairnc error (also raised as such for internal errors)."""


class InputError(Error, ValueError):
    """An option, a file's contents or a model is not what the step needs."""


class FileNotFound(Error, FileNotFoundError):
    """A file or directory the step reads does not exist."""


class PermissionDenied(Error, PermissionError):
    """A file or directory cannot be read or written."""
