"""Batched augmentation: per-sample ops, policies and batch mixers (see DESIGN.md, reference/augment.md)."""

from .ops import OPS, apply_ops, run_slots

__all__ = ["OPS", "apply_ops", "run_slots"]
