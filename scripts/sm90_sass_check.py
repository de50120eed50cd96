"""Compile every sm90 2:4 GEMM configuration for sm_90a on this machine (no GPU needed) and show
from the SASS that each one issues Hopper's sparse tensor-core instruction, HGMMA.SP.

Why: the CUTLASS kernels can only be run on an H100/H200, whose time is scarce; a build error, a
configuration CUTLASS rejects, or a kernel that silently fell back to dense MMAs (HGMMA without
.SP) or spilled to local memory should be found here first. Each generated kernel file (one
configuration, one dtype; the files the JIT build compiles, with the same flags) is compiled with
`nvcc -c` in parallel, disassembled with `cuobjdump --dump-sass`, and its HGMMA opcodes counted;
the resource usage (registers, stack, local memory) is read with `--dump-resource-usage`.

Objects are cached by the hash of their source, headers, flags and nvcc, under --cache (default
~/.cache/block-shock-bench/sm90_sass), so a rerun after an unrelated change costs nothing.

    python scripts/sm90_sass_check.py                       # every configuration, bf16 and fp16
    python scripts/sm90_sass_check.py --configs coop_m128_n32_k128_c1x1 --dtypes bf16
    python scripts/sm90_sass_check.py --json sass.json

Needs nvcc (CUDA >= 12.2; $CUDA_HOME, PATH, or the nvidia-cuda-nvcc wheel), cuobjdump, and the
CUTLASS headers (see kernels/sm90_24.cutlass_include). Exits 1 if any configuration fails to
compile or lacks HGMMA.SP, 2 if the tools are missing.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernels import sm90_24  # noqa: E402

HGMMA = re.compile(r"\b(HGMMA(?:\.[A-Z0-9x]+)+)")


@dataclass
class Result:
    """One compiled file: a GEMM configuration for one dtype, or the compressor."""

    name: str
    dtype: str
    source: str
    compiled: bool = False
    cached: bool = False
    seconds: float = 0.0  # wall
    cpu_seconds: float = 0.0  # nvcc and its passes (cicc, ptxas): what a free core would take
    error: str = ""
    hgmma: dict = field(default_factory=dict)  # opcode -> count
    sparse: int = 0  # HGMMA.SP instructions
    dense: int = 0  # HGMMA without .SP
    registers: int | None = None
    stack: int | None = None
    local: int | None = None

    @property
    def ok(self) -> bool:
        gemm = self.name != "compressor"
        return self.compiled and (not gemm or (self.sparse > 0 and self.dense == 0))


def tools() -> tuple[Path, Path, Path]:
    """(nvcc, cuobjdump, CUTLASS include) or exit 2 naming what is missing."""
    nvcc = sm90_24.find_nvcc()
    include, why = sm90_24.cutlass_include()
    missing = []
    if nvcc is None:
        missing.append("nvcc (set CUDA_HOME, put it on PATH, or pip install nvidia-cuda-nvcc)")
    cuobjdump = sm90_24.find_cuobjdump(nvcc)
    if cuobjdump is None:
        missing.append("cuobjdump (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    if include is None:
        missing.append(why)
    if missing:
        print("sm90_sass_check: missing " + "; ".join(missing), file=sys.stderr)
        sys.exit(2)
    return nvcc, cuobjdump, include


def nvcc_command(nvcc: Path, include: Path, source: Path, obj: Path) -> list[str]:
    """The JIT build's nvcc flags (kernels/sm90_24.NVCC_FLAGS), objects only."""
    return [
        str(nvcc),
        "-c",
        str(source),
        "-o",
        str(obj),
        *sm90_24.NVCC_FLAGS,
        "-Xcompiler",
        "-fPIC",
        f"-I{sm90_24.SOURCE_DIR}",
        f"-I{source.parent}",
        f"-I{include}",
    ]


def object_key(source: Path, nvcc_release: str, include: Path) -> str:
    h = hashlib.sha256(source.read_bytes())
    for name in sm90_24.HEADERS:
        h.update((sm90_24.SOURCE_DIR / name).read_bytes())
    h.update(" ".join(sm90_24.NVCC_FLAGS).encode() + nvcc_release.encode())
    version = include / "cutlass" / "version.h"
    h.update(version.read_bytes() if version.is_file() else b"?")
    return h.hexdigest()[:20]


