"""The search loop: aging evolution with μNAS's selection, or random search, in one of the spaces of
nas.spaces, under one evaluation budget (`rounds` candidates, and optionally a wall-clock budget), stored
candidate by candidate so that a killed search resumes.

Aging evolution (Real et al.; μNAS's defaults): the space is sampled until `population` candidates
are finished (the first population + in_flight - 1 rounds); each later round draws `sample` candidates from the `population` most recent ones, takes as parent the one
with the lowest score max_i(objective_i / bound_i / λ_i) — the objectives being the validation error and
each bounded resource, λ_i ~ U(0, 1) drawn anew per selection (random scalarisation) — and mutates it.

Seeds: everything round r does (the proposal and the candidate's training) comes from the generator
of (seed, r). Round r sees only the rounds before r - in_flight + 1, so up to `in_flight` candidates
train at once and the search is the same for a seed whatever the number of workers (up to in_flight),
wherever they train (nas/executors.py: local processes or a Ray cluster) and however often it was
killed and resumed.

Workers: candidates train in worker processes (one for one worker too), each running TensorFlow on
one thread. J workers then use J cores, where each would otherwise spread over all of them, and
training sums in the same order whatever the machine and the number of workers (TensorFlow splits
its work by its thread count, and the trained weights differ in the last bits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from hwbench.boards import get_board
from hwbench.errors import HwbenchError
from nas.datasets import load_dataset, resized
from nas.evaluate import Evaluation, evaluate
from nas.executors import RayCluster, local_executor
from nas.objectives import Bounds, LatencyEstimator, board_firmware
from nas.spaces import SPACES, build_space, propose
from nas.spaces.tinynas import SAMPLES
from nas.store import Candidate, SearchStore

ALGORITHMS = ("aging", "random")
OBJECTIVES = 6  # what `score` weighs: the validation error, peak, flash, weights, MACs and latency
MUNAS_ERROR_BOUND = 0.035  # μNAS's MNIST error bound: where the error objective's scale is set


@dataclass(frozen=True)
class SearchSettings:
    """What determines a search's results (stored with it: a resumed search must use the same)."""

    board: str
    dataset: str
    bounds: Bounds = field(default_factory=Bounds)
    latency_model: str | None = None
    algorithm: str = "aging"
    rounds: int = 2000
    epochs: int = 10
    seed: int = 0
    population: int = 100
    sample: int = 25
    max_error: float = MUNAS_ERROR_BOUND
    in_flight: int = 4
    runtime_code_bytes: int = 0  # counted in every candidate's flash: nas.objectives.runtime_code_bytes(board)
    space: str = "unas"
    space_samples: int = SAMPLES  # per width and resolution, when the space is optimised first (mbconv)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise HwbenchError(f"unknown search algorithm {self.algorithm!r}: use {' or '.join(ALGORITHMS)}")
        if self.space not in SPACES:
            raise HwbenchError(f"unknown search space {self.space!r}: use {', '.join(SPACES)}")
        for name in ("rounds", "epochs", "population", "sample", "in_flight", "space_samples"):
            if getattr(self, name) < 1:
                raise HwbenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.sample > self.population:
            raise HwbenchError(f"the sample ({self.sample}) must not exceed the population ({self.population})")
        if self.bounds.max_latency_ms is not None and self.latency_model is None:
            raise HwbenchError("a latency bound needs the board's latency model: give --latency-model FILE")

    def as_json(self) -> dict:
        return asdict(self)


@cache
def search_context(settings: SearchSettings) -> tuple:
    """(dataset, space, latency estimator) of a search, loaded once per process (the MBConv space is
    optimised for the bounds first)."""
    dataset, latency, _ = _evaluation_context(settings)
    space = build_space(settings.space, dataset.input_shape, dataset.classes, settings.bounds, latency, settings.seed,
                        settings.space_samples, settings.runtime_code_bytes)
    return dataset, space, latency


