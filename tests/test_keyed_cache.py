"""fgdd.cache.keyed: a key names an entry and is checked on read; a damaged or foreign entry is a miss that is set
aside (never deleted); the first of two concurrent writers wins."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from fgdd.cache.keyed import KEY_FILE, KeyedEntry, key_digest

KEY = {"dataset": "toy", "ipc": 10, "sizes": (3, 4)}


def _value(record: dict) -> float:
    return float(record["value"])


def test_a_file_entry_round_trips_under_its_kind_and_prefix(tmp_path: Path) -> None:
    entry = KeyedEntry(tmp_path, "things", KEY, prefix="toy-ipc10", suffix=".json")
    assert entry.path == tmp_path / "things" / f"toy-ipc10-{key_digest(KEY)[:12]}.json"
    assert entry.read_json(_value) is None  # absent: a miss, nothing logged
    assert entry.write_json({"value": 0.5})
    assert KeyedEntry(tmp_path, "things", dict(KEY), prefix="toy-ipc10", suffix=".json").read_json(_value) == 0.5
    assert json.loads(entry.path.read_text())["key"] == {"dataset": "toy", "ipc": 10, "sizes": [3, 4]}
    # the digest ignores key order and depends on every value
    assert key_digest({"ipc": 10, "sizes": (3, 4), "dataset": "toy"}) == key_digest(KEY)
    assert key_digest({**KEY, "ipc": 11}) != key_digest(KEY)


def test_a_file_for_another_key_is_a_miss_set_aside_with_a_warning(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    entry = KeyedEntry(tmp_path, "things", KEY, suffix=".json")
    entry.path.parent.mkdir()
    foreign = json.dumps({"value": 0.9, "key": {**KEY, "ipc": 1}})
    entry.path.write_text(foreign)  # e.g. a digest collision in the shortened name
    with caplog.at_level(logging.WARNING, logger="fgdd.cache.keyed"):
        assert entry.read_json(_value) is None
    assert "written for another key" in caplog.text and "computing it again" in caplog.text
    assert (entry.path.parent / (entry.path.name + ".untrusted")).read_text() == foreign  # kept, not deleted
    assert entry.write_json({"value": 0.25}) and entry.read_json(_value) == 0.25


def test_a_corrupt_file_is_a_miss_and_each_set_aside_copy_is_kept(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    entry = KeyedEntry(tmp_path, "things", KEY, suffix=".json")
    entry.path.parent.mkdir()
    for damaged in ('{"value": 0.9', '{"value": "x", "key": {}}'):
        entry.path.write_text(damaged)
        with caplog.at_level(logging.WARNING, logger="fgdd.cache.keyed"):
            assert entry.read_json(_value) is None
    names = sorted(p.name for p in entry.path.parent.iterdir())
    assert names == [entry.path.name + ".untrusted", entry.path.name + ".untrusted.1"]
    assert caplog.text.count("not trusted") == 2
    # a parse that rejects the record is a miss too
    entry.write_json({"value": 0.5})
    assert entry.read_json(lambda record: _value(record) if _value(record) > 1 else int("not a fraction")) is None


def test_the_first_of_concurrent_writers_wins(tmp_path: Path) -> None:
    entries = [KeyedEntry(tmp_path, "things", KEY, suffix=".json") for _ in range(8)]
    barrier = threading.Barrier(len(entries))
    won: list[bool] = [False] * len(entries)

    def write(i: int) -> None:
        barrier.wait()
        won[i] = entries[i].write_json({"value": i / 10})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(entries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(won) == 1
    assert entries[0].read_json(_value) == won.index(True) / 10  # the winner's value, never replaced
    assert [p.name for p in entries[0].path.parent.iterdir()] == [entries[0].path.name]  # no temporary left


def test_a_folder_entry_is_published_whole_with_its_key_and_first_writer_wins(tmp_path: Path) -> None:
    entry = KeyedEntry(tmp_path, "sets", KEY, prefix="toy")
    assert not entry.folder_matches()
    with entry.publish() as staging:
        (staging / "data.txt").write_text("first")
        assert not entry.path.exists()  # nothing visible before the block ends
    assert entry.folder_matches() and (entry.path / "data.txt").read_text() == "first"
    stored = json.loads((entry.path / KEY_FILE).read_text())
    assert stored.pop("sha256") == entry.digest and stored == entry.key
    with entry.publish() as staging:  # a second writer: its copy is dropped
        (staging / "data.txt").write_text("second")
    assert (entry.path / "data.txt").read_text() == "first"
    assert [p.name for p in entry.path.parent.iterdir()] == [entry.path.name]  # no staging folder left


def test_a_folder_with_another_or_no_key_is_set_aside_and_built_again(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    entry = KeyedEntry(tmp_path, "sets", KEY)
    entry.path.mkdir(parents=True)
    (entry.path / "data.txt").write_text("old")  # a folder without a key file (an older fgdd, a user's copy)
    with caplog.at_level(logging.WARNING, logger="fgdd.cache.keyed"):
        assert not entry.folder_matches()
    assert "not trusted" in caplog.text
    assert (entry.path.parent / (entry.path.name + ".untrusted") / "data.txt").read_text() == "old"
    entry.open_folder()  # an entry built in place (a teacher's training)
    assert entry.folder_matches()
    (entry.path / KEY_FILE).write_text(json.dumps({"sha256": entry.digest, **KEY, "ipc": 3}))
    assert not entry.folder_matches()
    assert (entry.path.parent / (entry.path.name + ".untrusted.1") / KEY_FILE).exists()
