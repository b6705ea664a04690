"""Errors that reach the user: each says which file, where, and what is wrong."""

from __future__ import annotations


class OrbwatchError(Exception):
    """Base of every error the CLI reports as a message instead of a traceback."""

    exit_code = 1


class ConfigError(OrbwatchError):
    """The config file is missing, unreadable or invalid."""

    exit_code = 3


class WorkspaceError(OrbwatchError):
    """The workspace cannot be opened, is of another version, or is not a workspace."""

    exit_code = 4


class InputError(OrbwatchError):
    """An input file is missing, unreadable or of an unknown format."""

    exit_code = 2
