"""DD-Ranking's scores from the runs of a sweep: IOR, HLR, LRS and ARS per (dataset, student, teacher, IPC, student
epochs) and method, each from the seeds where every control it needs finished.

Definitions, as DD-Ranking's code computes them per evaluation round (NUS-HPC-AI-Lab/DD-Ranking,
``ddranking/metrics/soft_label.py`` ``compute_metrics`` and ``aug_robust.py``; arXiv 2505.13300), with A(set,
protocol) a student's test accuracy as a fraction:

- IOR = A(distilled, the method's recipe) - A(random real images of the same IPC, the same recipe)
- HLR = A(full real training set, hard labels) - A(distilled, hard labels with the learning-rate search)
- LRS = (e^a - e^-1) / (e - e^-1), a = w * IOR - (1 - w) * HLR, w = 0.5
- ARS = (e^b - e^-1) / (e - e^-1), b = g * (A(distilled, aug) - A(random, aug))
                                         + (1 - g) * (A(distilled, no aug) - A(random, no aug)), g = 0.5

Each score is computed per seed and then averaged (mean and std over seeds), as DD-Ranking averages its
rounds; the std is the sample std (n - 1) for fgdd's protocol and the population std (n, DD-Ranking's ``np.std``)
for rows of DD-Ranking's exact protocol (``experiment=ddranking_exact_cifar10_ipc10``: evaluators with
``protocol: ddranking``), and the report says which. A seed enters a score only when all the controls it needs
finished for that seed. The full-real reference is paired by seed where it ran with that seed, and is otherwise the
mean of the reference seeds there are (DD-Ranking trains it in every round with ``eval_full_data=True``; its
default, a constant from ``REAL_DATA_ACC_CACHE``, exists only for ImageNet-1K and Tiny-ImageNet and raises an error
for CIFAR-10). The report prints IOR and HLR in points, LRS and ARS in percent.

The controls are told apart by the evaluator of each run (``control_of``): the method's recipe is RDED's
soft-label evaluator with its augmentation (``evaluator=rded``), the "no aug" side is ``evaluator=soft_noaug``, the
hard-label side ``evaluator=hard_lr_search`` and the reference ``evaluator=full_real`` (or their ``ddranking_*``
versions). Rows of the two protocols are grouped apart, each with its own reference.

The hard-label variant (DD-Ranking's ``LabelRobustScoreHard``): IOR on hard labels = A(distilled, hard labels with the
lr search) - A(random, the same), and LRS from it with the same HLR: it needs random_real's hard-label runs.
"""

from __future__ import annotations

import math
import re
import shlex
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from fgdd.report.collect import DONE
from fgdd.report.summary import BASELINES_FIRST

SOFT_AUG, SOFT_NOAUG, HARD_SEARCH, FULL_REAL = "soft_aug", "soft_noaug", "hard_search", "full_real"
CONTROLS = (SOFT_AUG, SOFT_NOAUG, HARD_SEARCH, FULL_REAL)
EVALUATOR_OF = {SOFT_AUG: "rded", SOFT_NOAUG: "soft_noaug", HARD_SEARCH: "hard_lr_search", FULL_REAL: "full_real"}
FGDD_PROTOCOL, DDRANKING = "fgdd", "ddranking"  # the evaluators' `protocol` label (wrappers carry it; default fgdd)
DDRANKING_PREFIX = "ddranking_"  # conf/evaluator/ddranking_*.yaml: DD-Ranking's protocol for each control
POPULATION_STD = {DDRANKING}  # protocols whose spread is np.std (ddof 0), as DD-Ranking prints it
RANDOM = "random_real"
LRS_WEIGHT = 0.5  # DD-Ranking's default lrs_lambda (w)
ARS_WEIGHT = 0.5  # DD-Ranking's default ars_lambda (g)
GROUP_KEY = ("dataset", "student", "teacher", "ipc", "epochs", "protocol")
# evaluator settings a missing control's command carries over from the runs it joins (the ones that set the
# student's budget); the settings that define a control (labels, augmentation, lr grid) come from its own config
_CARRIED = ("epochs", "num_workers", "batch_size", "temperature", "weight_decay", "eval_every", "tail_fraction",
            "val_batch_size", "augment_on_device", "channels_last")


