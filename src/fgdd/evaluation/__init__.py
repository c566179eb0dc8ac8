"""Student training on a distilled set (RDED's relabel + eval) and its test accuracy."""

from fgdd.evaluation.evaluator import InMemoryTrainingSet, SoftLabelEvaluator, StudentTrainingSet, rded_batch_size
from fgdd.evaluation.student import SoftLabelStudent

__all__ = ["InMemoryTrainingSet", "SoftLabelEvaluator", "SoftLabelStudent", "StudentTrainingSet", "rded_batch_size"]
