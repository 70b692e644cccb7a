"""The latency-model artifact: one file per board and runtime, the fitted model plus its metadata,
stored as plain data so that reading a file cannot run code from it.

Layout (container version 2): a zip archive holding

    header.json        {"format": "hwbench-latency-model", "version": 2,
                        "metadata": {...}, "model": {...}}
    <name>.npy         one numpy array per name (.npy format, float64 or int64, never object arrays)

`metadata` is what the model is about: board, unit, runtime hash, feature-schema version, hwbench
version, training models and layers, held-out metrics, the regressor chosen per kind, the MACs
baseline (`{"intercept", "slope"}`), ...; a model transferred from another board's (transfer.py)
also has `transfer`: the prior's identity (`prior`: board, unit, runtime hash, training models,
creation time, the file's sha256) and the factors applied to it. `model` is the fitted
`LatencyModel`'s params (`LatencyModel.to_state`): hyperparameters, training counts, the
cross-validation report per kind, and per operator kind its regressor: `{"regressor": "loop-linear"
| "loop-linear+boost" | "log-forest" | "scaled-prior", "hyperparameters": {...}, "n_features_in": n,
...}` with, for the tree ensembles, `depth`, `base`, `scale` and `n_features` of their trees, and
for a scaled prior its `scale` and the prior board's regressor (`prior`, one of these). The arrays
are

    overhead                              [per inference, per op]
    regressors/<KIND>/coef, .../scale     loop-linear: cost per loop trip, column scales
    regressors/<KIND>/linear/...          loop-linear+boost: its loop-linear part,
    regressors/<KIND>/correction/...      and its gradient-boosted trees
    regressors/<KIND>/forest/...          log-forest: its trees
    regressors/<KIND>/prior/...           scaled-prior: the prior board's regressor's arrays

where trees are `feature`, `threshold`, `child`, `value`, `roots` (regressors.CompiledTrees says
what each holds). Any zip tool lists the file; `numpy.load(path)` (pickles disallowed, its
default) reads the arrays.

Loading reads only JSON and `.npy` data (`allow_pickle=False`) and checks, before anything is
used: the file kind, the container version (an old pickled artifact is refused with a request to
refit), the feature schema, the board, every member's CRC-32 (damage, truncation), and that the
arrays are exactly what the model needs (names, dtypes, shapes, tree indices in range).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwbench import __version__
from hwbench.errors import HwbenchError
from latency_models.baseline import MacsBaseline
from latency_models.features import SCHEMA_VERSION

FORMAT = "hwbench-latency-model"
CONTAINER_VERSION = 2
HEADER = "header.json"
REQUIRED = ("board", "unit", "runtime_hash", "feature_schema", "hwbench_version", "n_models", "n_layers", "baseline")
_OLD_MAGIC = b"HWBENCH-LATENCY-MODEL "  # container version 1: a magic line, a JSON line, a pickle
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError)  # what damaged zip data raises


class ArtifactError(HwbenchError):
    """A latency-model file that cannot be used: not one, damaged, or for another board or schema."""


@dataclass
class Artifact:
    model: "LatencyModel"  # noqa: F821 (latency_models.model, imported lazily)
    metadata: dict
    baseline: MacsBaseline
    sha256: str | None = None  # of the file it was read from

    @property
    def board(self) -> str:
        return self.metadata["board"]

    @property
    def unit(self) -> str:
        return self.metadata["unit"]

    @property
    def runtime_hash(self) -> str:
        return self.metadata["runtime_hash"]

    def runtime_warning(self, runtime_hash: str | None) -> str | None:
        """A warning when counts would now be measured by another firmware/runtime build."""
        if runtime_hash is None or runtime_hash == self.runtime_hash:
            return None
        return (f"the latency model was fitted on counts from runtime {self.runtime_hash}, but {self.board} now "
                f"runs runtime {runtime_hash}: predictions may be off; collect again and refit")


def save_artifact(model, metadata: dict, path: str | Path) -> None:
    """Write `model` with `metadata` (which must name board, unit, runtime_hash and the baseline)."""
    metadata = {"feature_schema": SCHEMA_VERSION, "hwbench_version": __version__,
                "n_models": getattr(model, "n_models_", None), "n_layers": getattr(model, "n_layers_", None),
                **metadata}
    missing = [k for k in REQUIRED if metadata.get(k) is None]
    if missing:
        raise ValueError(f"artifact metadata lacks {', '.join(missing)}")
    params, arrays = model.to_state()
    header = {"format": FORMAT, "version": CONTAINER_VERSION, "metadata": metadata, "model": params}
    text = json.dumps(header, separators=(",", ":"), default=_jsonable)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(HEADER, text)
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    partial.replace(path)  # a reader never sees half a file


def load_artifact(path: str | Path, board: str | None = None) -> Artifact:
    """Read and check an artifact. With `board`, refuse one fitted for another board."""
    from latency_models.model import LatencyModel

    data = _read(path)
    with _open(path, data) as archive:
        header = _header(path, archive)
        metadata = header["metadata"]
        if metadata["feature_schema"] != SCHEMA_VERSION:
            raise ArtifactError(f"{path}: fitted with latency feature schema {metadata['feature_schema']}, but this "
                                f"hwbench ({__version__}) uses schema {SCHEMA_VERSION}; refit it with hwbench fit")
        if board is not None and metadata["board"] != board:
            raise ArtifactError(f"{path}: a latency model of board {metadata['board']}, not {board}; fit one for "
                                f"{board} with hwbench fit --board {board}")
        arrays = _arrays(path, archive)
    try:
        model = LatencyModel.from_state(header["model"], arrays)
    except (LookupError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise ArtifactError(f"{path}: damaged latency-model file (unusable model: {_reason(e)})") from None
    try:
        baseline = MacsBaseline()
        baseline.intercept_ = float(metadata["baseline"]["intercept"])
        baseline.slope_ = float(metadata["baseline"]["slope"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{path}: damaged latency-model file (bad baseline in the header)") from None
    model.metadata_ = metadata
    return Artifact(model, metadata, baseline, hashlib.sha256(data).hexdigest())


def _read(path: str | Path) -> bytes:
    """The file's bytes, after telling apart a missing file, an old pickled artifact and another
    kind of file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such latency-model file (hwbench fit --out writes one)") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path}: is a folder, not a latency-model file") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e.strerror}") from None
    # hwbench's old container starts with a magic line; a bare pickle with PROTO (0x80) and a protocol 2-5.
    if data.startswith(_OLD_MAGIC) or (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise ArtifactError(f"{path}: an old-format latency model (a pickle, which this hwbench no longer loads "
                            f"because unpickling can run code); re-run hwbench fit to write a format-"
                            f"{CONTAINER_VERSION} file")
    if not data.startswith(_ZIP_MAGIC):
        raise ArtifactError(f"{path}: not a hwbench latency model (hwbench fit --out writes one)")
    return data


def _open(path: str | Path, data: bytes) -> zipfile.ZipFile:
    """The file's bytes as a zip archive, or ArtifactError for a damaged (e.g. truncated) one."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as e:
        raise ArtifactError(f"{path}: damaged latency-model file (truncated or not a whole zip: "
                            f"{_reason(e)})") from None


def _header(path, archive: zipfile.ZipFile) -> dict:
    """header.json, checked to be of this kind and version and to hold the metadata."""
    if HEADER not in archive.namelist():
        raise ArtifactError(f"{path}: not a hwbench latency model (a zip without {HEADER}; hwbench fit --out "
                            f"writes one)")
    try:
        header = json.loads(archive.read(HEADER))
        kind, version, metadata = header["format"], header["version"], header["metadata"]
    except _ZIP_ERRORS + (KeyError, TypeError, RecursionError) as e:  # json's errors are ValueErrors
        raise ArtifactError(f"{path}: damaged latency-model file (unreadable header: {_reason(e)})") from None
    if kind != FORMAT:
        raise ArtifactError(f"{path}: not a hwbench latency model ({HEADER} describes {kind!r})")
    if version != CONTAINER_VERSION:
        raise ArtifactError(f"{path}: latency-model file format {version}, this hwbench reads format "
                            f"{CONTAINER_VERSION}; re-run hwbench fit")
    if not isinstance(metadata, dict) or any(k not in metadata for k in REQUIRED):
        raise ArtifactError(f"{path}: damaged latency-model file (header lacks metadata)")
    return header


def _arrays(path, archive: zipfile.ZipFile) -> dict[str, np.ndarray]:
    """Every `.npy` member by name (no pickles: object arrays are refused); ArtifactError on any
    other member or damaged data."""
    arrays = {}
    for name in archive.namelist():
        if name == HEADER:
            continue
        if not name.endswith(".npy"):
            raise ArtifactError(f"{path}: damaged latency-model file (unexpected member {name})")
        try:
            data = archive.read(name)  # checks the member's CRC-32
            arrays[name[:-len(".npy")]] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except _ZIP_ERRORS + (MemoryError,) as e:  # MemoryError: a shape far larger than the data
            raise ArtifactError(f"{path}: damaged latency-model file (member {name}: {_reason(e)})") from None
    return arrays


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):  # its text is only the missing key
        return f"no {error}"
    return " ".join(str(error).split()) or type(error).__name__


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in an artifact header")
