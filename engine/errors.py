"""Errors that cross stage boundaries.

`UserError` is the one a user can fix: the command line prints its message as one line and exits 2.
Everything else is an internal error (exit 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (path, flag, config key, model file).

    The message says what is wrong and how to fix it, in one line.
    """


class UnknownNameError(UserError, ValueError):
    """A backend name that no registry knows; the message lists the valid names."""


class SourceError(UserError):
    """A source that cannot be opened or is not what it claims to be."""