@cache
def _evaluation_context(settings: SearchSettings) -> tuple:
    """(dataset, latency estimator, the board's firmware): what a worker needs, without the space."""
    board = get_board(settings.board)
    dataset = load_dataset(settings.dataset, seed=settings.seed)
    latency = LatencyEstimator(settings.latency_model, board) if settings.latency_model else None
    return dataset, latency, board_firmware(board)


def _evaluate(settings: SearchSettings, spec: dict, seed: int, context: tuple | None = None,
              epochs: int | None = None) -> Evaluation:
    """Train and measure one candidate, in a worker (a local process or a cluster's). `context` is the
    search's dataset, latency model and board firmware as the search loaded them (a cluster's nodes may not read its
    files); without it this process loads them, once. `epochs`: the search's by default."""
    _one_thread_tensorflow()
    dataset, latency, firmware = context or _evaluation_context(settings)
    return evaluate(spec, resized(dataset, spec["input"][:2]), epochs or settings.epochs, seed, latency,
                    code_bytes=settings.runtime_code_bytes, firmware=firmware)


def score(evaluation: Evaluation, settings: SearchSettings, lambdas: np.ndarray) -> float:
    """μNAS's random scalarisation: the largest objective / bound / λ (lower is better)."""
    if evaluation.status != "ok":
        return float("inf")
    b = settings.bounds
    ratios = [(1 - evaluation.val_accuracy) / settings.max_error]
    for value, bound in ((evaluation.peak_bytes, b.max_peak_bytes), (evaluation.flash_bytes, b.max_flash_bytes),
                         (evaluation.weight_bytes, b.max_weight_bytes), (evaluation.macs, b.max_macs),
                         (evaluation.latency_ms, b.max_latency_ms)):
        ratios.append(value / bound if bound is not None and value is not None else 0.0)
    return float(np.max(np.asarray(ratios) / lambdas))


def propose_round(settings: SearchSettings, r: int, done: dict[int, Candidate]) -> tuple[dict, int | None, int]:
    """Round r's spec, its parent's round (None: sampled) and its training seed."""
    _, space, latency = search_context(settings)
    rng = np.random.default_rng([settings.seed, r])
    parent = None
    seen = range(r - settings.in_flight + 1)  # the rounds finished for certain when round r is proposed
    if settings.algorithm == "aging" and len(seen) >= settings.population:
        population = [done[i] for i in seen[-settings.population:]]
        lambdas = rng.uniform(0, 1, size=OBJECTIVES)
        drawn = rng.choice(len(population), size=settings.sample, replace=False)
        scores = [score(population[i].evaluation, settings, lambdas) for i in drawn]
        if np.isfinite(min(scores)):
            parent = population[int(drawn[int(np.argmin(scores))])]
    spec, _ = propose(space, rng, settings.bounds, latency, parent=parent.spec if parent else None,
                      code_bytes=settings.runtime_code_bytes)
    return spec, parent.round if parent else None, int(rng.integers(2**31))


def _one_thread_tensorflow() -> None:
    """This worker's TensorFlow on one thread per op and one op at a time: set before it starts (the
    worker's first candidate), kept for the next ones."""
    from hwbench.generate.build import _quiet_tensorflow

    tf = _quiet_tensorflow()
    if tf.config.threading.get_intra_op_parallelism_threads() != 1:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)


