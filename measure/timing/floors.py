"""Each method's floor on this machine: the fewest bytes and FLOPs per rank over its ceilings.

Per rank, per forward (bf16/fp16 element size s, weight N_out x N_in, batch B, R ranks):
| method               | weight bytes read       | FLOPs              | collective        |
| dense_single         | s N_out N_in            | 2 B N_in N_out     | none              |
| dense_tp_row/_interl.| s N_out N_in / R        | 2 B N_in N_out / R | all-reduce of Y   |
| dense_tp_col         | s N_out N_in / R        | 2 B N_in N_out / R | all-gather of Y   |
| masked_split_dense   | s N_out N_in            | 2 B N_in N_out     | all-reduce of Y   |
| block_shock          | s N_out N_in * 9/16     | B N_in N_out       | all-reduce of Y   |
(X and Y traffic is added too; each method's shares are its WorkModel in kernels/registry.py.)
The 2:4 half keeps half the values plus 2-bit indices: 9/16 of the dense bytes at 16-bit values.
Its FLOPs are the useful (nonzero) half of the dense product, counted at the dense rate: the
sparse tensor cores run the dense-shaped product at best at twice the dense rate, which is the
same time: at large B a tie with TP. At small B Block-Shock's floor is 9/8 of TP's. The floor is
max(bytes/bandwidth, FLOPs/rate), plus the collective's bytes over its measured bus bandwidth
(no overlap assumed: the methods run the collective after the GEMM).
"""

from __future__ import annotations

from dataclasses import asdict

from kernels.registry import spec


def work(method: str, n_in: int, n_out: int, batch: int, elem: int, ws: int) -> dict:
    """Bytes, FLOPs and collective bytes one rank must move per forward (the method's spec)."""
    return asdict(spec(method).work(n_in, n_out, batch, elem, ws))


def floor(method, n_in, n_out, batch, elem, ws, ceilings: dict) -> dict:
    """Floor seconds per forward and its parts, from this machine's measured ceilings."""
    w = work(method, n_in, n_out, batch, elem, ws)
    t_mem = w["bytes"] / ceilings["copy_bytes_per_s"]
    t_math = w["flops"] / ceilings["matmul_flop_per_s"]
    t_coll = 0.0
    if w["collective"] == "all_reduce":
        t_coll = w["collective_bytes"] * 2 * (ws - 1) / ws / ceilings["all_reduce_bus_bytes_per_s"]
    elif w["collective"] == "all_gather":
        t_coll = w["collective_bytes"] * (ws - 1) / ws / ceilings["all_gather_bus_bytes_per_s"]
    t_compute = max(t_mem, t_math)
    return {
        "floor_s": t_compute + t_coll,
        "floor_compute_s": t_compute,
        "floor_collective_s": t_coll,
        "bound": "memory" if t_mem >= t_math else "math",
        "bytes_per_rank": w["bytes"],
        "flops_per_rank": w["flops"],
    }
