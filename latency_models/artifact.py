"""The latency-model artifact: one file per board and runtime, the fitted model plus its metadata.

Layout:

    HWBENCH-LATENCY-MODEL <container version>\\n
    <header: one line of JSON>\\n
    <payload: the pickled LatencyModel>

The header holds the metadata (board, unit, runtime hash, feature-schema version, training counts,
held-out metrics, hwbench version, MACs baseline, ...) and the payload's length and SHA-256. Loading
reads and checks the header first — wrong file kind, another feature schema, another board — then
checks the payload's length and checksum, and only then unpickles, so a damaged or truncated file
is a clear error, never a confusing unpickling failure. The payload is a pickle (scikit-learn's own
way to persist estimators): like any pickle, load only artifacts you or your team made; the
checksum guards against damage, not against a forged file.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

from hwbench import __version__
from hwbench.errors import HwbenchError
from latency_models.baseline import MacsBaseline
from latency_models.features import SCHEMA_VERSION

MAGIC = b"HWBENCH-LATENCY-MODEL"
CONTAINER_VERSION = 1
REQUIRED = ("board", "unit", "runtime_hash", "feature_schema", "hwbench_version", "n_models", "n_layers", "baseline")


class ArtifactError(HwbenchError):
    """A latency-model file that cannot be used: not one, damaged, or for another board or schema."""


@dataclass
class Artifact:
    model: "LatencyModel"  # noqa: F821 (latency_models.model, imported lazily)
    metadata: dict
    baseline: MacsBaseline

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
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    header = {"metadata": metadata, "payload": {"format": "pickle", "bytes": len(payload),
                                                "sha256": hashlib.sha256(payload).hexdigest()}}
    text = json.dumps(header, separators=(",", ":"), default=_jsonable)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(MAGIC + b" %d\n" % CONTAINER_VERSION + text.encode() + b"\n" + payload)
    partial.replace(path)  # a reader never sees half a file


def read_header(path: str | Path) -> tuple[dict, bytes]:
    """(header, payload) after the checks that need no unpickling; ArtifactError when unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such latency-model file (hwbench fit --out writes one)") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path}: is a folder, not a latency-model file") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e.strerror}") from None
    stream = io.BytesIO(data)
    first = stream.readline()
    if not first.startswith(MAGIC + b" "):
        raise ArtifactError(f"{path}: not a hwbench latency model (hwbench fit --out writes one)")
    try:
        version = int(first[len(MAGIC) + 1:].strip())
    except ValueError:
        raise ArtifactError(f"{path}: damaged latency-model file (bad first line)") from None
    if version != CONTAINER_VERSION:
        raise ArtifactError(f"{path}: latency-model file format {version}, this hwbench reads format "
                            f"{CONTAINER_VERSION}; refit with hwbench fit")
    line = stream.readline()
    try:
        header = json.loads(line)
        metadata, payload_info = header["metadata"], header["payload"]
        size, digest = int(payload_info["bytes"]), str(payload_info["sha256"])
    except (ValueError, KeyError, TypeError):
        raise ArtifactError(f"{path}: damaged latency-model file (unreadable header)") from None
    if not isinstance(metadata, dict) or any(k not in metadata for k in REQUIRED):
        raise ArtifactError(f"{path}: damaged latency-model file (header lacks metadata)")
    payload = stream.read()
    if len(payload) != size:
        raise ArtifactError(f"{path}: damaged latency-model file: payload is {len(payload):,} bytes, the header "
                            f"says {size:,} (truncated or appended to)")
    header["_payload_ok"] = hashlib.sha256(payload).hexdigest() == digest
    return header, payload


def load_artifact(path: str | Path, board: str | None = None) -> Artifact:
    """Read and check an artifact. With `board`, refuse one fitted for another board."""
    from latency_models.model import LatencyModel

    header, payload = read_header(path)
    metadata = header["metadata"]
    if metadata["feature_schema"] != SCHEMA_VERSION:
        raise ArtifactError(f"{path}: fitted with latency feature schema {metadata['feature_schema']}, but this "
                            f"hwbench ({__version__}) uses schema {SCHEMA_VERSION}; refit it with hwbench fit")
    if board is not None and metadata["board"] != board:
        raise ArtifactError(f"{path}: a latency model of board {metadata['board']}, not {board}; fit one for "
                            f"{board} with hwbench fit --board {board}")
    if not header["_payload_ok"]:
        raise ArtifactError(f"{path}: damaged latency-model file (payload checksum mismatch)")
    try:
        model = pickle.loads(payload)
    except Exception as e:  # the checksum matched, so this is a file from an incompatible hwbench/scikit-learn
        raise ArtifactError(f"{path}: cannot load the fitted model ({type(e).__name__}: {e}); it was written by "
                            f"hwbench {metadata.get('hwbench_version')}: refit with hwbench fit") from None
    if not isinstance(model, LatencyModel):
        raise ArtifactError(f"{path}: the payload is a {type(model).__name__}, not a LatencyModel")
    try:
        baseline = MacsBaseline()
        baseline.intercept_ = float(metadata["baseline"]["intercept"])
        baseline.slope_ = float(metadata["baseline"]["slope"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{path}: damaged latency-model file (bad baseline in the header)") from None
    model.metadata_ = metadata
    return Artifact(model, metadata, baseline)


def _jsonable(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"cannot store {type(value).__name__} in an artifact header")