class Search:
    """A search opened in `out_dir`: a bad dataset, latency model, Ray address or store fails here,
    before anything runs. Candidates train in local processes, or as tasks on the Ray cluster at
    `ray_address` ("host:port", "ray://host:port" or "auto").

        with Search(settings, "out", resume=True) as search:
            search.run(workers=2)
            search.candidates  # every candidate by round
    """

    def __init__(self, settings: SearchSettings, out_dir: str | Path, resume: bool = False,
                 ray_address: str | None = None):
        self.settings = settings
        search_context(settings)
        # Connected before the store is made: a wrong address leaves no new search behind.
        self.cluster = RayCluster(ray_address) if ray_address is not None else None
        try:
            self.store = SearchStore(out_dir, settings.as_json(), resume)
        except BaseException:
            self._disconnect()
            raise
        self.candidates = self.store.candidates()

    @property
    def space(self):
        return search_context(self.settings)[1]

    def __enter__(self) -> "Search":
        return self

    def __exit__(self, *exc) -> None:
        self.store.close()
        self._disconnect()

    def _disconnect(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()

    def retrain(self, candidate: Candidate, epochs: int) -> Evaluation:
        """The candidate's spec trained anew for `epochs` (its seed the search's next after its rounds), then
        converted and measured as a candidate is: a search's few epochs per candidate rank architectures, a
        longer training of the chosen one gives the weights to deploy. Stored: asked again, it trains nothing."""
        if epochs < 1:
            raise HwbenchError(f"--final-epochs must be at least 1, got {epochs}")
        stored = self.store.retrained(candidate.round, epochs)
        if stored is not None:
            return stored
        seed = int(np.random.default_rng([self.settings.seed, self.settings.rounds]).integers(2**31))
        with self._workers(1) as (pool, context):
            evaluation = pool.submit(_evaluate, self.settings, candidate.spec, seed, context, epochs).result()
        self.store.add_retrained(candidate.round, epochs, evaluation)
        return evaluation

    def run(self, workers: int = 1, progress: Callable[[Candidate, dict[int, Candidate]], None] | None = None,
            seconds: float | None = None) -> None:
        """Evaluate the rounds not stored yet, `workers` at once (processes, or tasks on the cluster),
        storing each candidate as it finishes; `progress` is called after each one is stored. `seconds`: a
        wall-clock budget: once spent, no round is proposed, the ones training finish and are stored (the
        rounds stored are then always the first ones, as without a budget; a resumed search continues)."""
        if workers < 1:
            raise HwbenchError(f"--workers must be at least 1, got {workers}")
        deadline = None if seconds is None else time.monotonic() + seconds
        with self._workers(workers) as (pool, context):
            _loop(self.settings, self.store, self.candidates, pool, context, workers, progress, deadline)

    @contextmanager
    def _workers(self, count: int):
        """(executor, context) for `count` candidates at once: the cluster, with the search's data shared
        with it, or as many local processes, shut down after (cancelling what has not started)."""
        if self.cluster is not None:
            yield self.cluster, self.cluster.share(_evaluation_context(self.settings))
            return
        pool = local_executor(count)
        try:
            yield pool, None
        finally:
            pool.shutdown(cancel_futures=True)


def run_search(settings: SearchSettings, out_dir: str | Path, workers: int = 1, resume: bool = False,
               progress: Callable[[Candidate, dict[int, Candidate]], None] | None = None,
               ray_address: str | None = None) -> dict[int, Candidate]:
    """Run (or continue) a search to its budget; every candidate by round."""
    with Search(settings, out_dir, resume, ray_address) as search:
        search.run(workers, progress)
        return search.candidates


def _loop(settings, store, done, pool, context, workers, progress, deadline) -> None:
    pending: dict[Future, tuple[int, int | None, dict]] = {}
    next_round = 0
    while True:
        while next_round < settings.rounds and len(pending) < workers and (deadline is None
                                                                            or time.monotonic() < deadline):
            if next_round in done:
                next_round += 1
                continue
            if any(i not in done for i in range(next_round - settings.in_flight + 1)):
                break  # its parent's population is still training
            spec, parent, seed = propose_round(settings, next_round, done)
            pending[pool.submit(_evaluate, settings, spec, seed, context)] = (next_round, parent, spec)
            next_round += 1
        if not pending:
            return
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            r, parent, spec = pending.pop(future)
            candidate = Candidate(r, parent, spec, future.result())
            store.add(candidate)
            done[r] = candidate
            if progress:
                progress(candidate, done)
