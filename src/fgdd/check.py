"""``python -m fgdd.check dataset=... [data_root=...] [ipc=... selector=...]``: what a run would find in the data,
read without training anything. Exit status 0: a run with these settings finds what it needs; 1: it would stop
(each problem printed with its remedy); 2: the settings themselves are wrong (an unknown key or option, a value
fgdd.run refuses: the same validation as the run's, fgdd.config.compose_checked, before any data is read).

It takes the same overrides as ``fgdd.run`` and composes the same config, builds the splits as a run does (class
folders against the configured list, ``allow_extra_folders``, ``limit_per_class``), then reads every image's
header (size, mode, format) and decodes its pixels to see that it can be read: JPEG files at 1/8 scale (libjpeg
still reads the whole compressed stream, so truncated or corrupt files fail as they do at full size, in a
fraction of the time), other formats in full, each converted to RGB as a run converts it. Nothing is written
(the generated shapes set excepted: it is made on first use, by a check as by a run) and nothing is downloaded:
with dataset.download=true, data not on disk yet is reported as such.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fgdd.config import build, build_dataset, compose_checked
from fgdd.data.base import ImageDataset, ImageSplit, tolerated_fraction
from fgdd.data.download import offline
from fgdd.errors import LISTED, ClassMismatchError, ConfigError, DatasetNotFoundError, FgddError, listed
from fgdd.selection.base import Selector

USAGE = __doc__.split("\n\n")[0] + "\n\nExamples:\n" + """\
  python -m fgdd.check dataset=imagenette data_root=/data
  python -m fgdd.check dataset=tinyimagenet ipc=50 selector=rded
  python -m fgdd.check dataset=imagefolder dataset.subdir=mine 'dataset.classes=[a,b]' dataset.allow_extra_folders=true
