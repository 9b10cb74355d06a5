"""Latency model (nas.engine.latency) and ``nas latency``: structure, caching, determinism given a
table, prediction as a function of the IR, monotonic sanity and the error cases. No test asserts
timing accuracy (the machine is shared): that is measured by benchmarks/latency_model.py."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

import nas.engine.latency as lat
from nas.core.ir import LayerGraph
from nas.engine.latency import (
    LatencyError,
    LatencyModel,
    build_latency_model,
    device_fingerprint,
    fit_calibration,
    fit_fallback,
    latency_model,
    load_latency_model,
    op_signature,
    predict_latency_ms,
    table_hit_rate,
    table_path,
)
from search_spaces import compile_config, load_config, validate


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def at(name: str, size: int, **kw) -> LayerGraph:
    return compile_config(validate(dataclasses.replace(load_config(name), img_size=size, **kw)))


def tiny_graph(c: int = 8, size: int = 32) -> LayerGraph:
    g = LayerGraph(3, (size, size))
    x = g.conv(g.input_name, c, k=3, stride=2)
    y = g.conv(x, c, k=3)
    s = g.split(y, 0, c // 2)
    z = g.concat([g.add(x, y), s, g.maxpool(y, 5)])
    g.output(g.conv(g.upsample(z), 4, bn=False, act=False, bias=True))
    return g


def toy_model(table=None) -> LatencyModel:
    """A model with a known fallback: 1 ms per GFLOP + 0.01 ms per MB + 0.002 ms per op."""
    return LatencyModel("toy", "cpu", 1, table or {}, {"all": [0.002, 1.0, 0.01]}, 1.1, 0.5)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real (tiny) table built on this CPU: two small graphs' ops, calibrated on them."""
    runs = tmp_path_factory.mktemp("runs")
    graphs = [tiny_graph(8), tiny_graph(16)]
    model = build_latency_model("cpu", 1, runs_dir=runs, progress=False, graphs=graphs, calibration=graphs)
    return runs, model, graphs


def test_signature_keys_what_the_time_depends_on():
    g = tiny_graph()
    sigs = {n.name: op_signature(g, n) for n in g}
    assert sigs["input"] is None and sigs["output"] is None
    conv = sigs["conv"]
    assert conv[0] == "conv" and conv[1:6] == (3, 8, 3, 2, 1) and conv[-2:] == (32, 32)
    assert sigs["concat"] == ("concat", (8, 4, 8), 16, 16)
    assert sigs["split"][0] == "split" and sigs["maxpool"][:3] == ("maxpool", 8, 5)
    # the same op at another spatial size is another signature
    assert op_signature(tiny_graph(size=64), tiny_graph(size=64).node("conv")) != conv


def test_build_caches_under_runs_latency_fingerprint(built):
    runs, model, graphs = built
    path = table_path(device_fingerprint("cpu", 1), runs)
    assert path == runs / "latency" / f"{model.fingerprint}.json"
    assert path.is_file() and model.fingerprint.startswith("cpu-") and model.fingerprint.endswith("-t1")
    data = json.loads(path.read_text())
    sigs = {op_signature(g, n) for g in graphs for n in g} - {None}
    assert data["info"]["ops"] == len(sigs) == len(model.table)
    assert all(ms > 0 for ms in model.table.values())
    assert len(data["info"]["calibration"]) == len(graphs) and model.scale > 0 and model.offset_ms >= 0
    assert table_hit_rate(graphs[0], model) == 1.0


def test_loaded_table_predicts_exactly_what_was_built(built, monkeypatch):
    runs, model, graphs = built
    loaded = load_latency_model("cpu", 1, runs)
    assert loaded.table == model.table and loaded.version == model.version
    for g in graphs + [at("yolor-csp", 320)]:
        assert predict_latency_ms(g, loaded) == predict_latency_ms(g, model)
    # a cached table is loaded, never re-measured
    monkeypatch.setattr(lat, "build_latency_model", lambda *a, **k: pytest.fail("rebuilt a cached table"))
    assert latency_model("cpu", 1, runs).version == model.version


def test_version_changes_with_the_table():
    a, b = toy_model({("gap", 8, 4, 4): 0.1}), toy_model({("gap", 8, 4, 4): 0.2})
    assert a.version != b.version and a.version.startswith(f"{lat.TABLE_FORMAT}-")
    assert a.version == toy_model({("gap", 8, 4, 4): 0.1}).version