def normalised(x: float) -> float:
    """DD-Ranking's map of [-1, 1] onto [0, 1]: (e^x - e^-1) / (e - e^-1); 0 -> 0.269, and it is not clipped."""
    return (math.exp(x) - math.exp(-1.0)) / (math.e - math.exp(-1.0))


def label_robust_score(ior: float, hlr: float, w: float = LRS_WEIGHT) -> float:
    return normalised(w * ior - (1.0 - w) * hlr)


def augmentation_robust_score(gain_aug: float, gain_noaug: float, g: float = ARS_WEIGHT) -> float:
    return normalised(g * gain_aug + (1.0 - g) * gain_noaug)


def _cls(evaluator: dict[str, Any]) -> str:
    return str(evaluator.get("_target_", "")).rsplit(".", 1)[-1]


def control_of(evaluator: dict[str, Any] | None) -> str | None:
    """Which of DD-Ranking's controls a run's evaluator is, or None (another protocol: not scored)."""
    if not evaluator:
        return None
    cls = _cls(evaluator)
    if cls == "FullRealEvaluator":
        return FULL_REAL
    if cls == "LRSearchEvaluator":
        inner = evaluator.get("inner") or {}
        # a soft-label student under the search is a soft control (DD-Ranking searches the random set's rate)
        return HARD_SEARCH if inner.get("hard_labels") else _soft_control(inner)
    return _soft_control(evaluator)


def _soft_control(evaluator: dict[str, Any]) -> str | None:
    if _cls(evaluator) != "SoftLabelEvaluator" or evaluator.get("hard_labels"):
        return None
    if evaluator.get("soft_labels", "online") != "online":
        return None
    augment, cutmix = evaluator.get("augment", True), evaluator.get("cutmix", True)
    return {(True, True): SOFT_AUG, (False, False): SOFT_NOAUG}.get((augment, cutmix))


def protocol_of(evaluator: dict[str, Any] | None) -> str:
    return str((evaluator or {}).get("protocol", FGDD_PROTOCOL))


def evaluator_for(control: str, protocol: str) -> str:
    """The ``evaluator=`` option that runs a control under a protocol."""
    return (DDRANKING_PREFIX if protocol == DDRANKING else "") + EVALUATOR_OF[control]


def student_epochs(evaluator: dict[str, Any] | None) -> int | None:
    if not evaluator:
        return None
    inner = evaluator.get("inner")
    return (inner or evaluator).get("epochs")


def _stats(values: dict[int, float], population: bool = False) -> dict[str, Any]:
    numbers = [values[s] for s in sorted(values)]
    spread = statistics.pstdev if population else statistics.stdev  # pstdev: DD-Ranking's np.std
    return {
        "mean": statistics.fmean(numbers) if numbers else None,
        "std": spread(numbers) if len(numbers) > 1 else 0.0 if numbers else None,
        "seeds": sorted(values),
        "per_seed": dict(sorted(values.items())),
    }


