"""Student training on a distilled set (RDED's relabel + eval) and its test accuracy."""

from fgdd.evaluation.evaluator import SoftLabelEvaluator, rded_batch_size
from fgdd.evaluation.student import SoftLabelStudent

__all__ = ["SoftLabelEvaluator", "SoftLabelStudent", "rded_batch_size"]
