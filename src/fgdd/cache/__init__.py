"""Caches shared by runs, each an entry of ``fgdd.cache.keyed`` under ``<cache_dir>/<kind>/``: teacher accuracy
(teacher_accuracy), distilled sets (distilled), the full-real reference (full_real); trained teachers
(fgdd.teacher), occupancy (fgdd.foreground.occupancy) and the decoded val split (fgdd.evaluation.eval_images) name
theirs with it too. Deleting ``<cache_dir>`` is always safe: it only costs recomputing."""