def inspect(result: Result, obj: Path, cuobjdump: Path) -> None:
    """Count HGMMA opcodes in the SASS and read the kernels' resource usage."""
    sass = subprocess.run(
        [str(cuobjdump), "--dump-sass", str(obj)], capture_output=True, text=True, timeout=600
    )
    counts = collections.Counter(HGMMA.findall(sass.stdout))
    result.hgmma = dict(sorted(counts.items()))
    result.sparse = sum(n for op, n in counts.items() if op.startswith("HGMMA.SP."))
    result.dense = sum(n for op, n in counts.items() if not op.startswith("HGMMA.SP."))
    usage = subprocess.run(
        [str(cuobjdump), "--dump-resource-usage", str(obj)],
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    for key, attr in (("REG", "registers"), ("STACK", "stack"), ("LOCAL", "local")):
        values = [int(v) for v in re.findall(rf"\b{key}:(\d+)", usage)]
        setattr(result, attr, max(values) if values else None)


def compile_one(
    result: Result, nvcc: Path, cuobjdump: Path, include: Path, cache: Path, release: str
) -> Result:
    source = Path(result.source)
    obj = cache / f"{source.stem}-{object_key(source, release, include)}.o"
    if obj.is_file():
        result.cached = True
    else:
        t = time.time()
        tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")
        log = obj.with_suffix(f".{os.getpid()}.log")
        with open(log, "w+") as out:
            proc = subprocess.Popen(
                nvcc_command(nvcc, include, source, tmp), stdout=out, stderr=subprocess.STDOUT
            )
            # wait4 returns the CPU time of nvcc and every compiler pass it waited for: on a
            # shared machine that, not the wall time, says what the file costs to compile
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            text = out.read()
        log.unlink()
        result.seconds = time.time() - t
        result.cpu_seconds = usage.ru_utime + usage.ru_stime
        if proc.returncode:
            result.error = text[-4000:]
            return result
        tmp.replace(obj)
    result.compiled = True
    inspect(result, obj, cuobjdump)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", help="comma-separated configuration names, or 'none' (default: all)"
    )
    parser.add_argument("--dtypes", default="bf16,fp16", help="comma-separated: bf16,fp16")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "block-shock-bench" / "sm90_sass",
        help="folder of compiled objects, keyed by what they depend on",
    )
    parser.add_argument("--no-compressor", action="store_true", help="skip the compressor file")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    nvcc, cuobjdump, include = tools()
    release = sm90_24.nvcc_version(nvcc)
    names = args.configs.split(",") if args.configs else [c.name for c in sm90_24.CONFIGS]
    names = [] if args.configs == "none" else names
    unknown = [n for n in names if n.strip() not in sm90_24.CONFIG_BY_NAME]
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {sorted(sm90_24.CONFIG_BY_NAME)}")
    configs = [sm90_24.CONFIG_BY_NAME[n.strip()] for n in names]
    dtypes = [d.strip() for d in args.dtypes.split(",")]
    args.cache.mkdir(parents=True, exist_ok=True)
    gen = Path(tempfile.mkdtemp(prefix="sm90_sass_"))
    sm90_24.write_sources(gen, configs)
    results = [
        Result(c.name, d, str(gen / f"sm90_24_{c.name}_{d}.cu")) for c in configs for d in dtypes
    ]
    if not args.no_compressor:
        results.append(
            Result("compressor", "bf16+fp16", str(sm90_24.SOURCE_DIR / "sm90_24_compress.cu"))
        )
    print(
        f"nvcc {release} ({nvcc}), CUTLASS {include}, {len(results)} files, {args.jobs} jobs",
        flush=True,
    )
    start = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        done = pool.map(
            lambda r: compile_one(r, nvcc, cuobjdump, include, args.cache, release), results
        )
        for r in done:
            state = "cached" if r.cached else f"{r.seconds:6.1f} s wall, {r.cpu_seconds:6.1f} s CPU"
            print(f"  compiled {r.name} {r.dtype}: {state}", flush=True)
    wall = time.time() - start

    print(f"\n{'configuration':<28} {'dtype':<9} {'ok':<4} {'CPU s':>6} {'regs':>5} "
          f"{'stack':>5} {'local':>5}  HGMMA opcodes (count)")  # fmt: skip
    for r in results:
        secs = "cached" if r.cached else f"{r.cpu_seconds:.0f}"
        ops = ", ".join(f"{op} x{n}" for op, n in r.hgmma.items()) or "-"
        if r.error:
            ops = "COMPILE FAILED: " + r.error.strip().splitlines()[-1][:120]
        print(
            f"{r.name:<28} {r.dtype:<9} {'yes' if r.ok else 'NO':<4} {secs:>6} "
            f"{r.registers if r.registers is not None else '-':>5} "
            f"{r.stack if r.stack is not None else '-':>5} "
            f"{r.local if r.local is not None else '-':>5}  {ops}"
        )
    compiled = [r for r in results if not r.cached and r.compiled]
    cpu = [r.cpu_seconds for r in compiled]
    if cpu:
        print(
            f"\nwall {wall:.0f} s on {args.jobs} jobs; {len(compiled)} files compiled now: "
            f"{sum(cpu):.0f} CPU s in all, {min(cpu):.0f}-{max(cpu):.0f} s a file (the longest "
            f"bounds a parallel build's wall time on enough free cores)"
        )
    failed = [r for r in results if not r.ok]
    for r in failed:
        why = "compile failed" if not r.compiled else "no HGMMA.SP or a dense HGMMA in the SASS"
        print(f"FAILED {r.name} {r.dtype}: {why}")
        if r.error:
            print(r.error)
    if args.json:
        doc = {
            "nvcc": release,
            "cutlass_include": str(include),
            "flags": list(sm90_24.NVCC_FLAGS),
            "jobs": args.jobs,
            "wall_s": wall,
            "results": [asdict(r) | {"ok": r.ok} for r in results],
        }
        args.json.write_text(json.dumps(doc, indent=1))
    print("OK: every configuration issues HGMMA.SP" if not failed else f"{len(failed)} FAILED")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
