"""Exceptions raised by chasm for bad input and impossible refinements."""

from __future__ import annotations


class ChasmError(Exception):
    """Base class of every error chasm raises on purpose."""


class InputError(ChasmError):
    """Bad input: a file, a line, what is wrong and what to do.

    Parameters
    ----------
    message : str
        What is wrong (and, when useful, what to do about it).
    path : str or None
        The file concerned.
    line : int or None
        1-based line number in ``path``.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f", line {self.line}"
            where += ": "
        return where + self.message


class ModelError(ChasmError):
    """A model that cannot be evaluated (e.g. a non-positive expansion parameter).

    Raised during a refinement trial, it makes the solver reject the step.
    """
