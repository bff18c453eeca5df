"""Exception types raised at coreprune's public boundaries.

Every error names the culprit (a module path, an argument and its value, a file) so that
a user can act on the message without reading a stack trace.
"""

from __future__ import annotations

__all__ = [
    "CorepruneError",
    "InvalidArgumentError",
    "InvalidWeightsError",
    "UnsupportedModelError",
    "BudgetError",
    "DataFileError",
    "CheckpointError",
    "OutputExistsError",
    "GeometryError",
    "DeviceMismatchError",
    "CorepruneWarning",
    "describe",
]


class CorepruneError(Exception):
    """Base class of every error coreprune raises on purpose."""


class InvalidArgumentError(CorepruneError, ValueError):
    """An argument is outside its allowed range or of the wrong kind."""


class InvalidWeightsError(CorepruneError, ValueError):
    """A model or point set holds NaN/Inf values, a non-float dtype, or an empty layer."""


class UnsupportedModelError(CorepruneError, TypeError):
    """A module sits in a prunable position but coreprune cannot prune or fold it."""


class BudgetError(CorepruneError, ValueError):
    """A pruning target cannot be met without removing every unit of some layer."""


class DataFileError(CorepruneError, OSError):
    """A data file is missing, truncated or not in the expected format."""


class CheckpointError(CorepruneError, OSError):
    """A checkpoint is missing, corrupt, or does not match the architecture."""


class OutputExistsError(CorepruneError, FileExistsError):
    """An output path exists already and overwriting was not asked for."""


class GeometryError(CorepruneError, ValueError):
    """A geometric routine received input it cannot handle (wrong shape, non-finite)."""


class DeviceMismatchError(CorepruneError, ValueError):
    """A model (or its inputs) is on another device than the one asked for, or on several."""


class CorepruneWarning(UserWarning):
    """Something the user should know about a result that is still correct (e.g. layers that
    could not be pruned and the share of parameters they hold)."""


def describe(exc: BaseException, limit: int = 200) -> str:
    """``"TypeName: first line of the message"`` (at most ``limit`` characters of the line):
    how a one-line coreprune error cites an exception it wraps."""
    text = str(exc).splitlines()[0][:limit] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"
