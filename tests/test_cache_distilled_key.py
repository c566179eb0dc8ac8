"""The cache of distilled sets keeps its keys: the digests below were computed by ``selection_key(cfg, ...)`` before
it took plain values (commit 4e54258; those with a teacher's weights by main's ce35bb1), so entries written by earlier
runs still hit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import fgdd
from fgdd.cache.keyed import key_digest
from fgdd.config import register_resolvers
from fgdd.pipeline import distilled_key
from fgdd.run import CONF_DIR

CHECKPOINT = "CHECKPOINT"  # replaced by a file holding b"a teacher" (the key holds its hash, not its path)
DIGESTS = [
    ([], "37fdb5379a3d711a82819911e0c34251d5fc42b011d8be4b5e11cc32fade2c26"),
    (["selector=fgdd"], "5c23fbd40bd32a6f2f657e96536d330298e346f8bb3e655e4d967d6d0230702e"),
    (["selector=fgdd", "segmenter=none", "threshold=median", "selector.resize_to=full"],
     "159ee8d6aeaeb421cb04635e910e511c1f4b783c7fc51c002021cab5a4e19ea6"),
    (["selector=random_real", "ipc=3", "seed=2"], "c073dd20e703dc9da44ed090071180e33a557cccbad15951dc0957b09299234a"),
    (["selector.precision=bf16", "dataset=cifar10", "model@teacher.arch=resnet18_modified"],
     "3bf2e0b09a5afd020c0372d34449b83d8df6572a1952aaaa543c446a346ff269"),
    (["teacher=checkpoint", f"teacher.checkpoint={CHECKPOINT}", "teacher.min_val_acc=0.5"],
     "8a68869e05a7c7eb2ab3f2f07fa57954e65536addecdabb903afade7c414be96"),
    ([f"teacher.checkpoint={CHECKPOINT}"], "e9beb85b815cb21130506eac2abf389ed832ae001d5dc72f1f9a95d6acde2553"),
    (["selector=folder", "selector.path=/somewhere", "ipc=1"],
     "7bdab58187e3b196d1ffa60ff36a0aabe17ae2c486a1c5dec7ca12c5047f29c5"),
    (["teacher.recipe.epochs=3", "evaluator=holdout", "logger=none"],
     "16104905ecfad47d6428c4d58e7c6ba24d9ceb0b664c6e2d26a4d43eaf85da95"),
]


@pytest.mark.parametrize("overrides,digest", DIGESTS, ids=[" ".join(o) or "default" for o, _ in DIGESTS])
def test_distilled_set_keys_are_those_of_earlier_runs(overrides: list[str], digest: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fgdd, "__version__", "pinned")  # the key holds the version: a release changes every key
    checkpoint = tmp_path / "t.pth"
    checkpoint.write_bytes(b"a teacher")
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="run", overrides=["data_root=/data", "cache_dir=/cache",
                                                    *(o.replace(CHECKPOINT, str(checkpoint)) for o in overrides)])
    assert key_digest(distilled_key(cfg, "cpu")) == digest


WEIGHTS = "ab" * 32
WEIGHED = [  # a trained teacher's weights join its key (ce35bb1); a checkpoint's file hash already names it
    ([], "fc5ce9f27c27191735c55b204984481b09aca7e2e6b57b9246a299fd5fc0c7a4"),
    (["selector=fgdd"], "73d2660048648a29a43ddf13a6ac2689e8074b84b2c86c6662904bb863144070"),
    ([f"teacher.checkpoint={CHECKPOINT}"], "e9beb85b815cb21130506eac2abf389ed832ae001d5dc72f1f9a95d6acde2553"),
]


@pytest.mark.parametrize("overrides,digest", WEIGHED, ids=[" ".join(o) or "default" for o, _ in WEIGHED])
def test_a_trained_teachers_weights_are_in_its_key(overrides: list[str], digest: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fgdd, "__version__", "pinned")
    checkpoint = tmp_path / "t.pth"
    checkpoint.write_bytes(b"a teacher")
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="run", overrides=["data_root=/data", "cache_dir=/cache",
                                                    *(o.replace(CHECKPOINT, str(checkpoint)) for o in overrides)])
    assert key_digest(distilled_key(cfg, "cpu", WEIGHTS)) == digest
