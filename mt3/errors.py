"""The base of every expected failure.

Bad input (a missing or corrupt file, a malformed MIDI, a wrong dataset folder, a bad option or
config value, a damaged checkpoint) raises a subclass of :class:`Mt3Error` whose message names the
file or option and says what to do. The command line reports any ``Mt3Error`` (and ``OSError``)
in one line with exit status 2; anything else is a bug and keeps its traceback.

Each module that can fail declares its own subclass (``AudioError``, ``MidiError``, ...), so
callers can catch one kind of failure; most also derive from ``ValueError`` as they always did.
"""

from __future__ import annotations


class Mt3Error(Exception):
    """An expected failure with a one-line message for the user."""


class UsageError(Mt3Error, ValueError):
    """A command-line option or function argument that is missing, out of range or inconsistent."""
