"""Shared fixtures: a small generated population (real TensorFlow conversion) and the MLPerf Tiny
models from ../shared, which a fresh clone does not have."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"
NEEDS_SHARED = "needs ../shared/models/mlperf-tiny (the MLPerf Tiny models), absent in a fresh clone"

# MLPerf Tiny reference models: file and MACs as published with them.
MLPERF_TINY = {
    "kws": ("kws_ref_model.tflite", 2_664_768),
    "vww": ("vww_96_int8.tflite", 7_491_968),
    "ic": ("pretrainedResnet_quant.tflite", 12_534_400),
    "ad": ("ad01_int8.tflite", 264_192),
    "sww": ("str_ww_ref_model.tflite", 826_368),
}


def pytest_configure(config):
    # Keras and Ray write to the home folder unless told otherwise.
    home = Path(config.rootpath) / ".pytest_cache" / "home"
    os.environ.setdefault("KERAS_HOME", str(home / "keras"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HWBENCH_CACHE_DIR", str(Path(config.rootpath) / ".pytest_cache" / "hwbench"))


def emulators_under(folder: Path) -> dict[int, list[str]]:
    """The QEMU processes (pid: command line) whose run image lies under `folder`: give a collection
    TMPDIR=folder and these are its emulators, even after it died and they lost their parent."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            args = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0")[:-1]]
        except OSError:  # not a process, or it just ended
            continue
        if args and args[0].endswith("qemu-system-arm") and any(a.startswith(f"loader,file={folder}") for a in args):
            found[int(proc.name)] = args
    return found


def measurement_count(db: Path) -> int:
    """Rows in a results DB that a collection may be writing right now (0 before it has a schema)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    except sqlite3.OperationalError:  # schema not written yet
        return 0


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`hwbench ARGS` in this process: exit code, stdout, stderr."""
    from hwbench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def mlperf_model():
    def path(name: str) -> Path:
        file = SHARED_MODELS / MLPERF_TINY[name][0]
        if not file.exists():
            pytest.skip(NEEDS_SHARED)
        return file
    return path


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """Eight random models (seed 11) and their manifest entries, built once per test session."""
    from hwbench.generate import generate_models

    out = tmp_path_factory.mktemp("generated")
    entries = generate_models(8, seed=11, out_dir=out)
    return out, entries


@pytest.fixture(scope="session")
def ten_models(tmp_path_factory):
    """Ten random models (seed 12), the population the collection tests run on boards."""
    from hwbench.generate import generate_models

    out = tmp_path_factory.mktemp("ten")
    generate_models(10, seed=12, out_dir=out, jobs=2)
    return sorted(out.glob("*.tflite"))
