#!/usr/bin/env bash
# Pack the CUTLASS headers the sm90 2:4 backend needs into .cutlass/cutlass_include.tar.xz, for a
# GPU machine that has nvcc but neither the nvidia-cutlass wheel nor the network.
#
# Why a tarball: CUTLASS's include/ folder is 26 MB and the tree that travels to a GPU machine is
# capped at 64 MiB; compressed it is about 1.0 MB (measured, CUTLASS 4.2.0.0). The backend
# (kernels/sm90_24.cutlass_include) unpacks it into .cutlass/include on first use.
#
#   scripts/pack_cutlass_headers.sh          # include/cute and include/cutlass whole: ~1.0 MB
#   scripts/pack_cutlass_headers.sh --deps   # only the headers the sources reach: ~0.75 MB
#
# --deps finds them exactly: nvcc --dryrun gives the host and the device (sm_90a) preprocessing
# commands of every generated kernel file, the compressor and the host reference; each is rerun
# with -M and the union of the dependencies under CUTLASS's include folder is packed (489 files,
# 15 MB unpacked). It saves a quarter of a megabyte and risks a header that another nvcc's
# preprocessor reaches and this one did not, so the whole folder is the default.
#
# The folder is git-ignored by its own .cutlass/.gitignore ("*"), so it is never committed and no
# repository config is touched; carry it to the GPU machine explicitly (run's carry:
# [".cutlass"]). Finds nvcc and CUTLASS the way the backend does ($CUDA_HOME, PATH, ...;
# $BS_CUTLASS_INCLUDE, the nvidia-cutlass wheel). Prints the file count and sizes at the end.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python}
dest="$root/.cutlass"

found=$("$python" - "${1:-}" <<'EOF'
import sys
from pathlib import Path
from kernels import sm90_24
inc, why = sm90_24.cutlass_include(unpack=False)
nvcc = sm90_24.find_nvcc()
if inc is None:
    raise SystemExit(f"pack_cutlass_headers: {why}")
if sys.argv[1] == "--deps" and nvcc is None:
    raise SystemExit("pack_cutlass_headers: --deps needs nvcc (set CUDA_HOME or PATH)")
if Path(inc).resolve().is_relative_to((sm90_24.ROOT / ".cutlass").resolve()):
    raise SystemExit("pack_cutlass_headers: the headers found are .cutlass's own; set "
                     "BS_CUTLASS_INCLUDE to the full CUTLASS include folder")
print(nvcc or "none", inc)
EOF
)
read -r nvcc include <<< "$found"
echo "CUTLASS: $include"
echo "nvcc:    $nvcc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/include"

if [[ "${1:-}" != "--deps" ]]; then
  cp -r "$include/cute" "$include/cutlass" "$work/include/"
else
  "$python" -c "
from pathlib import Path
from kernels import sm90_24
sm90_24.write_sources(Path('$work/gen'))
"
  flags=$("$python" -c "from kernels import sm90_24; print(' '.join(sm90_24.NVCC_FLAGS))")
  sources=("$work"/gen/*.cu "$root"/kernels/sm90/sm90_24_compress.cu
           "$root"/kernels/sm90/sm90_24_host_reference.cu)
  : > "$work/deps"
  for src in "${sources[@]}"; do
    # shellcheck disable=SC2086
    "$nvcc" --dryrun -c -o "$work/x.o" "$src" $flags -I"$root/kernels/sm90" -I"$work/gen" \
      -I"$include" 2>&1 | sed -n 's/^#\$ //p' | grep -E '^(gcc|g\+\+|c\+\+|cc|clang\+\+?) .* -E ' \
      > "$work/pre" || true
    if [[ ! -s "$work/pre" ]]; then
      echo "pack_cutlass_headers: no preprocessing command in nvcc --dryrun for $src" >&2
      exit 1
    fi
    while IFS= read -r cmd; do
      (cd "$work" && bash -c "$cmd -M -MF /dev/stdout") | tr ' \\' '\n\n' \
        | sed -n "s#^$include/##p" >> "$work/deps"
    done < "$work/pre"
  done
  echo "cutlass/version.h" >> "$work/deps"  # the build key reads it
  (cd "$include" && sort -u "$work/deps" | xargs cp --parents -t "$work/include")
fi

rm -rf "$dest"
mkdir -p "$dest"
printf '*\n' > "$dest/.gitignore"
tar -C "$work" -cJf "$dest/cutlass_include.tar.xz" include
files=$(find "$work/include" -type f | wc -l)
raw=$(du -sh --apparent-size "$work/include" | cut -f1)
packed=$(du -sh --apparent-size "$dest/cutlass_include.tar.xz" | cut -f1)
{
  echo "source: $include"
  echo "mode: ${1:---full}"
  echo "files: $files"
  echo "unpacked: $raw"
  echo "tar.xz: $packed"
} > "$dest/MANIFEST.txt"
echo "packed $files headers ($raw) into $dest/cutlass_include.tar.xz ($packed);"
echo "git-ignored; carry .cutlass to the GPU machine (the backend unpacks it on first use)"
