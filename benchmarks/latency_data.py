"""The data the latency benchmarks learn from: per emulated board, generated training models (seed
101) and held-out generated models of another seed (202), measured on the board and loaded under
one runtime build. Shared by latency_accuracy.py and latency_transfer.py, which use the same
folder (`--data`), so what one collected the other reuses.

Models are generated within the board's bounds (`hwbench.generate.bounds_for(board=...)`): boards
whose memory tightens the default bounds (microbit: 8 KiB of activations) get a population of their
own, which only has models that run there (the check `collect --board` generates with: the decoded
op table fits beside the arena), `models-seed101-peak8192-microbit`; the others share
`models-seed101`. What is already in the results
DBs under the current firmware is reused: a rerun only collects what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwbench.boards import Board  # noqa: E402
from hwbench.generate import Bounds, bounds_for  # noqa: E402
from hwbench.results import ResultsDB  # noqa: E402
from latency_models.dataset import Dataset, load_dataset  # noqa: E402


@dataclass
class BoardData:
    board: Board
    runtime_hash: str
    train: Dataset
    test: Dataset
    extra: Dataset  # the `extra_files` measured too (MLPerf Tiny, ...); empty when none


def models_folder(data: Path, seed: int, bounds: Bounds, board: Board | None) -> Path:
    """Where the models of `seed` within `bounds` (that run on `board`, if given) live: one folder
    per population."""
    default = Bounds()
    tightened = [f"{what}{mine}" for what, mine, usual in (
        ("macs", bounds.max_macs, default.max_macs), ("weights", bounds.max_weight_bytes, default.max_weight_bytes),
        ("peak", bounds.max_peak_bytes, default.max_peak_bytes)) if mine != usual]
    return data / "-".join([f"models-seed{seed}", *tightened, *([board.name] if board else [])])


def model_files(data: Path, count: int, seed: int, board: Board, jobs: int) -> list[Path]:
    """The first `count` models of `seed` for `board`, generated when missing (the same seed and
    board give the same files): the shared population within the default bounds or, for a board
    whose memory tightens them, its own, of models that run there (as `collect --board` generates)."""
    bounds = bounds_for(board=board)
    own = board if bounds != Bounds() else None
    folder = models_folder(data, seed, bounds, own)
    files = sorted(folder.glob("*.tflite"))
    if len(files) < count:
        from firmware_runner.collect import RunsOn
        from hwbench.generate import generate_models

        check = RunsOn(own) if own else None
        log(f"generating {count} models (seed {seed}, {bounds}{f', {check.name}' if check else ''}) in {folder}")
        generate_models(count, seed, folder, jobs=jobs, bounds=bounds, check=check)
        files = sorted(folder.glob("*.tflite"))
    return files[:count]


def collect_into(board: Board, files: Sequence[Path], db: Path, jobs: int) -> str:
    """Measure what `db` lacks of `files` on `board` (one repeat: counts are identical run to run);
    the runtime hash they were measured with."""
    from firmware_runner.collect import collect
    from firmware_runner.firmware.build import build_firmware

    firmware = build_firmware(board)
    recorded = collect(board, files, ResultsDB(db), repeats=1, jobs=jobs)
    log(f"{board.name}: {len(recorded)} model(s) measured now into {db.name} (runtime {firmware.runtime_hash})")
    return firmware.runtime_hash


def restrict(data: Dataset, files: Sequence[Path]) -> Dataset:
    """Only the measurements of these model files, in the dataset's order."""
    wanted = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    return data.subset([i for i, sha in enumerate(data.sha256) if sha in wanted])


def board_data(board: Board, data: Path, n_train: int, n_test: int, train_seed: int = 101, test_seed: int = 202,
               jobs: int = 2, collect: bool = True, extra_files: Sequence[Path] = ()) -> BoardData:
    """The board's training, held-out and extra models, measured (unless `collect` is false: then
    the DBs as they are, under the training DB's latest runtime) and loaded under one runtime."""
    train_files = model_files(data, n_train, train_seed, board, jobs)
    test_files = model_files(data, n_test, test_seed, board, jobs)
    tag = board.name.removeprefix("mps2-")
    train_db, test_db, extra_db = data / f"lat-{tag}.db", data / f"lat-{tag}-test.db", data / "checks.db"
    if not collect:
        runtime = load_dataset(train_db, board.name).runtime_hash
    else:
        for _ in range(3):  # the runtime sources may change while this runs (they are being worked on)
            runtimes = {collect_into(board, train_files, train_db, jobs), collect_into(board, test_files, test_db, jobs)}
            if extra_files:
                runtimes.add(collect_into(board, extra_files, extra_db, 1))
            if len(runtimes) == 1:
                break
            log(f"{board.name}: the runtime changed during collection ({', '.join(sorted(runtimes))}); collecting again")
        else:
            raise SystemExit(f"{board.name}: the runtime kept changing during collection; try again later")
        runtime = runtimes.pop()
    log(f"{board.name}: loading the datasets (runtime {runtime})")
    train = restrict(load_dataset(train_db, board.name, runtime), train_files)
    test = restrict(load_dataset(test_db, board.name, runtime), test_files)
    extra = restrict(load_dataset(extra_db, board.name, runtime), extra_files) if extra_files else train.subset([])
    return BoardData(board, runtime, train, test, extra)


def add_data_options(parser: argparse.ArgumentParser, train: int, test: int) -> None:
    """The options both benchmarks take: which boards, how many models, their seeds, where."""
    from hwbench.boards import list_boards

    parser.add_argument("--boards", nargs="+", default=[b.name for b in list_boards() if b.emulated],
                        help="emulated boards (default: every one)")
    parser.add_argument("--train", type=int, default=train, help="training models per board")
    parser.add_argument("--test", type=int, default=test, help="held-out models per board (another seed)")
    parser.add_argument("--train-seed", type=int, default=101)
    parser.add_argument("--test-seed", type=int, default=202)
    parser.add_argument("--data", default=str(ROOT / "out"), help="folder of the model folders and results DBs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-collect", action="store_true", help="use the DBs as they are (latest runtime)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
