"""`nas show`: JSON fields, table, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from nas.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, timeout=120)


def test_show_json_has_int_params_and_flops(capsys):
    assert main(["show", "darknet53", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["params"], int) and isinstance(out["flops"], int)
    assert out["params"] == 41609928
    assert sum(s["flops"] for s in out["stages"]) == out["flops"]


def test_show_img_size_changes_flops(capsys):
    main(["show", "yolor-csp", "--json", "--img-size", "320"])
    small = json.loads(capsys.readouterr().out)["flops"]
    main(["show", "yolor-csp", "--json"])
    assert json.loads(capsys.readouterr().out)["flops"] == 4 * small


def test_show_all_lists_every_preset(capsys):
    from search_spaces import preset_names

    assert main(["show", "--all"]) == 0
    out = capsys.readouterr().out
    for name in preset_names():
        assert name in out


def test_show_yaml_file(tmp_path, capsys):
    from search_spaces import load_config, save_config

    save_config(load_config("yolor-elan-2-1"), tmp_path / "a.yaml")
    assert main(["show", str(tmp_path / "a.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["flops"] > 0


@pytest.mark.parametrize(
    ("setup", "args", "needle"),
    [
        (None, ["show", "yolor-nope"], "unknown preset"),
        (None, ["show", "missing.yaml"], "no such file"),
        ("schema: 1\nbackbone: [\n", ["show", "{f}"], "malformed YAML"),
        ("schema: 7\n", ["show", "{f}"], "schema: 7"),
        ("schema: 1\nbackbone: {block: csp, split_ratio: 0}\n", ["show", "{f}"], "backbone.split_ratio: 0"),
        ("schema: 1\nbackbone: {block: csp, split_ratio: 1.2}\n", ["show", "{f}"], "backbone.split_ratio: 1.2"),
        ("schema: 1\nneck: {block: prn, mask_fraction: -1}\n", ["show", "{f}"], "neck.mask_fraction: -1"),
        ("schema: 1\nbackbone: {block: elan, elan_stack: 0}\n", ["show", "{f}"], "backbone.elan_stack: 0"),
        (None, ["show", "yolor-csp", "--img-size", "abc"], "invalid int value"),
        (None, ["show", "yolor-csp", "--img-size", "100"], "img_size: 100"),
        (None, ["show"], "give one PRESET"),
        (None, ["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, setup, args, needle):
    if setup is not None:
        (tmp_path / "bad.yaml").write_text(setup)
    args = [a.format(f=tmp_path / "bad.yaml") for a in args]
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
