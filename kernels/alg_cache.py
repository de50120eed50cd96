"""The cuSPARSELt algorithm chosen for a shape, kept on disk so every process uses the same one.

torch._cslt_sparse_mm_search times the candidate algorithms once, in the calling process, and
near-equal candidates trade places with noise: on an H100 three processes picked algs 8, 13 and
18 for one N=256 half, and its 6.6 us forward moved by up to 8% between them. A gate that
compares processes (asv, `--benchmark-compare`) must not read an alg flip as a change in the
code, so the first search's answer is kept in a JSON file and reused: `$BS_CSLT_ALG_CACHE`, by
default ~/.cache/block-shock-bench/cslt_algs.json; `BS_CSLT_ALG_CACHE=off` searches in every
process. The key holds the GPU, cuSPARSELt and torch versions, dtype and shape, so a new library
searches again. Writes are atomic (temporary file, then rename); two processes writing at once
may lose one entry, which is then searched again next time.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

ENV = "BS_CSLT_ALG_CACHE"


def cache_path(env: str = ENV, filename: str = "cslt_algs.json") -> Path | None:
    """The cache file named by `env` (default: ~/.cache/block-shock-bench/`filename`), or None
    when that variable says "off". Other kernels' tuning caches pass their own pair."""
    value = os.environ.get(env, "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value)
    return Path.home() / ".cache" / "block-shock-bench" / filename


def key(
    device_name: str,
    dtype: torch.dtype,
    n_out: int,
    n_in: int,
    batch: int,
    library: str | None = None,
) -> str:
    """One cache entry's key; `library` (default: the cuSPARSELt version) names what was tuned."""
    library = library or f"cusparselt {torch.backends.cusparselt.version()}"
    return (
        f"{device_name} | {library} | torch {torch.__version__} | "
        f"{str(dtype).removeprefix('torch.')} | {n_out}x{n_in} | B{batch}"
    )


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # a missing or torn file is an empty cache; the next store rewrites it
    return doc if isinstance(doc, dict) else {}


def lookup(path: Path, k: str) -> int | None:
    alg = _read(path).get(k)
    return alg if isinstance(alg, int) and not isinstance(alg, bool) else None


def lookup_name(path: Path, k: str) -> str | None:
    """A stored string (a tuned configuration's name), or None."""
    value = _read(path).get(k)
    return value if isinstance(value, str) else None


def store(path: Path, k: str, alg: int | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _read(path)
    doc[k] = alg
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
