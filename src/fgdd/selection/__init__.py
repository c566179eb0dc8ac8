from fgdd.selection.distilled_set import DistilledSet, Patch, write_distilled_set
from fgdd.selection.random_real import RandomRealSelector
from fgdd.selection.rded import RDEDSelector

__all__ = ["DistilledSet", "Patch", "RDEDSelector", "RandomRealSelector", "write_distilled_set"]
