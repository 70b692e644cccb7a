"""The `hwbench` command: parse, call the library, render. No logic of its own."""

from __future__ import annotations

import json
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from hwbench import __version__
from hwbench.errors import HwbenchError
from hwbench.kernel_paths import fast_paths_for

INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h): hwbench itself failed, not the user's input

app = typer.Typer(
    help="Benchmark int8 TinyML models on Cortex-M boards (real and emulated), learn their latency, "
         "and search for models that fit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Tables keep their full width when written to a file or a pipe (logs, CI) instead of 80 columns.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


@dataclass
class _Settings:
    verbose: bool = False


settings = _Settings()


def _version(value: bool) -> None:
    if value:
        out.print(f"hwbench {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details, and tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    settings.verbose = verbose


@app.command()
def boards(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table (fields in the README).")] = False,
) -> None:
    """List the bundled boards: core, clock, memory, emulated or real, counter unit, firmware family."""
    from hwbench.boards import board_summary, list_boards

    if as_json:
        print(json.dumps([board_summary(b) for b in list_boards()]))
        return
    table = Table("board", "kind", "core", "FPU", "clock", "flash", "SRAM", "counts", "firmware", "reached through")
    for b in list_boards():
        table.add_row(b.name, "emulated" if b.emulated else "real", b.core, b.fpu, f"{b.clock_hz / 1e6:g} MHz",
                      _kib(b.flash.size), _kib(b.sram.size), b.counter, b.firmware_family or "not yet",
                      f"qemu -M {b.qemu_machine}" if b.emulated else f"pyocd {b.pyocd_target}")
    out.print(table)


@app.command()
def analyze(
    model: Annotated[Path, typer.Argument(help="A .tflite model (int8, float or int16).")],
    board: Annotated[Optional[str], typer.Option(
        help="Also say whether it fits this board's SRAM and flash, and whether the hwbench runtime runs it "
             "there.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Draw the memory timeline to this PNG file.")] = None,
    alignment: Annotated[int, typer.Option(min=1, help="Arena buffer alignment in bytes.")] = 16,
) -> None:
    """Show a model's layers in the minimum-peak execution order: MACs, weight bytes and live
    activation bytes per step; the peaks (optimal, no in-place reuse, file order) and the arena,
    which also holds the kernels' scratch buffers."""
    from hwbench.analysis import analyze_graph, plot_memory_timeline
    from hwbench.tflite_reader import read_tflite

    target = _board(board) if board else None
    graph = read_tflite(model)
    result = analyze_graph(graph, str(model), alignment, target)
    if target is not None:
        result["board"].update(_runtime_fit(graph, target))
    if plot is not None:
        plot_memory_timeline(result, plot)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("step", "#", "op", "input", "output", "MACs", "weights B", "live B", title=str(model))
    for l in result["layers"]:
        table.add_row(str(l["step"]), str(l["index"]), l["op"], l["input_text"], l["output_text"], f"{l['macs']:,}",
                      f"{l['weights_bytes']:,}", f"{l['live_bytes']:,}")
    table.add_section()
    table.add_row("", "", "total", "", "", f"{result['macs']:,}", f"{result['weights_bytes']:,}",
                  f"{result['peak_bytes']:,}")
    out.print(table)
    proof = "optimal (proved)" if result["exact"] else "heuristic (search budget exceeded)"
    out.print(f"peak {result['peak_bytes']:,} B with this order, {proof}; without in-place reuse "
              f"{result['peak_bytes_no_inplace']:,} B; file order {result['peak_bytes_file_order']:,} B; "
              f"arena {result['arena_bytes']:,} B ({alignment}-byte aligned, kernel scratch up to "
              f"{result['scratch_bytes']:,} B included)")
    if target is not None:
        fit = result["board"]
        for what, region, used, verb in (("sram", "SRAM", "the arena", "fits"), ("flash", "flash", "the weights", "fit")):
            verdict = verb if fit[f"fits_{what}"] else "does NOT fit" if verb == "fits" else "do NOT fit"
            out.print(f"{target.name}: {used} {verdict} in {region} ({_kib(fit[f'{what}_bytes'])}), "
                      f"margin {fit[f'{what}_margin_bytes']:,} B")
        verdict = "runs it" if fit["runtime_runs"] else f"does NOT run it: {fit['runtime_problem']}" \
            if fit["runtime_runs"] is False else f"cannot tell: {fit['runtime_problem']}"
        out.print(f"{target.name}: the hwbench runtime {verdict}")


def _runtime_fit(graph, board) -> dict:
    """Whether the hwbench runtime runs `graph` on `board` beside its benchmark firmware (the model
    compiles, and its decoded op table and arena fit the SRAM the firmware leaves): `runtime_runs`
    (None when that cannot be told here: no toolchain to build the firmware) and why not."""
    try:
        problem = _runs_on(board)(graph)
    except HwbenchError as e:
        return {"runtime_runs": None, "runtime_problem": str(e)}
    return {"runtime_runs": problem is None, "runtime_problem": problem}


@app.command()
def generate(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many models.")],
    seed: Annotated[int, typer.Option(help="Population seed: the same seed gives the same files.")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the models and manifest.jsonl.")] = Path("models"),
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
    max_macs: Annotated[Optional[int], typer.Option(min=1, help="Upper bound on a model's MACs.")] = None,
    max_weight_bytes: Annotated[Optional[int], typer.Option(min=1, help="Upper bound on weight bytes.")] = None,
    max_peak_bytes: Annotated[Optional[int], typer.Option(min=1, help="Upper bound on live activation bytes.")] = None,
    board: Annotated[Optional[str], typer.Option(
        help="Keep models within this board's flash and SRAM: only models that run there.")] = None,
) -> None:
    """Generate random small full-int8 .tflite models and a manifest."""
    from hwbench.generate import bounds_for

    target = _board(board) if board else None
    bounds = bounds_for(max_macs=max_macs, max_weight_bytes=max_weight_bytes, max_peak_bytes=max_peak_bytes,
                        board=target)
    if settings.verbose:
        err.print(f"bounds: {bounds}")
    entries = _generate(count, seed, out_dir, jobs, bounds, _runs_on(target) if target else None)
    macs = [e["macs"] for e in entries]
    out.print(f"{len(entries)} models in {out_dir} (manifest {out_dir / 'manifest.jsonl'}); "
              f"MACs {min(macs):,} … {max(macs):,}")


@app.command()
def verify(
    model: Annotated[Path, typer.Argument(help="A full-int8 .tflite model.")],
    inputs: Annotated[int, typer.Option("--inputs", "-n", min=1, help="How many random inputs.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a model through the hwbench runtime (host build) and TFLite's reference kernels on random
    inputs and compare every layer's output byte for byte. Exit code 0 only when all match."""
    from firmware_runner.runtime.verify import verify_model

    result = verify_model(model, samples=inputs, seed=seed)
    if as_json:
        print(json.dumps(result.to_json()))
    elif result.matched:
        out.print(f"{model}: bit-exact with TFLite's reference kernels on {inputs} random input(s): "
                  f"{result.ops} ops, {result.output_bytes:,} output bytes each")
    else:
        d = result.difference
        out.print(f"{model}: DIFFERS from TFLite on input {d.sample}: step {d.step}, operator {d.op_index} "
                  f"({d.op_type}), tensor {d.tensor!r} at {list(d.index)}: expected {d.expected}, got {d.got} "
                  f"({d.count:,} elements differ)")
    if not result.matched:
        raise typer.Exit(1)


@app.command()
def collect(
    board: Annotated[str, typer.Option(help="The board to run on (a bundled name or a board file).")],
    models: Annotated[Optional[Path], typer.Option(help="A folder of .tflite models.")] = None,
    count: Annotated[Optional[int], typer.Option("--count", "-n", min=1, help="Generate this many models instead.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated models.")] = 0,
    repeats: Annotated[int, typer.Option(min=1, max=100, help="Measured inferences per model.")] = 3,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Boards (emulators) in parallel.")] = 1,
    db: Annotated[Path, typer.Option(help="The SQLite results database.")] = Path("results.db"),
    memory_of: Annotated[Optional[str], typer.Option(help="Hold the emulated board to this board's SRAM and flash.")] = None,
    timeout: Annotated[Optional[float], typer.Option(min=1, help="Seconds per model run (default: from its MACs).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table (fields in the README).")] = False,
    probe: Annotated[Optional[str], typer.Option(help="Real boards: the debug probe's unique ID (default: the only "
                                                 "one connected; `hwbench probes` lists them).")] = None,
    port: Annotated[Optional[str], typer.Option(help="Real boards: the board's serial port (default: the probe's "
                                                "own virtual COM port).")] = None,
    pack: Annotated[Optional[Path], typer.Option(help="Real boards: a CMSIS device pack file (.pack) for pyOCD.")] = None,
) -> None:
    """Run models on a board, record per-layer counts in the results DB, and check every output
    against TFLite's reference bit for bit. Reruns resume: models already measured are skipped."""
    from firmware_runner.collect import (check_board, collect as collect_models, measurement_summary, model_files,
                                         summary_rows)
    from hwbench.results import ResultsDB

    if (models is None) == (count is None):
        raise HwbenchError("give either --models DIR or --count N (with --seed S)")
    target, limits = _board(board), _board(memory_of) if memory_of else None
    backend = check_board(target, limits, probe=probe, port=port, pack=pack)  # before generating anything
    store = ResultsDB(db)
    if count is not None:  # the manifest's models only: not what an earlier, larger --count left in the folder
        from hwbench.generate import bounds_for

        models = db.parent / f"models-seed{seed}"
        entries = _generate(count, seed, models, jobs, bounds_for(board=limits or target), _runs_on(target, limits))
        files = [models / e["file"] for e in entries]
    else:
        files = model_files(models)
    failures = 0
    with _progress() as progress:
        task = progress.add_task(f"collecting on {target.name}", total=len(files))

        def advance(m) -> None:
            nonlocal failures
            failures += m is not None and m.status == "failed"
            progress.update(task, advance=1, failed=failures)

        try:
            recorded = collect_models(target, files, store, repeats=repeats, jobs=jobs, limits=limits,
                                      timeout=timeout, progress=advance, backend=backend)
        finally:
            backend.close()
    if as_json:
        print(json.dumps({"board": target.name, "db": str(db), "models": len(files), "run_now": len(recorded),
                          "already_in": len(files) - len(recorded), "summary": summary_rows(recorded),
                          "measurements": [measurement_summary(m) for m in recorded]}))
        return
    out.print(f"{target.name}: {len(recorded)} model(s) run now, {len(files) - len(recorded)} already in {db}")
    if recorded:
        table = Table("status", "why", "models")
        for row in summary_rows(recorded):
            table.add_row(row["status"], row["reason"], str(row["models"]))
        out.print(table)


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="A full-int8 .tflite model.")],
    board: Annotated[str, typer.Option(help="The board the firmware is for (a bundled name or a board file).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="A new or empty folder for the sources.")],
    name: Annotated[str, typer.Option(help="The C name of the model: NAME.h, NAME_init, NAME_ARENA_SIZE, ...")]
    = "model",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a line.")] = False,
) -> None:
    """Write what an application's own firmware needs to run the model: the runtime sources (only the
    kernels it uses, with the runtime hash), the plan as a const C array, a header with the API, a README."""
    from firmware_runner.firmware.build import COMMON_FLAGS, board_flags
    from firmware_runner.runtime.export import export_model

    target = _board(board)
    result = export_model(model, target, out_dir, (*COMMON_FLAGS, *board_flags(target)), name)
    if as_json:
        print(json.dumps(result))
        return
    out.print(f"{out_dir}: {len(result['files'])} files for {target.name} (runtime {result['runtime_hash']}): plan "
              f"{result['plan_bytes']:,} B, arena {result['arena_bytes']:,} B, kernels {', '.join(result['kernels'])}",
              soft_wrap=True, highlight=False)


@app.command()
def probes(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the connected debug probes: unique ID, vendor, product, the board it looks like, its
    serial port."""
    from firmware_runner.backends.real import probe_table

    rows = probe_table()
    if as_json:
        print(json.dumps(rows))
    elif not rows:
        out.print("no debug probe found: connect a board by the USB connector of its on-board debug probe (the "
                  "ST-LINK of an ST Nucleo or Discovery board, the interface MCU of a Nordic DK); "
                  "`hwbench doctor` checks USB permissions")
    else:
        table = Table("unique ID", "vendor", "product", "looks like", "serial port")
        for row in rows:
            table.add_row(row["unique_id"], row["vendor"], row["product"], row["board"] or "unknown",
                          row["port"] or "none found")
        out.print(table)


@app.command()
def doctor(
    board: Annotated[Optional[str], typer.Option(help="Check what this board needs (exit code 1 when it cannot be "
                                                 "used).")] = None,
    pack: Annotated[Optional[Path], typer.Option(help="A CMSIS device pack file (.pack) to check too.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """Check the Arm toolchain, QEMU, pyOCD and the device packs of the bundled real boards, USB and
    serial permissions, and say what to do about each missing piece."""
    from firmware_runner.doctor import check_summary, run_checks

    target = _board(board) if board else None
    checks = run_checks(target, pack)
    if as_json:
        print(json.dumps([check_summary(c) for c in checks]))
    else:
        table = Table("check", "status", "found", "what to do")
        for c in checks:
            status = "ok" if c.ok else "MISSING" if c.needed else "missing"
            table.add_row(c.name, status, c.found, c.fix or "")
        out.print(table)
    blocking = [c.name for c in checks if c.needed and not c.ok]
    if blocking:
        err.print(f"{target.name if target else 'hwbench'} cannot be used yet: {'; '.join(blocking)}")
        raise typer.Exit(1)


@app.command()
def results(
    db: Annotated[Path, typer.Option(help="The SQLite results database.")] = Path("results.db"),
    board: Annotated[Optional[str], typer.Option(help="Only this board.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or parquet.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    layers: Annotated[bool, typer.Option("--layers", help="One row per layer instead of per model.")] = False,
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write to this file (parquet needs one).")] = None,
    compare: Annotated[Optional[tuple[str, str]], typer.Option(
        "--compare", metavar="A B", help="Compare two boards on the models verified on both: A's counts over B's, per "
                                         "model and per operator type (a table, or --json).")] = None,
) -> None:
    """Show or export what was collected, or compare two boards."""
    from hwbench.results import ResultsDB

    fmt = "json" if as_json else fmt
    if compare is not None:
        if board or layers or fmt not in ("table", "json"):
            raise HwbenchError("--compare shows a table or JSON of its own: it takes no --board, --layers or --format "
                               "csv/parquet")
        _show_comparison(db, *compare, fmt == "json", output)
        return
    if fmt not in ("table", "csv", "json", "parquet"):
        raise HwbenchError(f"--format must be table, csv, json or parquet, not {fmt!r}")
    if not db.exists():
        raise HwbenchError(f"{db}: no such results database (hwbench collect writes it)")
    store = ResultsDB(db)
    frame = store.layers(board) if layers else store.measurements(board).drop(columns=["id"])
    if fmt == "parquet":
        if output is None:
            raise HwbenchError("--format parquet needs --out FILE")
        frame.to_parquet(output, index=False)
    elif fmt in ("csv", "json"):
        text = frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=1)
        output.write_text(text) if output else print(text)
    else:
        if not layers:
            frame = frame[["model", "board", "count", "unit", "macs", "arena_bytes", "stack_bytes", "status", "verified",
                           "reason"]]
        table = Table(*frame.columns)
        for row in frame.itertuples(index=False):
            table.add_row(*("" if v is None or v != v else f"{v:,.0f}" if isinstance(v, float) else str(v) for v in row))
        out.print(table)


def _show_comparison(db: Path, a: str, b: str, as_json: bool, output: Optional[Path]) -> None:
    from hwbench.comparison import compare_boards

    result = compare_boards(db, a, b)
    if as_json:
        text = json.dumps(result, indent=1)
        output.write_text(text) if output else print(text)
        return
    unit, summary = result["unit"], result["summary"]
    table = Table("model", "MACs", f"{a} {unit}", f"{b} {unit}", f"{a} / {b}",
                  title=f"{result['models']} models verified on both boards")
    for m in result["per_model"]:
        table.add_row(m["model"], f"{m['macs']:,}", f"{m['count_a']:,.0f}", f"{m['count_b']:,.0f}", f"{m['ratio']:.3f}")
    out.print(table)
    table = Table("operator", "layers", f"{a} {unit}", f"{b} {unit}", f"{a} / {b}", "per layer: min", "median", "max",
                  title="per operator type (summed over the layers of those models)")
    for r in result["per_operator"]:
        table.add_row(r["op"], str(r["layers"]), f"{r['count_a']:,.0f}", f"{r['count_b']:,.0f}", f"{r['ratio']:.3f}",
                      f"{r['min_layer_ratio']:.3f}", f"{r['median_layer_ratio']:.3f}", f"{r['max_layer_ratio']:.3f}")
    out.print(table)
    out.print(f"{a} counts {summary['ratio']:.3f}× the {unit} of {b} over all {result['models']} models (geometric "
              f"mean per model {summary['geometric_mean_ratio']:.3f}×, from {summary['min_ratio']:.3f}× to "
              f"{summary['max_ratio']:.3f}×); runtimes {result['runtime_hash'][a]} and {result['runtime_hash'][b]}")


@app.command()
def fit(
    db: Annotated[Path, typer.Option(help="The SQLite results database to learn from.")],
    board: Annotated[str, typer.Option(help="The board whose verified measurements to learn (a name or a board file).")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Write the latency-model file here.")],
    test_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of the models held out (split by "
                                                 "model) to measure accuracy on.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and the regressors.")] = 0,
    plot: Annotated[Optional[Path], typer.Option(help="Draw predicted vs measured for the held-out models to this "
                                                 "PNG file (log-log, ±10% band, MACs baseline beside).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table (fields in the README).")] = False,
    prior: Annotated[Optional[Path], typer.Option(help="Start from this latency-model file of another board and fit "
                                                  "only what the new board's few models support: a factor per "
                                                  "operator kind, the overhead, and kinds with enough new layers.")]
    = None,
) -> None:
    """Learn a board's latency model from collected per-layer counts: one regressor per operator kind,
    chosen by cross-validation grouped by model, plus the per-inference overhead. Reports held-out
    accuracy beside the MACs baseline and writes the model file `hwbench predict` uses. With --prior,
    transfer another board's model with a few measurements of this one."""
    from latency_models.artifact import load_artifact
    from latency_models.plot import plot_predictions
    from latency_models.training import fit_from_db

    target = _board(board)
    if plot is not None and test_fraction == 0:
        raise HwbenchError("--plot draws the held-out models: give --test-fraction above 0")
    start = load_artifact(prior) if prior is not None else None
    with err.status(f"fitting the latency model of {target.name} from {db} …"):
        result = fit_from_db(db, target.name, test_fraction=test_fraction, seed=seed, clock_hz=target.clock_hz,
                             prior=start, fast_paths=fast_paths_for(target))
    result.save(out_file)
    if plot is not None:
        plot_predictions(result.test.totals, result.test_predicted, result.test_baseline, plot,
                         title=f"{target.name}: {len(result.test)} held-out models", unit=result.train.unit)
    if as_json:
        print(json.dumps({**result.metadata(), "left_out": result.train.ignored, "out": str(out_file),
                          "plot": str(plot) if plot else None}))
        return
    train, test, model = result.train, result.test, result.model
    ignored = "; ".join(f"{n} left out: {why}" for why, n in train.ignored.items())
    out.print(f"{target.name}: trained on {len(train)} models ({model.n_layers_:,} layers), {len(test)} held out "
              f"(seed {seed}); counts in {train.unit}, runtime {train.runtime_hash}" + (f" ({ignored})" if ignored else ""))
    if result.metrics:
        table = Table("predictor", "MAPE", "RMSPE", "R²", "within ±5%", "within ±10%", "worst",
                      title=f"held-out models ({len(test)})")
        for name, label in (("learned", "learned (per layer)"), ("baseline", "MACs baseline")):
            m = result.metrics[name]
            table.add_row(label, f"{m['mape']:.2f}%", f"{m['rmspe']:.2f}%", f"{m['r2']:.6f}", f"{m['within_5']:.1%}",
                          f"{m['within_10']:.1%}", f"{m['max_error']:.2f}%")
        out.print(table)
        table = Table("operator", "regressor", "CV error", "layers", "share of count", "layer MAPE", "bias",
                      "model error", title="per operator, held-out layers (errors as % of the layer; model error: "
                                           "mean share of a model's count mispredicted)")
        for row in result.per_operator:
            report = model.kind_reports_.get(row["kind"])
            cv = f"{report.cv_error[report.chosen] * 100:.3f}%" if report and report.cv_error else ""
            table.add_row(row["kind"], row["regressor"], cv, str(row["layers"]), f"{row['count_share']:.2f}%",
                          f"{row['layer_mape']:.2f}%", f"{row['bias']:+.2f}%", f"{row['model_error_share']:.3f}%")
        out.print(table)
    else:
        out.print("no models held out (--test-fraction 0): no accuracy to report")
    if start is not None:
        transfer = result.metadata()["transfer"]
        factors = ", ".join(f"{kind} ×{f[0]:.3f}" if len(f) == 1 else f"{kind} ×{min(f):.2f}…{max(f):.2f} per loop"
                            for kind, f in transfer["factors"].items())
        out.print(f"transferred from {prior} ({start.board}, {start.metadata['n_models']} models): {factors} "
                  f"(×{transfer['global_scale']:.3f} for loops without new layers, "
                  f"×{transfer['float_scale']:.3f} for float loops)"
                  + (f"; refitted from scratch: {', '.join(transfer['refitted'])}" if transfer["refitted"] else "")
                  + ("" if transfer["overhead_refitted"] else "; overhead: the prior's, scaled"), soft_wrap=True)
    a, b = model.overhead_
    out.print(f"per-inference overhead: {a:,.0f} + {b:,.1f} × ops {train.unit}; wrote {out_file}"
              + (f"; plot: {plot}" if plot else ""))


@app.command()
def predict(
    models: Annotated[list[Path], typer.Argument(help=".tflite models (int8, float or int16; priced as int8).")],
    latency_model: Annotated[Path, typer.Option("--latency-model", "-m", help="A latency-model file (hwbench fit "
                                                "--out writes one).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per model (a list for several).")] = False,
) -> None:
    """Predict a model's latency on the latency model's board without running it: per layer and in
    total, in counts and milliseconds, with the MACs baseline and the peak memory beside it."""
    import warnings

    from latency_models.artifact import load_artifact
    from latency_models.prediction import current_runtime_hash, predict_files

    artifact = load_artifact(latency_model)
    notice = artifact.runtime_warning(current_runtime_hash(artifact.board))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reports = predict_files(artifact, models)
    for message in [notice] + [str(w.message) for w in caught]:
        if message:
            err.print(Text.assemble(("warning: ", "bold yellow"), message), highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports))
        return
    unit, clock = artifact.unit, artifact.metadata.get("clock_hz")
    for r in reports:
        table = Table("step", "#", "op", "shapes", "MACs", f"predicted {unit}", "ms", title=r["model"])
        for l in r["layers"]:
            table.add_row(str(l["step"]), str(l["index"]), l["op"] + (" *" if l["fallback"] else ""), l["shapes_text"],
                          f"{l['macs']:,}", f"{l['count']:,.0f}", "" if l["ms"] is None else f"{l['ms']:,.3f}")
        table.add_section()
        table.add_row("", "", "overhead", "", "", f"{r['overhead_count']:,.0f}", "")
        table.add_row("", "", "total", "", f"{r['macs']:,}", f"{r['count']:,.0f}",
                      "" if r["ms"] is None else f"{r['ms']:,.3f}")
        out.print(table)
        at = f" at {clock / 1e6:g} MHz" if clock else ""
        ms = lambda v: "" if v is None else f" = {v:,.3f} ms{at}"  # noqa: E731
        out.print(f"{artifact.board}: predicted {r['count']:,.0f} {unit}{ms(r['ms'])}; MACs baseline "
                  f"{r['baseline_count']:,.0f}{ms(r['baseline_ms'])}; peak memory {r['peak_bytes']:,} B "
                  f"(arena {r['arena_bytes']:,} B)" + (" — * generic fallback" if r["fallback_ops"] else ""))


def _generate(count: int, seed: int, out_dir: Path, jobs: int, bounds, check=None) -> list[dict]:
    from hwbench.generate import generate_models

    with _progress() as progress:
        task = progress.add_task("generating", total=count)
        return generate_models(count, seed, out_dir, jobs=jobs, bounds=bounds, check=check,
                               progress=lambda e: progress.advance(task))


def _runs_on(board, limits=None):
    """The check of models generated for `board`: that they run there, as collect would run them."""
    from firmware_runner.collect import RunsOn

    return RunsOn(board, limits)


@app.command()
def search(
    board: Annotated[str, typer.Option(help="The target board: its SRAM and flash bound the models (a name or a "
                                       "board file).")],
    dataset: Annotated[str, typer.Option(help="digits, mnist5k, or a .npz with x_train, y_train, x_test, y_test.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the search store and its results.")],
    latency_model: Annotated[Optional[Path], typer.Option("--latency-model", "-m", help="The board's latency-model "
                                                          "file (hwbench fit); needed for --max-latency-ms.")] = None,
    max_peak: Annotated[Optional[int], typer.Option("--max-peak", min=1, help="Peak activation bytes.")] = None,
    max_flash: Annotated[Optional[int], typer.Option("--max-flash", min=1, help="Flash bytes: the plan (weights "
                                                     "and op records) and the runtime's code.")] = None,
    max_weights: Annotated[Optional[int], typer.Option("--max-weights", min=1, help="Weight bytes (μNAS's model "
                                                       "size: the weights alone, without the runtime).")] = None,
    max_macs: Annotated[Optional[int], typer.Option("--max-macs", min=1, help="MACs per inference.")] = None,
    max_latency_ms: Annotated[Optional[float], typer.Option("--max-latency-ms", min=0.0, help="Predicted "
                                                            "milliseconds per inference.")] = None,
    max_error: Annotated[float, typer.Option(min=0.0, max=1.0, help="The validation error the selection aims at "
                                             "(μNAS's MNIST bound by default).")] = 0.035,
    algorithm: Annotated[str, typer.Option(help="aging (aging evolution) or random.")] = "aging",
    space: Annotated[str, typer.Option(help="unas (μNAS's CNN space), mbconv (MCUNet's MBConv space, its width "
                                       "and resolution chosen first as TinyNAS does) or dscnn (DS-CNN).")] = "unas",
    space_samples: Annotated[int, typer.Option(min=1, help="mbconv: architectures sampled per width and "
                                               "resolution to choose them.")] = 100,
    rounds: Annotated[int, typer.Option(min=1, help="Candidates to evaluate (the budget).")] = 2000,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs per candidate.")] = 10,
    final_epochs: Annotated[int, typer.Option(min=0, help="Then train the best architecture anew for this many "
                                              "epochs, and write its weights to best.tflite when they are as "
                                              "accurate on validation (0: no retraining).")] = 0,
    population: Annotated[int, typer.Option(min=1, help="Aging evolution's population.")] = 100,
    sample: Annotated[int, typer.Option(min=1, help="Candidates drawn per parent selection.")] = 25,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", min=1, help="Candidates trained at once "
                                                   "(processes, or Ray tasks with --ray; 1 by default, 4 with "
                                                   "--ray; up to 4 keep the results of one worker).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help="Train the candidates on "
                                                       "the Ray cluster at ADDRESS (host:port, ray://host:port, or "
                                                       "auto: the one running on this machine).")] = None,
    seed: Annotated[int, typer.Option(help="The search's seed: the same seed gives the same candidates.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the search stored in --out (a finished one "
                                         "only writes its outputs again, and verifies with --verify-board).")] = False,
    verify_board: Annotated[Optional[str], typer.Option(help="Then run the Pareto models on this board (emulated "
                                                        "or real) as collect does, and compare predicted with "
                                                        "measured latency and planned with reported arena.")] = None,
    db: Annotated[Optional[Path], typer.Option(help="With --verify-board: the results DB the measurements go to "
                                               "(default: results.db in --out); give the one the latency model "
                                               "was fitted from, and hwbench fit refits with them.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary instead of a table.")] = False,
) -> None:
    """Search for the most accurate int8 model that fits the board: candidates are bounded before training
    (exact peak memory, weights, flash, MACs, predicted latency), trained, converted to int8 and scored on the
    hwbench runtime, feasible when the runtime's decoded op table and arena fit the board's SRAM too. Writes
    pareto.csv, pareto.json and best.tflite to --out; with --verify-board, measures the Pareto models on a
    board."""
    from nas.objectives import LatencyEstimator, board_bounds, runtime_code_bytes
    from nas.report import best, write_outputs
    from nas.search import Search, SearchSettings

    target = _board(board)
    bounds = board_bounds(target, max_peak, max_flash, max_macs, max_latency_ms, max_weights)
    if workers is None:
        workers = 4 if ray_address else 1  # a cluster trains as many at once as keep one worker's results
    latency = LatencyEstimator(latency_model, target) if latency_model is not None else None  # refuses another
    if latency is not None and latency.runtime_warning():                                     # board's model
        _warn(latency.runtime_warning())
    if db is not None and verify_board is None:
        raise HwbenchError("--db is where --verify-board records its measurements: give --verify-board too")
    checked = _checked_board(verify_board) if verify_board else None  # fails now, not after hours of search
    settings = SearchSettings(target.name, dataset, bounds, str(latency_model) if latency_model else None, algorithm,
                              rounds, epochs, seed, population, sample, max_error, in_flight=max(4, workers),
                              runtime_code_bytes=runtime_code_bytes(target), space=space, space_samples=space_samples)
    if space == "mbconv":
        err.print(f"choosing the MBConv space's width and resolution ({space_samples} samples a pair)...")
    with Search(settings, out_dir, resume, ray_address) as opened, _progress() as progress:
        space_summary = opened.space.summary()
        task = progress.add_task(f"{algorithm} search on {target.name}", total=rounds,
                                 completed=len(opened.candidates))

        def advance(candidate, done) -> None:
            leader = best(done, bounds)
            lead = "" if leader is None else (
                f" best {leader.evaluation.val_accuracy:.1%} val, {leader.evaluation.peak_bytes:,} B peak"
                + (f", {leader.evaluation.latency_ms:.2f} ms" if leader.evaluation.latency_ms is not None else ""))
            progress.update(task, completed=len(done), description=f"{algorithm} search on {target.name}{lead}",
                            failed=sum(c.evaluation.status != "ok" for c in done.values()))

        opened.run(workers, progress=advance)
        done = opened.candidates
        winner = best(done, bounds)
        retrained = None
        if final_epochs and winner is not None:
            progress.add_task(f"training round {winner.round}'s architecture for {final_epochs} epochs", total=None)
            retrained = opened.retrain(winner, final_epochs)
    summary = write_outputs(out_dir, done, bounds, retrained)
    if retrained is not None:
        summary["retrained"]["epochs"] = final_epochs
    if checked is not None:
        summary["verification"] = _verify_front(out_dir, done, bounds, checked, db or out_dir / "results.db", latency,
                                                workers)
    if as_json:
        print(json.dumps({"out": str(out_dir), "settings": settings.as_json(), "space": space_summary, **summary}))
        return
    if "pairs" in space_summary:
        out.print(_pairs_table(space_summary))
    out.print(f"{summary['candidates']} candidates, {summary['feasible']} feasible, {summary['failed']} failed to "
              f"train; Pareto front of {summary['pareto_size']} in {out_dir / 'pareto.csv'}")
    top = summary["best"]
    if top is None:
        out.print("no feasible candidate: widen the bounds or search longer")
        return
    predicted = f", {top['latency_ms']:.3f} ms predicted" if top["latency_ms"] is not None else ""
    out.print(f"best: round {top['round']}, int8 accuracy {top['val_accuracy']:.2%} validation, "
              f"{top['test_accuracy']:.2%} test; peak {top['peak_bytes']:,} B (arena {top['arena_bytes']:,} B), "
              f"flash {top['flash_bytes']:,} B with the runtime, {top['macs']:,} MACs{predicted}; "
              f"wrote {out_dir / 'best.tflite'}")
    if "retrained" in summary:
        again = summary["retrained"]
        accuracy = (f"int8 accuracy {again['val_accuracy']:.2%} validation, {again['test_accuracy']:.2%} test"
                    if again["status"] == "ok" else f"{again['status']}: {again['reason']}")
        out.print(f"retrained for {again['epochs']} epochs: {accuracy}; "
                  + ("its weights are in best.tflite" if again["used"] else "best.tflite keeps the search's weights"))
    if "verification" in summary:
        _show_verification(summary["verification"])


def _checked_board(name: str):
    """The board, once it is known that it can be run (a way to reach it, its firmware, the toolchain)."""
    from firmware_runner.collect import check_board

    board = _board(name)
    check_board(board).close()
    return board


def _verify_front(out_dir: Path, done, bounds, board, db: Path, latency, jobs: int) -> dict:
    """The Pareto models run on the board (as `collect` runs them) against the search's predictions;
    every problem is a warning on stderr."""
    from firmware_runner.collect import check_board
    from nas.closed_loop import check_front, summary

    backend = check_board(board)
    try:
        with _progress() as progress:
            task = progress.add_task(f"verifying the Pareto models on {board.name}", total=None)
            checks = check_front(out_dir, done, bounds, board, db, latency, jobs=jobs, backend=backend,
                                 progress=lambda m: progress.advance(task))
    finally:
        backend.close()
    report = {"board": board.name, "db": str(db), **summary(checks), "checks": [c.as_json() for c in checks]}
    for problem in report["problems"]:
        _warn(problem)
    return report


def _show_verification(report: dict) -> None:
    unit = next((c["unit"] for c in report["checks"] if c["unit"]), "")
    table = Table("round", "status", f"predicted {unit}", f"measured {unit}", "error", "arena planned",
                  "arena reported", title=f"the Pareto models on {report['board']} (results in {report['db']})")
    number = lambda v, f="{:,.0f}": "" if v is None else f.format(v)  # noqa: E731
    for c in report["checks"]:
        status = "verified bit-exact" if c["status"] == "measured" and c["verified"] else c["status"]
        table.add_row(str(c["round"]), status, number(c["predicted_count"]), number(c["measured_count"]),
                      number(c["latency_error_pct"], "{:+.2f}%"), f"{c['planned_arena_bytes']:,} B",
                      number(c["board_arena_bytes"], "{:,} B"), style=None if not c["problems"] else "bold yellow")
    out.print(table)
    within = (f"{report['within_tolerance']} of {report['predicted']} predictions within "
              f"±{report['tolerance_pct']:g}%, " if report["predicted"] else "no latency model of this board, ")
    out.print(f"{report['verified']} of {report['models']} Pareto models verified on {report['board']}; {within}"
              f"{report['arena_as_planned']} arenas as planned" + ("" if report["problems"] else "; no problems"))


def _warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "bold yellow"), message), highlight=False, soft_wrap=True)


