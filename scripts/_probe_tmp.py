import sys

import torch

dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[sys.argv[1]]
n_out, n_in, b = map(int, sys.argv[2:5])
w = torch.randn(n_out, n_in, device="cuda").to(dt)
m = torch.tensor([1, 1, 0, 0], device="cuda", dtype=torch.bool).repeat(n_out, n_in // 4)
p = torch._cslt_compress(w * m)
x = torch.randn(b, n_in, device="cuda").to(dt)
r = ""
try:
    y = torch._cslt_sparse_mm(p, x.t(), transpose_result=True)
    ref = x.double() @ (w * m).double().t()
    r += f" mm alg0 ok err {((y.double() - ref).norm() / ref.norm()).item():.2e}"
    a = torch._cslt_sparse_mm_search(p, x.t(), transpose_result=True)
    r += f" search alg {a}"
except Exception as e:
    r += " ERR " + str(e)[:60]
print(sys.argv[1:], r, flush=True)
