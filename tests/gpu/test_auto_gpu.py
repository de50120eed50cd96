"""The auto backend and cuSPARSELt's split-K on a real GPU (`python -m pytest -m gpu tests`).

What the CPU suite cannot show: that auto builds and times the candidates that run here, keeps
only those that pass its float64 check, returns the winner's own half (correct against float64)
and caches the pick; that a candidate computing a wrong product is refused however fast it is;
and that every split-K form of cuSPARSELt the search may return computes the same product.
"""

from __future__ import annotations

import pytest
import torch

from common.dtypes import UNIT_ROUNDOFF

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)"),
]

N, B = 4096, 64


def _masked(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    from kernels.masks import make_mask_pair

    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, n, generator=gen)
    mask, _ = make_mask_pair("random_2of4", w, gen)
    return (w * mask).to(dtype).cuda()


def _rel(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.double() - ref).norm() / ref.norm())


@pytest.fixture
def auto_cache(tmp_path, monkeypatch):
    path = tmp_path / "auto.json"
    monkeypatch.setenv("BS_AUTO_CACHE", str(path))
    for env in ("BS_CSLT_ALG_CACHE", "BS_TRITON24_CACHE", "BS_SM90_24_CACHE"):
        monkeypatch.setenv(env, str(tmp_path / f"{env}.json"))
    return path


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_auto_returns_a_checked_candidate_and_caches_its_pick(auto_cache, dtype):
    from kernels import registry

    w = _masked(N, dtype, 1)
    x = torch.randn(B, N, device="cuda").to(dtype)
    half = registry.backend("auto").build(w, None, x, "auto test")
    picked = half.record.backend
    assert picked in registry.auto_candidates()
    assert half.record.alg_source.startswith(f"auto: {picked} fastest in CUDA graphs of ")
    ref = x.double() @ w.double().t()
    assert _rel(half.mm(x), ref) <= UNIT_ROUNDOFF[dtype]
    assert auto_cache.is_file() and picked in auto_cache.read_text()
    again = registry.backend("auto").build(w, None, x, "auto test")
    assert again.record.backend == picked and "cached in" in again.record.alg_source


def test_a_fast_candidate_with_a_wrong_product_is_refused(auto_cache, monkeypatch):
    """Every candidate but one is planted 1% off (> bf16's unit roundoff, 0.39%): auto must
    choose the correct one and name each refusal in the record."""
    from kernels import registry

    here = torch.device("cuda")
    runs = [n for n in registry.auto_candidates() if registry.backend(n).available(here) is None]
    if len(runs) < 2:
        pytest.skip(f"needs two auto candidates that run here, found {runs}")
    good = runs[0]
    for name in runs[1:]:
        backend = registry.backend(name)
        build = backend.build

        def wrong_build(w, bias, x, where, build=build):
            half = build(w, bias, x, where)
            mm_into = half.mm_into
            half.mm_into = lambda x, out, f=mm_into: f(x, out).mul_(1.01)
            return half

        monkeypatch.setattr(backend, "build", wrong_build)
    w = _masked(N, torch.bfloat16, 2)
    x = torch.randn(B, N, device="cuda").bfloat16()
    half = registry.backend("auto").build(w, None, x, "auto test")
    assert half.record.backend == good
    for name in runs[1:]:
        assert f"{name} refused: rel error" in half.record.alg_source


@pytest.mark.parametrize("n, batch", [(8192, 16), (16384, 64)])
def test_the_searched_cusparselt_alg_and_every_split_k_form_compute_the_product(
    auto_cache, n, batch
):
    from kernels import registry
    from kernels.backends.cslt import Alg

    w = _masked(n, torch.bfloat16, 3)
    x = torch.randn(batch, n, device="cuda").bfloat16()
    ref = x.double() @ w.double().t()
    half = registry.backend("cslt").build(w, None, x, "split-K test")
    assert half.record.alg_source == "search"
    assert Alg.parse(half.record.alg_id).name == half.record.alg_id
    assert _rel(half.mm(x), ref) <= UNIT_ROUNDOFF[torch.bfloat16]
    for alg in (Alg(0, 2, True), Alg(0, 4, True), Alg(0, 4, False)):
        half.use_alg((alg, "given", None))
        assert _rel(half.mm(x), ref) <= UNIT_ROUNDOFF[torch.bfloat16], alg.name
