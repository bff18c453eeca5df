"""Geometry of coreset pruning on plain arrays (no ``nn.Module`` here).

* :func:`loewner_ellipsoid` — MVEE with dual weights and containment certificate (docs/method.md §1)
* :func:`caratheodory_reduce`, :func:`fast_caratheodory_reduce` — Carathéodory (§3b)
* :func:`linf_coreset` — ℓ∞-coreset with factor alpha (§3b)
* :func:`peel_sensitivities` — sensitivity upper bounds by peeling (§3c)
* :func:`project_top_k` — projection to top singular directions (§4)
* :func:`sample_distinct`, :func:`top_k_subset` — weighted subsets (§2, §3e)
"""

from .caratheodory import caratheodory_reduce, fast_caratheodory_reduce, reduce_convex_combination
from .coreset import (
    LinfCoreset,
    PeelResult,
    exact_sensitivities,
    linf_coreset,
    peel_sensitivities,
    project_top_k,
)
from .ellipsoid import Ellipsoid, loewner_ellipsoid, span_coordinates
from .sampling import (
    WeightedSubset,
    coreset_error_bound,
    sample_distinct,
    sample_size_bound,
    top_k_subset,
)

__all__ = [
    "Ellipsoid",
    "LinfCoreset",
    "PeelResult",
    "WeightedSubset",
    "caratheodory_reduce",
    "coreset_error_bound",
    "exact_sensitivities",
    "fast_caratheodory_reduce",
    "linf_coreset",
    "loewner_ellipsoid",
    "peel_sensitivities",
    "project_top_k",
    "reduce_convex_combination",
    "sample_distinct",
    "sample_size_bound",
    "span_coordinates",
    "top_k_subset",
]
