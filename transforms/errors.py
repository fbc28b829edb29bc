"""The errors that end a job before or after its work, each with its own exit code (transforms/cli.py).

A ``ValueError`` is a usage error (a bad flag: exit 2). :class:`InputError` is an input or setup
that cannot work (a broken library, an unreachable endpoint: exit 3); a missing input file is a
``FileNotFoundError`` (exit 3 too).
"""
from __future__ import annotations


class InputError(ValueError):
    """The input or setup cannot work: found before any work, with what to fix."""
