"""The Tune storage as the trainings' persistence (``nas.engine.proxy.worker``): where a run's storage is,
which flag values are accepted, and which stored checkpoint a starting training adopts. The real
cluster case is ``test_ray_multinode.py``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nas.engine.options import SearchError, SearchOptions
from nas.engine.proxy.worker import _adopt_stored_checkpoint, _epoch_checkpoint, storage_fs, stored_checkpoints
from nas.engine.validate import validate_options
from tests.support.helpers import search_cmd


def test_the_run_storage_is_the_run_folder_or_the_flag_under_the_run_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert SearchOptions(budget=1, name="a").tune_storage == str(tmp_path / "runs" / "a" / "ray")
    assert SearchOptions(budget=1, name="a", ray_storage="shared").tune_storage == str(tmp_path / "shared" / "a")
    assert SearchOptions(budget=1, name="a", ray_storage="gs://b/x").tune_storage == "gs://b/x/a"
    fs, path = storage_fs(SearchOptions(budget=1, name="a", ray_storage=f"file://{tmp_path}").tune_storage)
    assert (fs.type_name, path) == ("local", str(tmp_path / "a"))


@pytest.mark.parametrize("bad", ["ftp://host/x", "", "  "])
def test_a_storage_ray_cannot_use_is_one_line(bad):
    with pytest.raises(SearchError, match="--ray-storage: .* accepted: a folder .* s3://") as e:
        validate_options(SearchOptions(budget=10**11, ray_storage=bad))
    assert "\n" not in str(e.value)


def test_the_cli_refuses_it_before_writing_anything(tmp_path):
    proc = subprocess.run(
        search_cmd(tmp_path, "x", "--ray-storage", "ftp://host/x"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: --ray-storage: 'ftp://host/x'")
    assert not any(tmp_path.iterdir())


def _training(folder: Path, epochs: int, marker: str) -> None:
    """A working folder as the trainer leaves it after ``epochs`` epochs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoint.pt").write_text(marker)
    (folder / "metrics.json").write_text(json.dumps({"history": [{"epoch": e + 1} for e in range(epochs)]}))


def _persist(root: Path, run: str, trial: str, index: int, work: Path, epoch: int) -> None:
    """What Tune does with a reported checkpoint: copy its folder into the storage."""
    import shutil

    staged = Path(_epoch_checkpoint(work, epoch).path)
    shutil.copytree(staged, root / run / trial / f"checkpoint_{index:06d}")


def test_a_starting_training_adopts_the_newest_stored_checkpoint_only_when_it_holds_more(tmp_path):
    root, folder = tmp_path / "storage", "13fbd79c3d39"
    _training(tmp_path / "a", 1, "epoch 1")
    _persist(root, "tune-1-rung0", f"trial_3_{folder}", 0, tmp_path / "a", 1)
    _training(tmp_path / "a", 2, "epoch 2")
    _persist(root, "tune-2-rung0", f"trial_5_{folder}", 0, tmp_path / "a", 2)  # a later Tune run's
    _training(tmp_path / "b", 3, "other")
    _persist(root, "tune-2-rung0", f"trial_6_{folder}-e1", 0, tmp_path / "b", 3)  # another training
    fs, path = storage_fs(str(root))

    found = stored_checkpoints(fs, path, folder)
    assert [e for e, _ in found] == [2, 1] and found[0][1].endswith(f"tune-2-rung0/trial_5_{folder}/checkpoint_000000")

    fresh = tmp_path / "node-b"  # a node that never saw this training: takes epoch 2
    fresh.mkdir()
    assert _adopt_stored_checkpoint(fs, path, folder, fresh) == 2
    assert (fresh / "checkpoint.pt").read_text() == "epoch 2"
    assert sorted(p.name for p in fresh.iterdir()) == ["checkpoint.pt", "metrics.json"]

    ahead = tmp_path / "node-a"  # its own folder is ahead of the storage (killed before Tune copied)
    _training(ahead, 3, "own epoch 3")
    assert _adopt_stored_checkpoint(fs, path, folder, ahead) == 3
    assert (ahead / "checkpoint.pt").read_text() == "own epoch 3"
