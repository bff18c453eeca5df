"""coreprune: data-independent coreset pruning of PyTorch networks (Tukan, Mualem, Maalouf,
NeurIPS 2022) via the Löwner ellipsoid and Carathéodory's theorem.

    >>> import coreprune
    >>> small = coreprune.prune(model, method="coreset", params_removed=0.9, seed=0)
    >>> coreprune.save(small, "small.pt"); coreprune.load("small.pt")
"""

from ._version import __version__
from .errors import (
    BudgetError,
    CheckpointError,
    CorepruneError,
    CorepruneWarning,
    DataFileError,
    GeometryError,
    InvalidArgumentError,
    InvalidWeightsError,
    OutputExistsError,
    UnsupportedModelError,
)
from .importance import get_method, methods, register_method
from .io import load, save
from .pruning import Pruner, PruneReport, prune, report_of

__all__ = [
    "BudgetError",
    "CheckpointError",
    "CorepruneError",
    "CorepruneWarning",
    "DataFileError",
    "GeometryError",
    "InvalidArgumentError",
    "InvalidWeightsError",
    "OutputExistsError",
    "PruneReport",
    "Pruner",
    "UnsupportedModelError",
    "__version__",
    "get_method",
    "load",
    "methods",
    "prune",
    "register_method",
    "report_of",
    "save",
]
