"""Put a benchmark's Markdown output into its section of BENCHMARKS.md, with machine, date and command.

Usage: <benchmark command> | python benchmarks/record.py NAME --command "<the command>" [--file BENCHMARKS.md]

The section is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; it is replaced (the rest
of the file is kept as it is), or appended at the end when the markers are not there yet. Written atomically.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
import tempfile
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def section(name: str, body: str, command: str) -> str:
    today = datetime.date.today().isoformat()
    return (f"<!-- bench:{name} -->\n`{command}` ({today}; {machine()})\n\n{body.strip()}\n<!-- /bench:{name} -->")


def record(path: Path, name: str, body: str, command: str) -> None:
    text = path.read_text() if path.exists() else "# fgdd benchmarks\n"
    block = section(name, body, command)
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + f"\n\n{block}\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--command", required=True, help="the command that produced the table")
    parser.add_argument("--file", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    body = sys.stdin.read()
    if not body.strip():
        print("record.py: nothing on standard input; BENCHMARKS.md left as it is", file=sys.stderr)
        return 2
    record(args.file, args.name, body, args.command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