def _references(rows: list[dict[str, Any]], metric: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(dataset, student, protocol) -> the reference's accuracy per seed (runs of other selectors / IPCs read the
    same cache entry, so one value per seed), and the recipe it was trained with."""
    by_key: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    epochs: dict[tuple[str, str, str], set] = defaultdict(set)
    for row in rows:
        if row["control"] == FULL_REAL and row["status"] == DONE and row.get(metric) is not None:
            key = (row["dataset"], row["student"], row["protocol"])
            by_key[key][row["seed"]].append(float(row[metric]))
            epochs[key].add(row["epochs"])
    return {key: {"per_seed": {s: statistics.fmean(v) for s, v in seeds.items()}, "epochs": sorted(epochs[key])}
            for key, seeds in by_key.items()}


def parse_reference(text: str) -> tuple[tuple[str, str], float]:
    """``DATASET:STUDENT=ACC`` (ACC a fraction or a percent) -> ((dataset, student), fraction)."""
    try:
        pair, value = text.split("=", 1)
        dataset, student = pair.split(":", 1)
        accuracy = float(value)
    except ValueError:
        raise ValueError(f"--reference {text!r}: write DATASET:STUDENT=ACCURACY, e.g. cifar10:convnet3=0.826") \
            from None
    accuracy = accuracy / 100 if accuracy > 1 else accuracy
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"--reference {text!r}: the accuracy is a fraction in [0, 1] or a percent")
    return (dataset.strip(), student.strip()), accuracy


def compute_scores(rows: list[dict[str, Any]], metric: str = "student/top1_final", w: float = LRS_WEIGHT,
                   g: float = ARS_WEIGHT, given: dict[tuple[str, str], float] | None = None) -> list[dict[str, Any]]:
    """One entry per (group, method) that has at least one DD-Ranking control; rows need ``control`` and
    ``epochs`` (``annotate``). ``given``: full-real accuracies measured elsewhere, per (dataset, student), used
    where no full_real run finished (DD-Ranking's cached constants, ``REAL_DATA_ACC_CACHE``, are such values)."""
    references = _references(rows, metric)
    for (dataset, student), accuracy in (given or {}).items():  # a given reference stands in for any protocol's
        for protocol in {r["protocol"] for r in rows} | {FGDD_PROTOCOL}:
            references.setdefault((dataset, student, protocol),
                                  {"per_seed": {}, "constant": accuracy, "epochs": [], "given": True})
    reference_runs = {(r["dataset"], r["student"], r["protocol"]) for r in rows if r["control"] == FULL_REAL}
    groups: dict[tuple, dict[str, dict[str, dict[int, dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict)))
    for row in rows:
        if row["control"] in (SOFT_AUG, SOFT_NOAUG, HARD_SEARCH):
            slot = groups[tuple(row[k] for k in GROUP_KEY)][row["method"]][row["control"]]
            if row["seed"] not in slot or _rank(row) > _rank(slot[row["seed"]]):  # the same job twice: keep one
                slot[row["seed"]] = row
    entries = []
    for key, methods in groups.items():
        group = dict(zip(GROUP_KEY, key))
        reference = references.get((group["dataset"], group["student"], group["protocol"]))
        population = group["protocol"] in POPULATION_STD
        random = methods.get(RANDOM, {})
        all_seeds = sorted({s for m in methods.values() for c in m.values() for s in c})
        for method, controls in methods.items():
            acc = {c: {s: float(r[metric]) for s, r in controls.get(c, {}).items()
                       if r["status"] == DONE and r.get(metric) is not None} for c in CONTROLS[:3]}
            rnd = {c: {s: float(r[metric]) for s, r in random.get(c, {}).items()
                       if r["status"] == DONE and r.get(metric) is not None} for c in CONTROLS[:3]}
            ior = {s: v - rnd[SOFT_AUG][s] for s, v in acc[SOFT_AUG].items() if s in rnd[SOFT_AUG]}
            hlr: dict[int, float] = {}
            if reference is not None:
                ref_seeds = reference["per_seed"]
                constant = reference["constant"] if reference.get("given") else statistics.fmean(ref_seeds.values())
                hlr = {s: ref_seeds.get(s, constant) - v for s, v in acc[HARD_SEARCH].items()}
            lrs = {s: label_robust_score(ior[s], hlr[s], w) for s in ior if s in hlr}
            gain_noaug = {s: v - rnd[SOFT_NOAUG][s] for s, v in acc[SOFT_NOAUG].items() if s in rnd[SOFT_NOAUG]}
            ars = {s: augmentation_robust_score(ior[s], gain_noaug[s], g) for s in ior if s in gain_noaug}
            # DD-Ranking's LabelRobustScoreHard: the improvement over random measured with hard labels
            ior_hard = {s: v - rnd[HARD_SEARCH][s] for s, v in acc[HARD_SEARCH].items() if s in rnd[HARD_SEARCH]}
            lrs_hard = {s: label_robust_score(ior_hard[s], hlr[s], w) for s in ior_hard if s in hlr}

            def stats(values: dict[int, float]) -> dict[str, Any]:
                return _stats(values, population)
            entries.append({
                **group,
                "method": method,
                "selector": _selector(controls),
                "accuracy": {c: stats(v) for c, v in acc.items()},
                "random": {c: stats(v) for c, v in rnd.items()},
                "reference": reference,
                "reference_pending": reference is None and (group["dataset"], group["student"],
                                                            group["protocol"]) in reference_runs,
                "IOR": stats(ior), "HLR": stats(hlr), "LRS": stats(lrs), "ARS": stats(ars),
                "IOR_hard": stats(ior_hard), "LRS_hard": stats(lrs_hard),
                "std": "population" if population else "sample",
                "chosen_lr": {s: r["lr_search/lr"] for s, r in controls.get(HARD_SEARCH, {}).items()
                              if r.get("lr_search/lr") is not None},
                "lr_selected_on": sorted({(r.get("evaluator_config") or {}).get("select_on", "holdout")
                                          for r in controls.get(HARD_SEARCH, {}).values()}),
                "all_seeds": all_seeds,
                "rows": controls,
            })
    return sorted(entries, key=lambda e: (e["protocol"] != FGDD_PROTOCOL, e["protocol"], e["dataset"], e["student"],
                                          e["teacher"], e["ipc"], e["epochs"] or 0,
                                          BASELINES_FIRST.get(e["selector"], 2), e["method"]))


def _rank(row: dict[str, Any]) -> tuple[bool, bool]:
    # a finished run over an unfinished one; then an lr chosen on the holdout over one chosen on the test set
    return row["status"] == DONE, (row.get("evaluator_config") or {}).get("select_on", "holdout") == "holdout"


def _selector(controls: dict[str, dict[int, dict[str, Any]]]) -> str:
    return next(r["selector"] for c in controls.values() for r in c.values())


def holds_controls(rows: list[dict[str, Any]]) -> bool:
    """Whether any run is one of DD-Ranking's controls beyond the method's own recipe (every plain run is that one):
    only then are its scores and the commands for the missing controls worth a section of the report."""
    return any(row["control"] in (SOFT_NOAUG, HARD_SEARCH, FULL_REAL) for row in rows)


def annotate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds ``control`` and ``epochs`` (the student's epochs) to each row, from its evaluator config."""
    for row in rows:
        evaluator = row.get("evaluator_config")
        row["control"] = control_of(evaluator)
        row["epochs"] = student_epochs(evaluator)
        row["protocol"] = protocol_of(evaluator)
    return rows


# -- the controls a score still lacks, and the command that runs them -------------------------------------------

def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _is_selector(key: str) -> bool:
    return key.split(".", 1)[0] in ("selector", "segmenter", "threshold")


def _evaluator_settings(overrides: list[str], target: str) -> list[str]:
    """The carried settings of a run's ``evaluator.*`` overrides, rewritten for the ``target`` evaluator: the
    wrappers (hard_lr_search, full_real) take epochs and num_workers at their top level, the rest on ``inner``."""
    out = []
    # every ddranking_* control is a wrapper (an lr search or the reference around a student)
    wrapper = target in (EVALUATOR_OF[HARD_SEARCH], EVALUATOR_OF[FULL_REAL]) or target.startswith(DDRANKING_PREFIX)
    for override in overrides:
        key, _, value = override.partition("=")
        parts = key.split(".")
        if parts[0] != "evaluator" or len(parts) < 2:
            continue
        name = parts[2] if parts[1] == "inner" and len(parts) == 3 else parts[1] if len(parts) == 2 else None
        if name not in _CARRIED:
            continue
        if target.endswith(EVALUATOR_OF[FULL_REAL]) and name in ("epochs", "batch_size"):
            continue  # the reference has a budget of its own
        prefix = "evaluator." if (not wrapper or name in ("epochs", "num_workers")) else "evaluator.inner."
        out.append(f"{prefix}{name}={value}")
    return out


def job_overrides(base: list[str], selector_source: list[str] | None, control: str, seeds: list[int],
                  same_control: list[str] | None = None, protocol: str = FGDD_PROTOCOL) -> list[str]:
    """The overrides of the jobs that run ``control``: ``base``'s (dataset, model, teacher, ipc ...), the selector
    settings of ``selector_source`` (``None``: random_real), the control's evaluator with the ``evaluator.*``
    settings of a run of the same control (``same_control``: the grid's runs agree) or else the student budget of
    ``base``, and the seeds (comma-separated: a sweep)."""
    keep = [o for o in base if _key(o) not in ("seed", "sweep_name") and not _key(o).startswith("hydra.")
            and not _is_selector(_key(o)) and _key(o).split(".", 1)[0] != "evaluator"]
    selector = [o for o in selector_source if _is_selector(_key(o))] if selector_source is not None else [
        f"selector={RANDOM}"]
    evaluator = evaluator_for(control, protocol)
    if same_control is not None:
        settings = [o for o in same_control if _key(o).startswith("evaluator.")]
    else:
        settings = _evaluator_settings(base, evaluator)
    return [*keep, *selector, f"evaluator={evaluator}", *settings, f"seed={','.join(str(s) for s in seeds)}"]


def fill_command(overrides: list[str], sweep_dir: Path) -> str:
    """A sweep of ``overrides`` into a folder of its own (the original sweep's record of its grid stays as it was)."""
    return "python -m fgdd.run -m " + shlex.join([*overrides, f"hydra.sweep.dir={sweep_dir}"])


def _comparable(overrides: list[str], ignore: tuple[str, ...] = ()) -> frozenset:
    from fgdd.report.sweep import canonical

    return canonical([o for o in overrides if _key(o) != "sweep_name" and not _key(o).startswith("hydra.")
                      and not any(_key(o) == k or _key(o).startswith(k + ".") for k in ignore)])


def _sweep_holding(jobs: list[list[str]], grids: list[Any], ignore: tuple[str, ...] = ()) -> Any:
    """The sweep whose grid holds every one of ``jobs`` (compared without sweep_name and ``ignore`` keys), if any."""
    wanted = {_comparable(job, ignore) for job in jobs}
    for grid in grids:
        if grid.error is None and wanted <= {_comparable(cell, ignore) for cell in grid.cells}:
            return grid
    return None


def _overrides(row: dict[str, Any]) -> list[str]:
    if row.get("overrides") is not None:
        return list(row["overrides"])
    # made outside Hydra: the settings that place it in its group, from its config
    return [f"dataset={row['dataset']}", f"model={row['student']}", f"ipc={row['ipc']}", f"selector={row['selector']}"]


def missing_controls(entries: list[dict[str, Any]], folder: Path, grids: list[Any] = ()) -> list[dict[str, Any]]:
    """Per (group, method, control): the seeds of the group with no run of it (a failed or unfinished run counts as
    there: the sweep status below lists it), with the command that runs them: the command of a sweep whose grid
    holds them already (``grids``), else a sweep of their own; per (dataset, student) with no reference run at all:
    the command for one (seed: the group's first)."""
    missing: list[dict[str, Any]] = []
    references: dict[tuple[str, str], dict[str, Any]] = {}
    by_group: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        by_group[tuple(entry[k] for k in GROUP_KEY)].append(entry)
    for key, group in by_group.items():
        methods = {e["method"]: e for e in group}
        seeds = group[0]["all_seeds"]
        anyone = _overrides(_any_row(group[0]["rows"]))
        needs = [(m, (SOFT_AUG, SOFT_NOAUG, HARD_SEARCH)) for m in methods if m != RANDOM]
        needs.append((RANDOM, (SOFT_AUG, SOFT_NOAUG)))
        for method, controls in needs:
            entry = methods.get(method)
            for control in controls:
                have = set(entry["rows"].get(control, {})) if entry else set()
                lacking = [s for s in seeds if s not in have]
                if not lacking:
                    continue
                own = _overrides(_any_row(entry["rows"])) if entry else None
                same = next((r for e in group for r in e["rows"].get(control, {}).values()), None)
                args = (own or anyone, own, control)
                same_overrides = _overrides(same) if same else None
                sweep = _sweep_holding([job_overrides(*args, [s], same_overrides, key[5]) for s in lacking], grids)
                slug = _slug(f"{key[0]}-{key[1]}-ipc{key[3]}-e{key[4]}-{method}-{control}{_suffix(key[5])}")
                command = sweep.command_line() if sweep else fill_command(
                    job_overrides(*args, lacking, same_overrides, key[5]), folder / "controls" / slug)
                missing.append({"group": dict(zip(GROUP_KEY, key)), "method": method, "control": control,
                                "seeds": lacking, "command": command, "sweep": sweep})
        if group[0]["reference"] is None and not group[0]["reference_pending"] and (
                key[0], key[1], key[5]) not in references:
            job = job_overrides(anyone, None, FULL_REAL, seeds[:1], protocol=key[5])
            # the reference's own budget differs from the students': any full_real job of a sweep will do
            sweep = _sweep_holding([job], grids, ignore=("evaluator", "selector", "segmenter", "threshold", "ipc"))
            command = sweep.command_line() if sweep else fill_command(
                job, folder / "controls" / _slug(f"{key[0]}-{key[1]}-full_real{_suffix(key[5])}"))
            references[(key[0], key[1], key[5])] = {"group": dict(zip(GROUP_KEY, key)), "method": "(reference)",
                                            "control": FULL_REAL, "seeds": seeds[:1], "command": command,
                                            "sweep": sweep}
    return missing + list(references.values())


def _suffix(protocol: str) -> str:
    # fgdd's folders keep the names they had before protocols existed
    return "" if protocol == FGDD_PROTOCOL else f"-{protocol}"


def _slug(text: str) -> str:
    # a folder name from a method label such as "fgdd(cam, quantile 0.7)": no spaces, brackets or slashes
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")


def _any_row(controls: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    return next(r for c in controls.values() for r in c.values())


# -- Markdown -----------------------------------------------------------------------------------------------------

CONTROL_TEXT = {
    SOFT_AUG: "the method's recipe: RDED's soft labels, online, with its augmentation (`evaluator=rded`)",
    SOFT_NOAUG: "the same without augmentation: no tile shuffle, crop, flip or CutMix (`evaluator=soft_noaug`)",
    HARD_SEARCH: "hard labels, no augmentation, DD-Ranking's learning-rate search (`evaluator=hard_lr_search`)",
    FULL_REAL: "the whole real training set, hard labels, no augmentation (`evaluator=full_real`, cached)",
}


def _points(stats: dict[str, Any], scale: float = 100.0, sign: bool = True) -> str:
    if stats["mean"] is None:
        return "-"
    return f"{scale * stats['mean']:{'+' if sign else ''}.1f} +- {scale * stats['std']:.1f}"


def _acc(stats: dict[str, Any]) -> str:
    return "-" if stats["mean"] is None else f"{100 * stats['mean']:.1f}"


def _seeds(stats: dict[str, Any]) -> str:
    return str(len(stats["seeds"]))


STD_TEXT = ("rows of fgdd's protocol (the default) show the sample std over seeds (n - 1); rows marked [ddranking] "
            "come from DD-Ranking's exact protocol (`experiment=ddranking_exact_cifar10_ipc10`: lr chosen on the test "
            "set, best of the evaluations every 20 epochs, its SGD reference) and show the population std (n, "
            "DD-Ranking's np.std); score them with `--metric student/top1_best_tail` for DD-Ranking's number.")


def _tag(protocol: str) -> str:
    return "" if protocol == FGDD_PROTOCOL else f" [{protocol}]"


def _method(entry: dict[str, Any]) -> str:
    return entry["method"] + _tag(entry["protocol"])


def hard_variant_markdown(entries: list[dict[str, Any]]) -> list[str]:
    """DD-Ranking's LabelRobustScoreHard, where random_real's hard-label runs exist: IOR and LRS on hard labels."""
    rows = [e for e in entries if e["IOR_hard"]["mean"] is not None]
    if not rows:
        return []
    lines = ["", "Hard-label variant (DD-Ranking's `LabelRobustScoreHard`): IOR (hard) = hard-label accuracy (lr search) "
             "minus random_real's, LRS (hard) from it and the same HLR.", "",
             "| dataset | student | ipc | epochs | method | IOR (hard) | HLR | LRS (hard) | n IOR/LRS |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in rows:
        lines.append(f"| {e['dataset']} | {e['student']} | {e['ipc']} | {e['epochs']} | {_method(e)} | "
                     f"{_points(e['IOR_hard'])} | {_points(e['HLR'])} | {_points(e['LRS_hard'], sign=False)} | "
                     f"{_seeds(e['IOR_hard'])}/{_seeds(e['LRS_hard'])} |")
    return lines


def scores_markdown(entries: list[dict[str, Any]], missing: list[dict[str, Any]], metric: str,
                    w: float = LRS_WEIGHT, g: float = ARS_WEIGHT) -> str:
    lines = [
        f"## DD-Ranking scores ({metric})",
        "",
        f"IOR and HLR in points, LRS (w = {w:g}) and ARS (g = {g:g}) in percent; mean +- std over the seeds where "
        "every control the score needs finished (count in `n`). Accuracies in % (means over their own seeds).",
        "",
        f"Protocol and std: {STD_TEXT}",
        "",
        "| dataset | student | teacher | ipc | epochs | method | IOR | HLR | LRS | ARS | n IOR/HLR/LRS/ARS | "
        "soft aug | soft no-aug | hard (lr search) | chosen lr |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        acc = e["accuracy"]
        lrs_used = ", ".join(f"{lr:g}" for lr in sorted(set(e["chosen_lr"].values()))) or "-"
        if lrs_used != "-":  # where the rate was chosen: DD-Ranking's rule (test) is optimistic by construction
            lrs_used += f" (on {', '.join(e['lr_selected_on'])})"
        lines.append(
            f"| {e['dataset']} | {e['student']} | {e['teacher']} | {e['ipc']} | {e['epochs']} | {_method(e)} | "
            f"{_points(e['IOR'])} | {_points(e['HLR'])} | {_points(e['LRS'], sign=False)} | "
            f"{_points(e['ARS'], sign=False)} | {'/'.join(_seeds(e[k]) for k in ('IOR', 'HLR', 'LRS', 'ARS'))} | "
            f"{_acc(acc[SOFT_AUG])} | {_acc(acc[SOFT_NOAUG])} | {_acc(acc[HARD_SEARCH])} | {lrs_used} |"
        )
    lines += hard_variant_markdown(entries)
    references = {(e["dataset"], e["student"], e["protocol"]): e["reference"] for e in entries if e["reference"]}
    lines.append("")
    for (dataset, student, protocol), ref in sorted(references.items()):
        student += _tag(protocol)
        if ref.get("given"):
            lines.append(f"Full-real reference, {dataset} / {student}: {100 * ref['constant']:.1f} %, given with "
                         "--reference (no full_real run finished here); HLR uses it for every seed.")
            continue
        seeds = ref["per_seed"]
        lines.append(f"Full-real reference, {dataset} / {student}: {100 * statistics.fmean(seeds.values()):.1f} % "
                     f"(seeds {', '.join(map(str, sorted(seeds)))}; {', '.join(map(str, ref['epochs']))} epochs); "
                     "HLR pairs it with the distilled run of the same seed where there is one, else uses this mean.")
    lines += ["", "Controls (told apart by each run's evaluator):"]
    lines += [f"- {name}: {text}" for name, text in CONTROL_TEXT.items()]
    if missing:
        lines += ["", f"Missing controls ({len(missing)}): a score leaves out a seed that lacks one. Each command runs "
                  "what is missing: the command of the sweep whose grid holds it, else a sweep into a folder of its "
                  "own under this one (finished runs are skipped; rerun `fgdd.report` afterwards):"]
        for item in missing:
            group = item["group"]
            seeds = ", ".join(map(str, item["seeds"]))
            lines.append(f"- {group['dataset']} / {group['student']} / ipc {group['ipc']} / {group['epochs']} epochs, "
                         f"{item['method']}{_tag(group['protocol'])}, {item['control']}, seeds {seeds}:")
            where = f" (in the grid of sweep `{item['sweep'].folder.name}`: its command again)" if item["sweep"] else ""
            lines.append(f"  `{item['command']}`{where}")
    return "\n".join(lines)
