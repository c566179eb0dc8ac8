"""Under the table: per sweep, the command that made it and the jobs of its grid that are missing; then every
failed run (its failed.json) and every unfinished one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fgdd.report.collect import DONE, FAILED, UNFINISHED, stopped_by_a_signal
from fgdd.report.sweep import Grid, match

MESSAGE_CHARS = 300  # a failure is shown by the first line of its message, cut here; failed.json has it all


def _relative(run: str, root: Path) -> str:
    path = Path(run)
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 3] + "..."


def _grid_of(row: dict[str, Any], grids: list[Grid]) -> Grid | None:
    run = Path(row["run"]).resolve()
    owners = [g for g in grids if run.is_relative_to(g.folder.resolve())]
    return max(owners, key=lambda g: len(g.folder.parts)) if owners else None


def _run_line(row: dict[str, Any], root: Path, grids: list[Grid]) -> str:
    grid = _grid_of(row, grids)
    what = f" ({grid.describe(row['overrides'])})" if grid and row.get("overrides") else ""
    line = f"- `{_relative(row['run'], root)}`{what}"
    failure = row.get("failure")
    if failure and stopped_by_a_signal(failure):  # stopped by hand or by a scheduler, not broken
        line += (f": stopped in stage {failure.get('stage', '?')} ({failure.get('error', '?')} "
                 f"{failure.get('message', '')}, {failure.get('time', 'time unknown')}); rerunning resumes it")
    elif failure:
        line += (f": stage {failure.get('stage', '?')}, {failure.get('error', '?')}: "
                 f"{_first_line(failure.get('message', ''))} ({failure.get('time', 'time unknown')})")
    return line


def sweeps_markdown(grids: list[Grid], rows: list[dict[str, Any]], root: Path) -> str:
    blocks = []
    for grid in grids:
        name = _relative(str(grid.folder), root) if grid.folder != root else str(grid.folder)
        lines = [f"Sweep `{name}`, made by: `{grid.command_line()}`"]
        if grid.error:
            lines.append(f"Its grid could not be expanded ({grid.error}); missing jobs are not listed.")
            blocks.append("\n".join(lines))
            continue
        missing, outside = match(grid, rows)
        outside_ids = {id(r) for r in outside}
        mine = [r for r in rows if _grid_of(r, grids) is grid and id(r) not in outside_ids]
        counts = {s: sum(r["status"] == s for r in mine) for s in (DONE, FAILED, UNFINISHED)}
        if not (missing or outside or counts[FAILED] or counts[UNFINISHED]):  # nothing to act on: one line
            blocks.append(f"Sweep `{name}`, all {len(grid.cells)} jobs of its grid done, made by: "
                          f"`{grid.command_line()}`")
            continue
        lines.append(f"Jobs in its grid: {len(grid.cells)}; done {counts[DONE]}, failed {counts[FAILED]}, "
                     f"unfinished {counts[UNFINISHED]}, missing {len(missing)}.")
        if missing:
            lines.append(f"\nMissing jobs (no run folder records these overrides; rerun the command, finished runs "
                         f"are skipped): {len(missing)}")
            lines.extend(f"- `{grid.describe(cell)}`" for cell in missing)
        if outside:
            lines.append(f"\nRuns outside its grid (from another command into the same folder; in the table "
                         f"above): {len(outside)}")
            lines.extend(f"- `{_relative(r['run'], root)}`" for r in outside)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def runs_markdown(rows: list[dict[str, Any]], root: Path, grids: list[Grid]) -> str:
    parts = []
    for status, note in ((FAILED, "failed.json, the latest attempt"), (UNFINISHED, "running, or killed")):
        chosen = [r for r in rows if r["status"] == status]
        if chosen:
            parts.append("\n".join([f"{status.capitalize()} runs ({note}): {len(chosen)}",
                                     *(_run_line(r, root, grids) for r in chosen)]))
    return "\n\n".join(parts)
