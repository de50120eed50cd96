"""A 2:4 half on Hopper's sparse tensor cores: CUTLASS 3's sm90 sparse GEMMs (wgmma.sp, SASS
`HGMMA.SP`), shaped for small batches, built just in time on the GPU machine.

Why: the Triton half (kernels/triton/gemm24.py) cannot issue wgmma.sp, so from B=32 up it does the
dense half's MMA work on twice the columns, and from B=128 it loses 2-5x to cuSPARSELt, whose
kernels are tuned for large B. Here the compressed weight is the sparse MMA operand A (M =
N_out), the tokens are the MMA's N (tile N 16..256), and where N_out / tile M leaves SMs idle
the work is split along K (split-K or stream-K, chosen at run time on the same kernel).

Pieces:
- kernels/sm90/*.cu, *.cuh, *.cpp: the CUTLASS instantiations (one configuration and dtype per
  generated file, so they compile in parallel), CUTLASS's own device compressor (for the GPU
  check), a host-only reference of that compressor (for the CPU check) and the torch binding.
- The compressed form: A is this project's Compressed24 `values` as they are (N_out x N_in/2,
  the kept pairs in order: exactly CUTLASS's K-major compressed A), and CUTLASS's metadata E is
  a byte permutation of Compressed24's `meta` (`to_cutlass_meta`), so compression is the
  project's own one-pass compress plus one strided copy, from any strides (W_g^T as a view).
- `available()` says whether the backend can run here and, if not, why (no CUDA, not sm_90, no
  nvcc, no CUTLASS headers, build failed); it never raises. Importing this module needs only
  torch, so CPU machines and CI import it freely and stay emulated.
- `Sm90Sparse24Half`: the `Half` protocol of kernels/backends/base.py (build
  from a masked dense W_g, bias and example X; `mm_into`, `recompress`, `stored_bytes`,
  `alg_id`), its configuration chosen per GPU and shape by timing the candidates once outside
  any timed region and cached on disk (`$BS_SM90_24_CACHE`, like the Triton tuner's cache).

The build is cached under ~/.cache/block-shock-bench/sm90_24/<key> (or `$BS_SM90_24_BUILD`),
keyed by the sources, the configuration list, the flags, torch, nvcc and the CUTLASS headers.
CUTLASS headers are found at `$BS_CUTLASS_INCLUDE`, then the repository's .cutlass/include
(scripts/pack_cutlass_headers.sh fills it, for GPU machines without the wheel or the network),
then the `nvidia-cutlass` wheel's cutlass_library/source/include.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from common.errors import CellSpecError

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = Path(__file__).resolve().parent / "sm90"
HEADERS = ("sm90_24.h", "sm90_24_gemm.cuh")
FIXED_SOURCES = ("sm90_24_binding.cpp", "sm90_24_compress.cu")
HOST_REFERENCE = "sm90_24_host_reference.cu"
CACHE_ENV = "BS_SM90_24_CACHE"
BUILD_ENV = "BS_SM90_24_BUILD"
CUTLASS_ENV = "BS_CUTLASS_INCLUDE"
CONFIGS_ENV = "BS_SM90_24_CONFIGS"  # comma-separated config names: build only these (diagnosis)
DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16"}
N_OUT_MULTIPLE = 64  # CUTLASS's metadata atom is 64 rows
N_IN_MULTIPLE = 128  # ... and 128 columns (tile K >= 128 in every configuration)
# Hopper's sparse tensor cores need the sm_90a target (wgmma.sp); a plain sm_90 pass would
# compile the kernels to an error message. The -U flags undo torch's -D__CUDA_NO_HALF_*
# defaults so the JIT build and the CPU SASS check compile the same code.
NVCC_FLAGS = (
    "-gencode=arch=compute_90a,code=sm_90a",
    "-std=c++17",
    "-O3",
    "-DNDEBUG",
    "--expt-relaxed-constexpr",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_HALF2_OPERATORS__",
)
# The metadata byte permutation (see `to_cutlass_meta`).
_E_FROM_C24 = (4, 0, 1, 6, 3, 5, 2, 7)
_C24_FROM_E = (1, 2, 6, 4, 0, 5, 3, 7)


class Sm90Unavailable(CellSpecError):
    """The sm90 2:4 backend cannot run on this machine; the message says why."""


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Config:
    """One CUTLASS instantiation: kernel schedule, CTA tile and cluster.

    "coop": two consumer warpgroups on one 128-row tile (or 256), persistent, on CUTLASS's
    stream-K scheduler, so data-parallel, split-K and stream-K are run-time modes of one kernel.
    "pingpong": two consumer warpgroups on alternating 64-row tiles, data-parallel only.
    """

    schedule: str
    tile_m: int
    tile_n: int
    tile_k: int = 128
    cluster_m: int = 1
    cluster_n: int = 1

    @property
    def name(self) -> str:
        c = self
        return f"{c.schedule}_m{c.tile_m}_n{c.tile_n}_k{c.tile_k}_c{c.cluster_m}x{c.cluster_n}"

    @property
    def stream_k(self) -> bool:
        return self.schedule == "coop"


# Tile N (tokens) 16..256 so B 1..256 fits one N tile (each N tile re-reads the weight); 128-row
# cooperative tiles split along K where N_out / 128 tiles leave SMs idle; 64-row ping-pong tiles
# give twice the tiles without splitting; 256 x 128 and 128 x 256 for B >= 256. Tile K 128 keeps
# the 128-byte swizzle for A's compressed rows and one metadata layout for all.
CONFIGS: tuple[Config, ...] = (
    Config("coop", 128, 16),
    Config("coop", 128, 32),
    Config("coop", 128, 64),
    Config("coop", 128, 128),
    Config("coop", 128, 256),
    Config("coop", 256, 128),
    Config("pingpong", 64, 16),
    Config("pingpong", 64, 32),
    Config("pingpong", 64, 64),
    Config("pingpong", 64, 128),
)
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}
_SCHEDULE_TYPES = {"coop": "Coop", "pingpong": "Pingpong"}
MODES = {"heuristic": 0, "dp": 1, "splitk": 2, "streamk": 3}


@dataclass(frozen=True)
class Variant:
    """A configuration with its run-time decomposition: `name` is what the tuning cache keeps."""

    config: Config
    mode: str = "dp"  # one of MODES
    splits: int = 1

    @property
    def name(self) -> str:
        mode = f"splitk{self.splits}" if self.mode == "splitk" else self.mode
        return f"{self.config.name}.{mode}"

    @classmethod
    def parse(cls, name: str) -> Variant:
        """The variant a cached or user-given name stands for (ValueError if none)."""
        cfg, _, mode = name.partition(".")
        if cfg not in CONFIG_BY_NAME:
            raise ValueError(
                f"unknown sm90 2:4 configuration {cfg!r}; known: {sorted(CONFIG_BY_NAME)}"
            )
        m = re.fullmatch(r"(dp|streamk|heuristic|splitk(\d+))", mode)
        if m is None:
            raise ValueError(f"unknown mode {mode!r} in {name!r} (dp, streamk, heuristic, splitkN)")
        if m.group(2):
            return cls(CONFIG_BY_NAME[cfg], "splitk", int(m.group(2)))
        return cls(CONFIG_BY_NAME[cfg], mode)


def tile_n_choices(batch: int) -> set[int]:
    """The tile N widths worth trying for `batch` tokens: the narrowest that holds B in one tile
    (every extra N tile re-reads the whole weight), and for B >= 128 also half of it (two N
    tiles back to back share the weight tile through L2)."""
    one = min(256, max(16, 1 << max(0, batch - 1).bit_length()))
    return {one, one // 2} if batch >= 128 else {one}


def candidates(
    n_out: int,
    n_in: int,
    batch: int,
    sm_count: int,
    configs: Iterable[Config] = CONFIGS,
) -> list[Variant]:
    """Variants worth timing for this shape: each configuration whose tile N fits B, data-
    parallel, plus on the cooperative kernel split-K (2, 4, 8: while the split tiles stay within
    two waves and each slice keeps >= 4 K tiles) and stream-K where the output tiles alone
    leave SMs idle or a partial last wave."""
    widths = tile_n_choices(batch)
    out = []
    for c in configs:
        if c.tile_n not in widths or n_out % N_OUT_MULTIPLE or n_in % N_IN_MULTIPLE:
            continue
        tiles = math.ceil(n_out / c.tile_m) * math.ceil(batch / c.tile_n)
        out.append(Variant(c))
        if not c.stream_k:
            continue
        k_tiles = n_in // c.tile_k
        if tiles < sm_count:
            for s in (2, 4, 8):
                if tiles * s <= 2 * sm_count and k_tiles // s >= 4:
                    out.append(Variant(c, "splitk", s))
        if tiles % sm_count and tiles < 4 * sm_count:
            out.append(Variant(c, "streamk"))
    return out


def check_shape(n_out: int, n_in: int, batch: int, dtype: torch.dtype, where: str) -> None:
    """Raise CellSpecError naming the rule before anything runs."""
    if dtype not in DTYPES:
        raise CellSpecError(f"{where}: backend sm90 needs bf16 or fp16, got {dtype}")
    if n_out % N_OUT_MULTIPLE or n_in % N_IN_MULTIPLE:
        raise CellSpecError(
            f"{where}: backend sm90 needs N_out a multiple of {N_OUT_MULTIPLE} and N_in a "
            f"multiple of {N_IN_MULTIPLE} (CUTLASS's metadata atom), got {n_out} x {n_in}"
        )
    if batch < 1:
        raise CellSpecError(f"{where}: backend sm90 needs B >= 1, got {batch}")


# ------------------------------------------------------------------- the metadata converter


def to_cutlass_meta(meta: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """CUTLASS's sm90 metadata E (uint8, N_out * N_in / 8) from Compressed24's meta words.

    Both hold one 4-bit code per 2:4 group (i0 | i1 << 2, i0 < i1, the hardware's code) and
    pack two groups of a row into a byte, the even group in the low nibble; only the byte order
    differs. CUTLASS's E atom (Sm90GemmSparseConfig::TensorEAtom for 16-bit data and tile K >=
    128) covers 64 rows x 128 columns = 64 x 16 bytes; with row m = 16*m4 + 8*m2 + m8 and byte
    column j = 16*kA + 4*kN + 2*k2 + kb (kA the atom along K, mA along M), byte (m, j) lands at
        kA * (N_out * 16) + mA * 1024 + m4 * 256 + k2 * 128 + m8 * 16 + kN * 4 + m2 * 2 + kb,
    atoms first along M, then along K. Checked bit for bit against CUTLASS's own layout
    functions on the CPU (tests/test_sm90_24.py, kernels/sm90/sm90_24_host_reference.cu) and
    against its device compressor on a GPU (scripts/sm90_gpu_check.py). One strided copy, no
    allocation when `out` is given (a re-compression reuses the GEMM's buffer).
    """
    n_out, words = meta.shape
    n_in = words * 32
    if n_out % N_OUT_MULTIPLE or n_in % N_IN_MULTIPLE:
        raise CellSpecError(
            f"to_cutlass_meta: needs N_out % 64 == 0 and N_in % 128 == 0, got {n_out} x {n_in}"
        )
    src = meta.contiguous().view(torch.uint8)
    src = src.view(n_out // 64, 4, 2, 8, n_in // 128, 4, 2, 2).permute(_E_FROM_C24)
    if out is None:
        return src.contiguous().view(-1)
    out.view(src.shape).copy_(src)
    return out


def from_cutlass_meta(e: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
    """Compressed24's meta words (N_out x N_in/32 int32) from CUTLASS's E: `to_cutlass_meta`'s
    inverse, for decoding what CUTLASS's compressor wrote."""
    t = e.contiguous().view(torch.uint8).view(n_in // 128, n_out // 64, 4, 2, 8, 4, 2, 2)
    return t.permute(_C24_FROM_E).contiguous().view(n_out, n_in // 8).view(torch.int32)


# ----------------------------------------------------------------------- finding the tools


def cutlass_include(unpack: bool = True) -> tuple[Path | None, str]:
    """(CUTLASS's include folder, where it came from) or (None, why none was found).

    Looks at `$BS_CUTLASS_INCLUDE`, then the nvidia-cutlass wheel, then the repository's
    .cutlass/include, unpacking .cutlass/cutlass_include.tar.xz there first where only the
    tarball travelled (scripts/pack_cutlass_headers.sh; `unpack=False` skips that)."""
    tried = []
    places = []
    env = os.environ.get(CUTLASS_ENV)
    if env:
        places.append((Path(env), f"${CUTLASS_ENV}"))
    spec = importlib.util.find_spec("cutlass_library")
    if spec is not None and spec.origin is not None:
        places.append((Path(spec.origin).parent / "source" / "include", "the nvidia-cutlass wheel"))
    packed = ROOT / ".cutlass"
    places.append((packed / "include", "the repository's .cutlass"))
    for path, source in places:
        if path == packed / "include" and unpack and not path.is_dir():
            _unpack_headers(packed)
        sparse = path / "cutlass/gemm/collective/builders/sm90_sparse_gmma_builder.inl"
        if sparse.is_file() and (path / "cute" / "tensor.hpp").is_file():
            return path, f"{source} ({path})"
        tried.append(f"{source} ({path})")
    return None, (
        "no CUTLASS headers with the sm90 sparse builder: tried "
        + ", ".join(tried)
        + f"; pip install nvidia-cutlass==4.2.0.0, set ${CUTLASS_ENV}, or run "
        "scripts/pack_cutlass_headers.sh and carry .cutlass/"
    )


def _unpack_headers(packed: Path) -> None:
    """Unpack .cutlass/cutlass_include.tar.xz (if there) into .cutlass/include, atomically."""
    import tarfile
    import tempfile

    tarball = packed / "cutlass_include.tar.xz"
    if not tarball.is_file():
        return
    tmp = Path(tempfile.mkdtemp(dir=packed, prefix=".unpack-"))
    try:
        with tarfile.open(tarball) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python < 3.11.4: the tarball is this repository's own, made by the script
                tar.extractall(tmp)  # noqa: S202
        (tmp / "include").rename(packed / "include")
    except OSError:
        pass  # another process unpacked it first, or the folder is read-only: not found then
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def find_nvcc() -> Path | None:
    """nvcc from $CUDA_HOME / $CUDA_PATH, PATH, /usr/local/cuda, or the nvidia-cuda-nvcc wheel."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return Path(home) / "bin" / "nvcc"
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    if Path("/usr/local/cuda/bin/nvcc").is_file():
        return Path("/usr/local/cuda/bin/nvcc")
    spec = importlib.util.find_spec("nvidia")
    for base in (spec.submodule_search_locations or ()) if spec else ():
        for sub in ("cu13", "cuda_nvcc"):
            nvcc = Path(base) / sub / "bin" / "nvcc"
            if nvcc.is_file():
                return nvcc
    return None


def find_cuobjdump(nvcc: Path | None = None) -> Path | None:
    """cuobjdump (for the SASS check) beside nvcc, on PATH, in $CUDA_HOME, or from the
    nvidia-cuda-cuobjdump wheel."""
    places = [nvcc.parent] if nvcc else []
    if nvcc and nvcc.is_file():
        places.append(nvcc.resolve().parent)
    places += [Path(os.environ[v]) / "bin" for v in ("CUDA_HOME", "CUDA_PATH") if v in os.environ]
    places.append(Path("/usr/local/cuda/bin"))
    spec = importlib.util.find_spec("nvidia")
    for base in (spec.submodule_search_locations or ()) if spec else ():
        places += [Path(base) / "cu13" / "bin", Path(base) / "cuda_cuobjdump" / "bin"]
    for place in places:
        if (place / "cuobjdump").is_file():
            return place / "cuobjdump"
    found = shutil.which("cuobjdump")
    return Path(found) if found else None


def nvcc_version(nvcc: Path) -> str:
    """'13.0.88'-style release of this nvcc (empty when it does not answer)."""
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"V(\d+\.\d+\.\d+)", out.stdout)
    return m.group(1) if m else ""


# ---------------------------------------------------------------------- generated sources


def _selected_configs() -> tuple[Config, ...]:
    names = [n for n in os.environ.get(CONFIGS_ENV, "").split(",") if n.strip()]
    if not names:
        return CONFIGS
    unknown = [n for n in names if n.strip() not in CONFIG_BY_NAME]
    if unknown:
        raise ValueError(f"${CONFIGS_ENV} names unknown configurations {unknown}")
    return tuple(CONFIG_BY_NAME[n.strip()] for n in names)


def entry_function(config: Config, dtype: str) -> str:
    return f"entry_{config.name}_{dtype}"


def kernel_source(config: Config, dtype: str) -> str:
    """The text of one generated kernel file: one configuration, one dtype."""
    c = config
    return (
        f"// generated by kernels/sm90_24.py: {c.name} {dtype}\n"
        '#include "sm90_24_gemm.cuh"\n'
        f'BS_SM90_ENTRY({entry_function(c, dtype)}, "{c.name}", {dtype}, '
        f"{_SCHEDULE_TYPES[c.schedule]}, {c.tile_m}, {c.tile_n}, {c.tile_k}, "
        f"{c.cluster_m}, {c.cluster_n})\n"
    )


def write_sources(folder: Path, configs: Iterable[Config] = CONFIGS) -> list[Path]:
    """Write one kernel file per configuration and dtype plus the binding's registry
    (sm90_24_configs.inc) into `folder`; return the kernel files. Files whose text is
    unchanged are left alone, so a rebuild recompiles only what changed."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, registry = [], []
    for c in configs:
        for dtype in DTYPES.values():
            path = folder / f"sm90_24_{c.name}_{dtype}.cu"
            _write_if_changed(path, kernel_source(c, dtype))
            paths.append(path)
            registry.append(f"BS_SM90_CONFIG({entry_function(c, dtype)})\n")
    _write_if_changed(folder / "sm90_24_configs.inc", "".join(registry))
    return paths


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def build_key(configs: Iterable[Config], nvcc_release: str, include: Path) -> str:
    """What the build depends on: sources, configurations, flags, torch, nvcc, CUTLASS."""
    h = hashlib.sha256()
    for name in (*HEADERS, *FIXED_SOURCES):
        h.update((SOURCE_DIR / name).read_bytes())
    for c in configs:
        h.update(c.name.encode())
    h.update(" ".join(NVCC_FLAGS).encode())
    h.update(f"torch {torch.__version__} cuda {torch.version.cuda} nvcc {nvcc_release}".encode())
    version = include / "cutlass" / "version.h"
    h.update(version.read_bytes() if version.is_file() else b"?")
    return h.hexdigest()[:16]


def host_reference_binary(folder: Path | None = None) -> Path:
    """Compile kernels/sm90/sm90_24_host_reference.cu (CUTLASS's sm90 compression on the host,
    for checking the converter without a GPU) once per source, headers, nvcc and CUTLASS;
    return the program. Raises RuntimeError naming what is missing or the compiler's error."""
    include, why = cutlass_include()
    nvcc = find_nvcc()
    if include is None or nvcc is None:
        raise RuntimeError(why if include is None else "no nvcc found")
    h = hashlib.sha256((SOURCE_DIR / HOST_REFERENCE).read_bytes())
    for name in HEADERS:
        h.update((SOURCE_DIR / name).read_bytes())
    h.update(nvcc_version(nvcc).encode() + str(include).encode())
    folder = folder or build_root().parent / "sm90_24_host_reference"
    binary = folder / f"sm90_24_host_reference-{h.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    libs = [
        f"-L{p}" for p in (nvcc.parent.parent / "lib64", nvcc.parent.parent / "lib") if p.is_dir()
    ]
    tmp = binary.with_suffix(f".{os.getpid()}.tmp")
    cmd = [
        str(nvcc), str(SOURCE_DIR / HOST_REFERENCE), "-o", str(tmp), *NVCC_FLAGS[:4],
        "--expt-relaxed-constexpr", f"-I{SOURCE_DIR}", f"-I{include}", *libs,
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"host reference did not compile:\n{(run.stdout + run.stderr)[-3000:]}")
    tmp.replace(binary)
    return binary


def build_root() -> Path:
    env = os.environ.get(BUILD_ENV)
    return Path(env) if env else Path.home() / ".cache" / "block-shock-bench" / "sm90_24"


_LOADED: dict = {}  # the extension, or the exception its build raised (one build a process)


def load(verbose: bool = False):
    """The compiled extension (built on first use, then from the cache). Raises on failure, the
    same exception again on later calls; `available()` is the non-raising front door.
    `verbose` shows the build's commands (only the first call builds)."""
    if "ext" not in _LOADED:
        try:
            _LOADED["ext"] = _build(verbose)
        except Exception as e:
            _LOADED["ext"] = e
    if isinstance(_LOADED["ext"], Exception):
        raise _LOADED["ext"]
    return _LOADED["ext"]


def _build(verbose: bool):
    from torch.utils import cpp_extension

    include, why = cutlass_include()
    if include is None:
        raise RuntimeError(why)
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("no nvcc found ($CUDA_HOME, PATH, /usr/local/cuda)")
    configs = _selected_configs()
    key = build_key(configs, nvcc_version(nvcc), include)
    folder = build_root() / key
    generated = write_sources(folder / "gen", configs)
    sources = [str(SOURCE_DIR / s) for s in FIXED_SOURCES] + [str(p) for p in generated]
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
    if cpp_extension.CUDA_HOME is None and nvcc.parent.name == "bin":
        # torch reads $CUDA_HOME once, at import; the nvcc found here (PATH, the wheel) is
        # the toolkit to build with
        cpp_extension.CUDA_HOME = str(nvcc.parent.parent)
    return cpp_extension.load(
        name=f"bs_sm90_24_{key}",
        sources=sources,
        extra_cuda_cflags=list(NVCC_FLAGS),
        extra_include_paths=[str(SOURCE_DIR), str(folder / "gen"), str(include)],
        build_directory=str(folder),
        verbose=verbose,
    )


@functools.cache
def available() -> tuple[bool, str]:
    """(True, what was found) where the backend can run, else (False, why not). Never raises:
    every failure, a build error included, becomes the reason (the build log's tail)."""
    try:
        if not torch.cuda.is_available():
            return False, "no CUDA device visible (the sm90 backend needs a Hopper GPU)"
        major, minor = torch.cuda.get_device_capability()
        if (major, minor) != (9, 0):
            name = torch.cuda.get_device_name()
            return (
                False,
                f"needs compute capability 9.0 (Hopper, sm_90a); {name} is {major}.{minor}",
            )
        if torch.version.cuda is None:
            return False, "torch was built without CUDA"
        include, where = cutlass_include()
        if include is None:
            return False, where
        nvcc = find_nvcc()
        if nvcc is None:
            return False, "no nvcc found ($CUDA_HOME, PATH, /usr/local/cuda): cannot build"
        release = nvcc_version(nvcc)
        if release and tuple(int(v) for v in release.split(".")[:2]) < (12, 2):
            return False, f"nvcc {release} is too old: CUTLASS's sm90 sparse GEMMs need >= 12.2"
        try:
            ext = load()
        except Exception as e:  # the build's own message, shortened to its tail
            text = " ".join(str(e).split())
            return False, f"build failed: {text[-1500:]}"
        return True, f"{len(ext.configs())} kernels built with nvcc {release}; CUTLASS from {where}"
    except Exception as e:  # a reason, never an exception, whatever went wrong
        return False, f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------- the 2:4 half


def _median_ms(fn) -> float:
    """Device time of `fn`, median ms: Triton's do_bench (L2 flushed between runs) where Triton
    is installed, else CUDA events over repeated calls."""
    try:
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=5, rep=25, return_mode="median"))
    except ImportError:
        pass
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(15):
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        for _ in range(5):
            fn()
        t1.record()
        t1.synchronize()
        times.append(t0.elapsed_time(t1) / 5)
    return sorted(times)[len(times) // 2]


class Sm90Sparse24Half:
    """One rank's 2:4 half W_g on the sm90 sparse GEMMs; `mm_into(x, out)` writes x @ W_g^T
    (+ bias) into `out` (B x N_out).

    Buffers: `compressed` (kernels/format24.Compressed24) whose `values` are the GEMM's A
    and whose `meta` is scratch for re-compression, `meta_e` (CUTLASS's E, what the GEMM reads)
    and a workspace sized for the chosen variant at x_example's B. `mm_into` allocates nothing
    and never synchronizes, so a CUDA graph captures it; `recompress` writes new values into the
    same buffers, so a captured graph stays valid.

    Attributes:
        alg_id: the chosen variant's name (configuration and decomposition).
        alg_source: "tuned", "cache <path>" or "given".
        tuning_ms: median ms of every variant timed (empty when cached or given).
        tuning_errors: variants the tuner skipped because CUTLASS refused them, with the reason.
        stored_bytes: bytes the GEMM reads for the whole weight (values + E): 9/16 of dense.
    """

    def __init__(
        self,
        w_masked: torch.Tensor,
        bias: torch.Tensor | None,
        x_example: torch.Tensor,
        where: str = "sm90_24",
        variant: str | None = None,
    ):
        from kernels.compressed24 import compress

        ok, reason = available()
        if not ok:
            raise Sm90Unavailable(f"{where}: the sm90 2:4 backend is unavailable: {reason}")
        n_out, n_in = w_masked.shape
        batch = x_example.shape[0]
        check_shape(n_out, n_in, batch, w_masked.dtype, where)
        self.where = where
        self._ext = load()
        device = w_masked.device
        self.sm_count = torch.cuda.get_device_properties(device).multi_processor_count
        self.dtype = w_masked.dtype
        self.shape = (n_out, n_in)
        if bias is not None and (bias.dtype != self.dtype or not bias.is_contiguous()):
            bias = bias.to(self.dtype).contiguous()  # a copy: the epilogue reads the weight dtype
        self.bias = bias
        self.compressed = compress(w_masked, where)
        self.meta_e = to_cutlass_meta(self.compressed.meta)
        self.stored_bytes = sum(
            t.numel() * t.element_size() for t in (self.compressed.values, self.meta_e)
        )
        dtype = DTYPES[self.dtype]
        self._index = {c["name"]: c["index"] for c in self._ext.configs() if c["dtype"] == dtype}
        self.tuning_ms: dict[str, float] = {}
        self.tuning_errors: dict[str, str] = {}  # variants the tuner could not run, and why
        self.workspace = torch.empty(0, dtype=torch.uint8, device=device)
        if variant is not None:
            chosen, self.alg_source = Variant.parse(variant), "given"
        else:
            chosen, self.alg_source = self._choose(x_example)
            self.workspace = torch.empty(0, dtype=torch.uint8, device=device)  # tuning's max
        self._use(chosen, x_example)

    def _use(self, v: Variant, x: torch.Tensor) -> None:
        """Make `v` the variant mm_into runs: workspace sized for x's batch, limits raised, and
        CUTLASS's own can_implement asked once here (CellSpecError if it says no)."""
        if v.config.name not in self._index:
            raise CellSpecError(f"{self.where}: configuration {v.config.name} was not built")
        index = self._index[v.config.name]
        n_out, n_in = self.shape
        need = self._ext.workspace_bytes(
            index, n_out, x.shape[0], n_in, MODES[v.mode], v.splits, self.sm_count
        )
        if need > self.workspace.numel():
            self.workspace = torch.empty(need, dtype=torch.uint8, device=x.device)
        out = torch.empty(x.shape[0], n_out, dtype=self.dtype, device=x.device)
        why = self._ext.check(
            index, self.compressed.values, self.meta_e, x, self.bias, out,
            self.workspace, MODES[v.mode], v.splits, self.sm_count,
        )  # fmt: skip
        if why:
            raise CellSpecError(f"{self.where}: sm90 variant {v.name} cannot run: {why}")
        self._ext.prepare(index)
        self.variant = v
        self.alg_id = v.name
        self._args = (index, MODES[v.mode], v.splits)

    def _choose(self, x: torch.Tensor) -> tuple[Variant, str]:
        """The cached variant for this GPU and shape, else the fastest candidate (then cached)."""
        from kernels import alg_cache

        n_out, n_in = self.shape
        batch = x.shape[0]
        built = [c for c in CONFIGS if c.name in self._index]
        options = candidates(n_out, n_in, batch, self.sm_count, built)
        if not options:
            raise CellSpecError(f"{self.where}: no built sm90 configuration fits B={batch}")
        path = alg_cache.cache_path(CACHE_ENV, "sm90_24_configs.json")
        library = f"cutlass sm90 2:4 {self._ext.__name__.rsplit('_', 1)[-1]}"
        name = torch.cuda.get_device_name(x.device)
        k = alg_cache.key(name, self.dtype, n_out, n_in, batch, library=library)
        if path is not None:
            cached = alg_cache.lookup_name(path, k)
            if cached in {v.name for v in options}:
                return Variant.parse(cached), f"cache {path}"
        out = torch.empty(batch, n_out, dtype=self.dtype, device=x.device)
        for v in options:
            try:
                self._use(v, x)
                self.tuning_ms[v.name] = _median_ms(lambda: self.mm_into(x, out))
            except (CellSpecError, RuntimeError) as e:
                # CUTLASS said no (can_implement or a failed launch status): not a candidate
                # here; the reason is kept. A fault that breaks the CUDA context still surfaces.
                self.tuning_errors[v.name] = str(e).splitlines()[0][:300]
        if not self.tuning_ms:
            raise CellSpecError(
                f"{self.where}: no sm90 variant can run B={batch}: {self.tuning_errors}"
            )
        best = min(self.tuning_ms, key=lambda name: self.tuning_ms[name])
        if path is not None:
            alg_cache.store(path, k, best)
        return Variant.parse(best), "tuned"

    def mm_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """x @ W_g^T (+ bias) into `out` (B x N_out, unit column stride), on the current stream.
        A batch other than x_example's works while the workspace it needs fits (else raises)."""
        index, mode, splits = self._args
        return self._ext.gemm(
            index, self.compressed.values, self.meta_e, x, self.bias, out,
            self.workspace, mode, splits, self.sm_count,
        )  # fmt: skip

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape[0], self.shape[0], dtype=x.dtype, device=x.device)
        return self.mm_into(x, out)

    def recompress(self, w_masked: torch.Tensor) -> None:
        """New values of the same shape and dtype, any strides (W_g^T as a transposed view),
        into the same buffers: the project's compress into `compressed`, then E permuted in
        place. The variant stays (no tuning inside a timed step). MaskError as compress."""
        from kernels.compressed24 import compress_into

        compress_into(w_masked, self.compressed, f"{self.where} recompress")
        to_cutlass_meta(self.compressed.meta, out=self.meta_e)