def _pairs_table(space: dict) -> Table:
    """TinyNAS's choice: each (width, resolution) pair's feasible samples and their MACs, the chosen one marked."""
    table = Table("width", "resolution", "feasible", "MACs min", "median", "mean", "max", "",
                  title="MBConv space: MACs of the samples within the bounds")
    for pair in space["pairs"]:
        macs = [f"{pair[k]:,.0f}" if pair[k] is not None else "-"
                for k in ("macs_min", "macs_median", "macs_mean", "macs_max")]
        chosen = (pair["width"], pair["resolution"]) == (space["width"], space["resolution"])
        table.add_row(f"{pair['width']:g}", "×".join(map(str, pair["resolution"])),
                      f"{pair['feasible']}/{pair['samples']}", *macs, "chosen" if chosen else "")
    return table


def _board(name_or_path: str):
    from hwbench.boards import get_board

    return get_board(name_or_path)


def _kib(size: int) -> str:
    return f"{size // 1024:,} KiB" if size % 1024 == 0 else f"{size:,} B"


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "")


class _FailedColumn(ProgressColumn):
    def render(self, task) -> Text:
        failed = task.fields.get("failed", 0)
        return Text(f"{failed} failed", style="red") if failed else Text("")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _FailedColumn(), _RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err)


class _Signalled(BaseException):
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed), raised in the main thread so that
    everything unwinds alike (a collection stops its emulators and records the models finished by
    then). Not KeyboardInterrupt, which typer turns into a silent exit; a BaseException, so that no
    `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum, frame) -> None:
    raise _Signalled(signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one line on stderr and exit 1, never a traceback; a bug in
    hwbench is one line too, with its own exit code (70) and the traceback under -v; Ctrl-C, SIGTERM
    and SIGHUP stop cleanly, with 128 + the signal's number (130, 143, 129)."""
    command = typer.main.get_command(app)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:  # a signal ignored by whoever started hwbench stays ignored
            signal.signal(s, _raise_signalled)
    try:
        code = command.main(args=argv, prog_name="hwbench", standalone_mode=False)
    except HwbenchError as e:
        _fail(str(e), 1)
    except typer.TyperException as e:  # usage mistakes: a bad option value, a missing argument
        _fail(e.format_message(), e.exit_code)  # (empty after no_args_is_help printed the help)
    except typer.Abort:
        _fail("interrupted", 130)
    except _Signalled as e:
        _fail("interrupted" if e.signum == signal.SIGINT else f"terminated ({signal.Signals(e.signum).name})",
              128 + e.signum)
    except Exception as e:  # noqa: BLE001 (anything else is a bug: say so in one line, not a traceback)
        first_line = next(iter(str(e).splitlines()), "")
        _fail(f"internal error (a bug in hwbench): {type(e).__name__}: {first_line} — run with -v for the "
              f"traceback", INTERNAL_ERROR)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    if settings.verbose:
        traceback.print_exc()
    if message:
        err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
