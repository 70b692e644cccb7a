"""The packages' layers run one way: the core imports none of the others, `latency_models` never
imports `firmware_runner`, and inside `firmware_runner` each part imports only the parts before it.
Each check imports every module of a package in a fresh interpreter and lists what came with it."""

import json
import os
import pkgutil
import subprocess
import sys

import pytest

from hwbench.boards import get_board

RUNNER_PARTS = ("compiler", "runtime", "firmware", "backends", "collect")  # each may import only earlier ones

# package (or firmware_runner part) -> what importing all of its modules must not bring in
FORBIDDEN = {
    "hwbench": ["firmware_runner", "latency_models", "nas", "tensorflow"],
    "latency_models": ["firmware_runner", "nas", "tensorflow"],
    "firmware_runner": ["latency_models", "nas"],
    **{f"firmware_runner.{part}": [f"firmware_runner.{later}" for later in RUNNER_PARTS[i + 1:]]
       for i, part in enumerate(RUNNER_PARTS)},
}
CLI = "hwbench.cli"  # the one core module that imports the others, inside its commands


def _modules(package: str) -> list[str]:
    module = __import__(package, fromlist=["_"])
    if not hasattr(module, "__path__"):
        return [package]
    found = [package] + [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")]
    return [m for m in found if m != CLI]


def _imported_after(modules: list[str], code: str = "") -> set[str]:
    script = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n{code}\n"
              "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _offenders(imported: set[str], forbidden: list[str]) -> list[str]:
    return sorted(m for m in imported for f in forbidden if m == f or m.startswith(f + "."))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_the_layers_below_it(package):
    modules = _modules(package)
    assert modules, package
    imported = _imported_after(modules)
    assert not _offenders(imported, FORBIDDEN[package]), f"importing {package} brought in forbidden modules"


def test_the_cli_module_imports_the_other_packages_only_inside_its_commands():
    imported = _imported_after([CLI])
    assert not _offenders(imported, ["firmware_runner", "latency_models", "nas", "tensorflow"])


def test_no_top_level_boards_module_is_installed(tmp_path):
    """Outside a clone (whose boards/ folder of TOML files would import as a namespace package)."""
    code = "import importlib.util; print(importlib.util.find_spec('boards'))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a clone on the path would find its boards/
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)
    assert done.stdout.strip() == "None"


def test_predict_knows_the_runtime_hash_without_compiling_or_importing_the_compiler():
    from firmware_runner.firmware.build import build_firmware

    board = get_board("mps2-an386")
    built = build_firmware(board).runtime_hash
    # In a fresh interpreter where starting any process fails: the hash comes from the sources alone.
    code = ("import subprocess\n"
            "def refuse(*a, **k): raise AssertionError('a process was started')\n"
            "subprocess.Popen = subprocess.run = refuse\n"
            "from latency_models.prediction import current_runtime_hash\n"
            "print(current_runtime_hash('mps2-an386'))\n")
    done = subprocess.run([sys.executable, "-c", code + "import sys, json; print(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed, modules = done.stdout.splitlines()[-2:]
    assert printed == built
    assert not _offenders(set(json.loads(modules)), ["firmware_runner"])


def test_plots_leave_the_callers_matplotlib_backend_alone(tmp_path):
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import numpy as np\n"
        "from hwbench.analysis import analyze_graph, plot_memory_timeline\n"
        "from hwbench.graph import Graph, Op, Tensor\n"
        "from latency_models.plot import plot_predictions\n"
        "t = [Tensor(n, (s,), 'int8') for n, s in (('a', 100), ('b', 200), ('c', 50))]\n"
        "g = Graph(t, [Op('RELU', (0,), (1,)), Op('RELU', (1,), (2,))], (0,), (2,), name='chain')\n"
        f"plot_memory_timeline(analyze_graph(g, 'chain'), {str(tmp_path / 'm.png')!r})\n"
        f"plot_predictions([1e5, 2e5], [1.1e5, 1.9e5], [2e5, 1e5], {str(tmp_path / 'p.png')!r})\n"
        "print(matplotlib.get_backend())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "svg"
    assert (tmp_path / "m.png").stat().st_size > 0 and (tmp_path / "p.png").stat().st_size > 0