"""


@dataclass
class SplitReport:
    which: str
    root: str = ""
    configured: list[str] = field(default_factory=list)
    found: list[str] | None = None  # class folders / wnids found, where a mismatch made them known
    mismatch: int = 0  # the number of the problem that gives the class list's difference
    ignored: list[str] = field(default_factory=list)
    per_class: dict[str, int] = field(default_factory=dict)  # readable images per configured class
    images: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of the readable images
    modes: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    unreadable: dict[str, str] = field(default_factory=dict)  # relpath -> error
    before_limit: dict[int, int] | None = None  # images per class listed before dataset.limit_per_class cut them
    note: str = ""


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # (expected, found) class lists -> the number of the problem that gives their difference: a Tiny-ImageNet
    # copy's wnids.txt (train) and val_annotations.txt (val) list the same extra wnids, shown once
    mismatches: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = field(default_factory=dict)

    def add(self, text: str = "") -> None:
        self.lines.append(text)

    def text(self) -> str:
        return "\n".join(self.lines)


def read_split(dataset: ImageDataset, which: str, report: Report, downloads: bool = False
               ) -> tuple[ImageSplit | None, SplitReport]:
    """The split as a run lists it; a mismatch of extra classes only is reported, then read as it would be read
    with ``allow_extra_folders=true`` so that the rest of the report still describes the data."""
    out = SplitReport(which, configured=list(dataset.classes))
    try:
        return dataset.listed_split(which), out
    except DatasetNotFoundError as error:
        if downloads and not offline():
            out.note = "not on disk yet: a run downloads it (dataset.download=true); check again afterwards"
        elif downloads:
            report.problems.append(f"{which}: not on disk, and FGDD_OFFLINE=1 forbids the download a run would try "
                                   f"(dataset.download=true): {error}")
        else:
            report.problems.append(f"{which}: {error}")
        return None, out
    except ClassMismatchError as error:
        lists = (tuple(error.expected), tuple(error.got))
        if lists not in report.mismatches:
            report.problems.append(str(error))  # it names the split's folder (or wnids.txt) itself
            report.mismatches[lists] = len(report.problems)
        out.mismatch = report.mismatches[lists]
        out.found = list(error.got)
        missing = [c for c in error.expected if c not in error.got]
        if missing or dataset.allow_extra_folders:
            return None, out
        dataset.allow_extra_folders = True
        try:
            split = dataset.listed_split(which)
        except FgddError:
            return None, out
        finally:
            dataset.allow_extra_folders = False
        out.note = "read below as a run with dataset.allow_extra_folders=true would read it"
        return split, out
    except FgddError as error:
        report.problems.append(f"{which}: {error}")
        return None, out


def describe(split: ImageSplit, out: SplitReport) -> SplitReport:
    out.root = str(split.root)
    out.ignored = list(split.ignored_classes)
    out.images = len(split)
    readable = Counter()
    for i, info in enumerate(split.inspect()):
        if info.error:
            out.unreadable[split.relpath(i)] = info.error
            continue
        readable[split.targets[i]] += 1
        out.sizes.append(info.size)
        out.modes[info.mode] += 1
        out.formats[info.format] += 1
    out.per_class = {name: readable.get(label, 0) for label, name in enumerate(split.classes)}
    out.before_limit = split.before_limit
    return out


def spread(values: Sequence[int]) -> str:
    return f"{min(values)} / {statistics.median(values):g} / {max(values)}" if values else "-"


def print_split(out: SplitReport, report: Report) -> None:
    report.add(f"{out.which}: {out.root or '(not read)'}")
    if out.found is not None:  # the difference is in the problem, once for both splits
        report.add(f"  classes     {len(out.configured)} configured, {len(out.found)} found: the difference is "
                   f"problem {out.mismatch} below")
    elif out.root:
        report.add(f"  classes     {len(out.configured)} configured, all found"
                   + (f"; {len(out.ignored)} more ignored (allow_extra_folders): {listed(out.ignored)}"
                      if out.ignored else ""))
    if out.note:
        report.add(f"  ({out.note})")
    if not out.root:
        return
    counts = list(out.per_class.values())
    fewest = min(out.per_class, key=out.per_class.get) if counts else "-"
    report.add(f"  images      {out.images} listed; readable per class min / median / max: {spread(counts)} "
               f"(fewest: {fewest})")
    widths, heights = [w for w, _ in out.sizes], [h for _, h in out.sizes]
    non_square = sum(w != h for w, h in out.sizes)
    report.add(f"  size        width {spread(widths)}, height {spread(heights)} px (min / median / max); "
               f"{non_square} not square")
    report.add(f"  modes       {', '.join(f'{m} {n}' for m, n in out.modes.most_common())}; formats "
               f"{', '.join(f'{f} {n}' for f, n in out.formats.most_common())}")
    report.add(f"  unreadable  {len(out.unreadable)}")
    for path in sorted(out.unreadable)[:LISTED]:
        report.add(f"    {path}: {out.unreadable[path]}")
    if len(out.unreadable) > LISTED:
        report.add(f"    ... and {len(out.unreadable) - LISTED} more")


def judge_unreadable(cfg: DictConfig, dataset: ImageDataset, selector: Selector, train: SplitReport | None,
                     val: SplitReport | None, report: Report) -> None:
    limit = dataset.max_bad_fraction
    if train is not None and train.unreadable:
        bad, total = len(train.unreadable), train.images
        if not cfg.teacher.checkpoint and bad > limit * total:
            report.problems.append(
                f"train: {bad} of {total} images cannot be read, more than dataset.max_bad_fraction allows "
                f"({limit}): training the teacher stops on them. Replace or delete them (or tolerate them: "
                f"dataset.max_bad_fraction={tolerated_fraction(bad, total)})")
        pool = selector.images_needed(cfg.ipc).pool
        drawn = sum(min(n, pool or n) for n in train.per_class.values()) + bad
        selector_limit = cfg.selector.get("max_bad_fraction", limit)
        if bad > selector_limit * drawn:  # as if every unreadable image were among those drawn (the worst case)
            report.problems.append(
                f"train: {bad} unreadable images may be among the {drawn} the selection reads, more than "
                f"selector.max_bad_fraction allows ({selector_limit}): it may stop. Replace or delete them (or "
                f"tolerate them: selector.max_bad_fraction={tolerated_fraction(bad, drawn)})")
    if val is not None and val.unreadable:
        bad, total = len(val.unreadable), val.images
        if bad > limit * total:
            report.problems.append(
                f"val: {bad} of {total} images cannot be read, more than dataset.max_bad_fraction allows "
                f"({limit}): the run stops. Replace or delete them (or leave them out of the validation: "
                f"dataset.max_bad_fraction={tolerated_fraction(bad, total)})")


def judge_run(cfg: DictConfig, dataset: ImageDataset, selector: Selector, train: SplitReport | None,
              val: SplitReport | None, report: Report) -> None:
    from fgdd.pipeline import ipc_shortfall  # the run's own rule

    report.add(f"run: ipc={cfg.ipc}, selector={cfg.selector.name}, teacher="
               f"{'checkpoint ' + str(cfg.teacher.checkpoint) if cfg.teacher.checkpoint else 'trained on train'}")
    need = selector.images_needed(cfg.ipc)
    how = need.rule + (f", drawn from min(images, selector.{need.pool_setting}={need.pool})" if need.pool else "")
    report.add(f"  needs       {need.images} readable train images per class ({how})")
    if train is not None and train.per_class:
        counts = Counter({label: n for label, n in enumerate(train.per_class.values())})
        problem = ipc_shortfall(selector, cfg.ipc, counts, list(train.per_class),
                                limit_per_class=(cfg.dataset.get("limit_per_class") or {}).get("train"),
                                before_limit=train.before_limit)
        fewest = min(train.per_class.values())
        report.add(f"  has         {fewest} in the class with fewest readable images: "
                   + ("not enough" if problem else "enough"))
        if problem:
            report.problems.append(f"train: {problem}")
    if val is not None and val.root:
        left_out = len(val.unreadable)
        report.add(f"  validates   on {val.images - left_out} val images"
                   + (f" ({left_out} unreadable left out)" if left_out else ""))
    if dataset.aspect and train is not None and any(w != h for w, h in train.sizes):
        report.add(f"  aspect      dataset.aspect={dataset.aspect}: non-square images "
                   + {"crop": "are cut to their centre square", "squash": "are stretched to a square",
                      "pad": "get black bars to a square"}[dataset.aspect]
                   + " for the teacher and whole-image patches (evaluation keeps the centre)")
    if cfg.teacher.checkpoint and not Path(str(cfg.teacher.checkpoint)).is_file():
        report.problems.append(f"teacher.checkpoint={cfg.teacher.checkpoint} is not a file")


def check(cfg: DictConfig) -> Report:
    """What a run with ``cfg`` (validated: fgdd.config.compose_checked) would find in the data."""
    start = time.perf_counter()
    report = Report()
    downloads = bool(cfg.dataset.get("download", False))
    if downloads:  # a check reads what is there; fetching is the run's job
        cfg = copy.deepcopy(cfg)
        OmegaConf.update(cfg, "dataset.download", False)
    try:
        dataset = build_dataset(cfg.dataset)
        root = dataset.data_root
    except FgddError as error:
        report.problems.append(str(error))
        return finish(report, start)
    report.add(f"dataset {dataset.name} ({type(dataset).__name__}): {len(dataset.classes)} classes, input "
               f"{dataset.input_size} px, factor {dataset.factor}, aspect {dataset.aspect}")
    report.add(f"data root {root}, from {dataset.root_source}")
    selector: Selector = build(cfg.selector)  # constructors only: nothing is loaded or segmented
    splits: dict[str, SplitReport | None] = {}
    for which in ("train", "val"):
        split, out = read_split(dataset, which, report, downloads)
        if split is not None:
            describe(split, out)
        splits[which] = out if split is not None else None
        report.add()
        print_split(out, report)
    judge_unreadable(cfg, dataset, selector, splits["train"], splits["val"], report)
    report.add()
    judge_run(cfg, dataset, selector, splits["train"], splits["val"], report)
    return finish(report, start)


def finish(report: Report, start: float) -> Report:
    report.add()
    seconds = time.perf_counter() - start
    if report.problems:
        report.add(f"{len(report.problems)} problem(s): a run with these settings would stop ({seconds:.1f} s):")
        for k, problem in enumerate(report.problems, start=1):
            report.add(f"  {k}. " + problem.replace("\n", "\n     "))
    else:
        report.add(f"OK: a run with these settings finds what it needs ({seconds:.1f} s)")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in overrides):
        print(USAGE)
        return 0
    try:
        cfg = compose_checked(overrides)  # what fgdd.run refuses before it makes a run folder, refused here too
    except ConfigError as error:
        print(f"fgdd.check: {error}", file=sys.stderr)
        return 2
    report = check(cfg)
    print(report.text())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
