"""Model surgery: map modules to point sets (:mod:`.groups`), attention heads
(:mod:`.heads`), budgets (:mod:`.budget`), the :class:`Pruner` that applies an importance
method (:mod:`.pruner`) and the opt-in data-free distillation after it (:mod:`.distillation`)."""

from .budget import CostModel, build_cost_model, keep_counts_from_ratios, uniform_keep_counts
from .distillation import distill_on_synthetic_inputs
from .groups import UnitGroup, apply_selection, build_graph, find_unit_groups, unit_set
from .heads import HEAD_METHODS, AttentionLayer, find_attention_layers
from .pruner import (
    LayerReport,
    Pruner,
    PruneReport,
    check_model,
    default_example_inputs,
    prune,
    report_of,
)

__all__ = [
    "HEAD_METHODS",
    "AttentionLayer",
    "CostModel",
    "LayerReport",
    "PruneReport",
    "Pruner",
    "UnitGroup",
    "apply_selection",
    "build_cost_model",
    "build_graph",
    "check_model",
    "default_example_inputs",
    "distill_on_synthetic_inputs",
    "find_attention_layers",
    "find_unit_groups",
    "keep_counts_from_ratios",
    "prune",
    "report_of",
    "uniform_keep_counts",
    "unit_set",
]
