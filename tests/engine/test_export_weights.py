"""``nas export RUN --format torch --weights proxy``: the proxy-scale ``model.py`` a trial trained and its
scored weights beside it, checked against our own network (``build(proxy_graph(...))``) loaded straight
from the trial's checkpoint; and the one-line refusals.

The run is made without Ray: a proxy study whose trial 0 is a real (tiny) training written where a
search writes it (``runs/NAME/trials/<folder>``) and told the AP it scored; trial 1 was never trained.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evaluators.recipe import Recipe
from evaluators.train import proxy_graph, train_from_config
from nas.cli import main
from nas.core.cost import parse_flops
from nas.core.module import build
from nas.core.runio import atomic_write_json
from nas.engine import SearchOptions, score_candidate
from nas.engine.proxy.worker import trial_folder
from nas.engine.record.storage import open_storage
from search_spaces import load_config

TRAINED, UNTRAINED = "yolor-v3", "yolor-csp"


@pytest.fixture(scope="module", params=["v1", "v2"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchOptions]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = tmp_path_factory.mktemp(f"runs-{request.param}")
    recipe = Recipe.named(request.param, epochs=1, images=16, img_size=64, val_images=16)
    opts = SearchOptions(
        budget=parse_flops("500G"), name="w", candidates=5, trials=1, recipe=recipe, runs_dir=str(runs)
    )
    study = optuna.create_study(study_name="w", storage=open_storage(None, opts.run_dir), directions=["maximize"] * 2)
    for preset in (TRAINED, UNTRAINED):
        cfg, t = load_config(preset), study.ask()
        s = score_candidate(cfg)
        for k, v in (("config", cfg.to_yaml()), ("key", cfg.key()), ("flops", s["flops"]), ("metrics", s["metrics"])):
            t.set_user_attr(k, v)
        ap = 0.5
        if preset == TRAINED:
            out = opts.run_dir / "trials" / trial_folder(cfg.key(), 1, 1)
            result = train_from_config(cfg, recipe, out_dir=out, data_root=runs, num_threads=1, progress=False)
            assert result["status"] == "ok"
            ap = float(result["AP"])
        study.tell(t, [ap, float(s["flops"])])
    atomic_write_json(opts.run_dir / "search.json", opts.identity())
    return opts.run_dir, opts


def _export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["export", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _proxy_trial_0(run_dir: Path, out: Path) -> list[str]:
    return [str(run_dir), "--trial", "0", "--format", "torch", "--weights", "proxy", "-o", str(out)]


def test_exported_proxy_model_and_weights_give_our_network_outputs(
    run: tuple[Path, SearchOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, opts = run
    rc, stdout, err = _export(capsys, *_proxy_trial_0(run_dir, tmp_path / "model.py"))
    assert rc == 0, err
    assert "model.pt" in stdout and "x0.25" in stdout
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import sys, torch; sys.path.insert(0, '.'); import model; torch.set_num_threads(1); "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('nas', 'search_spaces', 'evaluators')]; "
        "net = model.build().eval(); net.load_state_dict(torch.load('model.pt', weights_only=True)); "
        "torch.save([o.detach() for o in net(torch.load('x.pt'))], 'y.pt')"
    )
    subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, check=True, timeout=120)
    theirs = torch.load(tmp_path / "y.pt", weights_only=True)

    # ours: the network the proxy trains, with the weights the trainer scored, read from the checkpoint here
    state = torch.load(next((run_dir / "trials").glob("*/checkpoint.pt")), weights_only=True)
    assert ("ema" in state) == (opts.recipe.version == "v2")
    graph, _ = proxy_graph(load_config(TRAINED), opts.recipe, state["fingerprint"]["num_classes"])

    def outputs(weights: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        net = build(graph).eval()
        net.load_state_dict(weights)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the subprocess: the same kernels, the same sums
        try:
            return [o.detach() for o in net(x)]
        finally:
            torch.set_num_threads(threads)

    ours = outputs(state["ema"]["model"] if "ema" in state else state["model"])
    assert len(theirs) == len(ours) == 3
    for a, b in zip(theirs, ours, strict=True):
        assert torch.equal(a, b)
    if "ema" in state:  # the last weights are another network: the test tells the two apart
        assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(theirs, outputs(state["model"]), strict=True))


def test_without_weights_the_output_says_where_they_are(
    run: tuple[Path, SearchOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = run
    rc, stdout, err = _export(capsys, str(run_dir), "--trial", "0", "--format", "torch", "-o", str(tmp_path / "m.py"))
    assert rc == 0, err
    assert "--weights proxy" in stdout and "checkpoint.pt" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]  # the full-size model alone
    assert "load_state_dict" not in (tmp_path / "m.py").read_text()
    rc, stdout, _ = _export(capsys, str(run_dir), "--trial", "1", "--format", "torch", "-o", str(tmp_path / "n.py"))
    assert rc == 0 and "--weights" not in stdout  # an untrained trial has none to offer


def test_refusals_are_one_line_and_write_nothing(
    run: tuple[Path, SearchOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = run
    out = str(tmp_path / "model.py")
    cases = [
        ([str(run_dir), "--trial", "1", "--format", "torch", "--weights", "proxy", "-o", out], "no checkpoint"),
        (["yolor-csp", "--format", "torch", "--weights", "proxy", "-o", out], "not a run folder"),
        ([str(run_dir), "--trial", "0", "--format", "yolov7", "--weights", "proxy", "-o", out], "--format torch"),
        ([str(run_dir), "--trial", "0", "--format", "torch", "--weights", "full", "-o", out], "accepted: proxy"),
        ([str(run_dir), "--trial", "0", "--format", "torch", "--weights", "proxy", "-o", out[:-3] + ".pt"], "-o:"),
    ]
    for args, needle in cases:
        rc, stdout, err = _export(capsys, *args)
        assert rc == 2 and stdout == "", (args, stdout)
        assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_json_names_the_weights_file(
    run: tuple[Path, SearchOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, stdout, err = _export(capsys, *_proxy_trial_0(run[0], tmp_path / "net.py"), "--json")
    assert rc == 0, err
    result = json.loads(stdout)
    assert result["trial"] == 0 and result["weights"] == str(tmp_path / "net.pt")
    weights = torch.load(tmp_path / "net.pt", weights_only=True)
    assert type(weights) is dict and all(type(v) is torch.Tensor for v in weights.values())


def test_weights_are_found_in_the_runs_tune_storage(
    run: tuple[Path, SearchOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A training that ran on another node left its checkpoint only in ``runs/NAME/ray`` (the layout a
    real search leaves: ``<experiment>/trial_<n>_<folder>/checkpoint_<k>/``, the epoch in Tune's metadata)."""
    run_dir, _ = run
    moved = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("shapes*"))
    (working,) = (moved / "trials").iterdir()
    stored = moved / "ray" / "tune-1-rung0" / f"trial_0_{working.name}" / "checkpoint_000000"
    stored.mkdir(parents=True)
    (stored / ".metadata.json").write_text('{"epoch": 1}')
    shutil.move(working / "checkpoint.pt", stored / "checkpoint.pt")
    assert _export(capsys, *_proxy_trial_0(run_dir, tmp_path / "a.py"))[0] == 0
    assert _export(capsys, *_proxy_trial_0(moved, tmp_path / "b.py"))[0] == 0
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    shutil.rmtree(moved / "ray")
    rc, _, err = _export(capsys, *_proxy_trial_0(moved, tmp_path / "c.py"))
    assert rc == 2 and "no checkpoint" in err and not (tmp_path / "c.py").exists()