def test_prediction_is_a_function_of_the_ir_alone():
    """Same graph by another route (op by op), other node names: same prediction."""
    m = toy_model()
    a = tiny_graph()
    b = LayerGraph(3, (32, 32))
    with b.scope("other"):
        x = b.conv(b.input_name, 8, k=3, stride=2, name="p")
        y = b.conv(x, 8, k=3, name="q")
        s = b.split(y, 0, 4, name="r")
        z = b.concat([b.add(x, y, name="t"), s, b.maxpool(y, 5, name="u")], name="v")
        b.output(b.conv(b.upsample(z, name="w"), 4, bn=False, act=False, bias=True, name="pred"), name="out")
    assert predict_latency_ms(a, m) == predict_latency_ms(b, m)
    assert predict_latency_ms(at("yolor-elan-2-1", 320), m) == predict_latency_ms(at("yolor-elan-2-1", 320), m)


def test_table_entries_override_the_fallback_and_sum():
    g = tiny_graph()
    base = toy_model()
    sig = op_signature(g, g.node("conv1"))
    with_entry = toy_model({sig: 100.0})
    delta = predict_latency_ms(g, with_entry) - predict_latency_ms(g, base)
    assert delta == pytest.approx(1.1 * (100.0 - base.op_ms(g, g.node("conv1"))))


def test_prediction_grows_with_width_depth_image_and_batch(built):
    _, model, _ = built
    for m in (toy_model(), model):

        def p(g, b=1, m=m):
            return predict_latency_ms(g, m, b)

        assert p(at("yolor-v3", 320, width=1.0)) > p(at("yolor-v3", 320, width=0.5))
        assert p(at("yolor-v3", 320, depth=1.0)) > p(at("yolor-v3", 320, depth=0.33))
        assert p(at("yolor-v3", 640)) > p(at("yolor-v3", 320))
        g = at("yolor-v3", 320)
        assert p(g, 2) > p(g)


def test_fallback_fit_recovers_known_coefficients():
    """Exact linear data per op kind is fitted exactly; the fit is in relative error."""
    entries = []
    for i in range(1, 9):
        f, b = 0.1 * i, 3.0 * (9 - i) ** 1.5
        entries.append((("conv", 1, 1, 3, 1), (f, b), 0.05 + 2.0 * f + 0.01 * b))
        entries.append((("concat", 1), (0.0, b), 0.02 + 0.004 * b))
    fit = fit_fallback(entries)
    assert fit["conv3s1"] == pytest.approx([0.05, 2.0, 0.01], rel=1e-6)
    assert fit["concat"][0] == pytest.approx(0.02) and fit["concat"][2] == pytest.approx(0.004)
    assert all(c >= 0 for c in fit["all"])
    assert fit_calibration([10, 20, 40], [13, 23, 43]) == pytest.approx((1.0, 3.0))
    # a negative offset is not allowed: the fit refits without it
    scale, offset = fit_calibration([10, 20, 40], [19, 39, 79])
    assert offset == 0 and scale == pytest.approx(1.97, rel=0.02)


def test_missing_or_corrupt_table_is_one_clear_error(tmp_path):
    with pytest.raises(LatencyError, match="no latency table"):
        load_latency_model("cpu", 1, tmp_path)
    path = table_path(device_fingerprint("cpu", 1), tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(LatencyError, match="unreadable latency table"):
        load_latency_model("cpu", 1, tmp_path)


def test_cli_json_with_a_cached_table(built):
    runs, model, _ = built
    proc = run("latency", "yolor-v3", "--img-size", "320", "--json", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"predicted_ms", "measured_ms", "device", "img_size", "batch"} <= out.keys()
    assert out["measured_ms"] is None and out["device"] == "cpu" and (out["img_size"], out["batch"]) == (320, 1)
    assert out["threads"] == 1 and out["table_version"] == model.version
    assert out["predicted_ms"] == pytest.approx(predict_latency_ms(at("yolor-v3", 320), model), abs=1e-3)
    human = run("latency", "yolor-v3", "--img-size", "320", "--runs-dir", str(runs))
    assert human.returncode == 0 and "predicted:" in human.stdout and "1 thread" in human.stdout


@pytest.mark.slow
def test_cli_measure_runs_the_built_model(built):
    runs, _, _ = built
    proc = run("latency", "yolor-elan-1-1", "--img-size", "128", "--measure", "--json", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["measured_ms"] > 0 and out["runtime"] == "onnxruntime"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["latency", "yolor-v3", "--device", "tpu"], "--device: 'tpu' is not known; accepted: cpu, cuda"),
        (["latency", "yolor-v3", "--img-size", "100"], "img_size: 100"),
        (["latency", "yolor-v3", "--img-size", "330"], "img_size: 330"),
        (["latency", "yolor-v3", "--batch", "0"], "--batch: 0"),
        (["latency", "yolor-v3", "--threads", "0"], "--threads: 0"),
        (["latency", "yolor-nope"], "unknown preset"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    proc = run(*args, "--runs-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert proc.stdout == "" and not (tmp_path / "latency").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line_exit_2(tmp_path):
    proc = run("latency", "yolor-v3", "--device", "cuda", "--measure", "--runs-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: --device cuda: no CUDA GPU is visible to torch on this machine; accepted: --device cpu"
    )
