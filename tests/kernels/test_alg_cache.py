"""The on-disk cuSPARSELt alg cache: one answer per machine and shape, robust to bad files."""

import json

import torch

from kernels import alg_cache


def test_store_then_lookup_per_key(tmp_path):
    path = tmp_path / "sub" / "algs.json"
    k1 = alg_cache.key("GPU A", torch.bfloat16, 256, 256, 64)
    k2 = alg_cache.key("GPU A", torch.bfloat16, 256, 256, 1024)
    assert alg_cache.lookup(path, k1) is None  # no file yet
    alg_cache.store(path, k1, 13)
    alg_cache.store(path, k2, 7)
    assert alg_cache.lookup(path, k1) == 13
    assert alg_cache.lookup(path, k2) == 7
    assert [p.name for p in path.parent.iterdir()] == ["algs.json"]  # no temporary left behind


def test_key_names_the_library_versions_dtype_and_shape():
    k = alg_cache.key("NVIDIA H100 80GB HBM3", torch.bfloat16, 512, 256, 64)
    assert "NVIDIA H100 80GB HBM3" in k and "bfloat16" in k and "512x256" in k and "B64" in k
    assert f"cusparselt {torch.backends.cusparselt.version()}" in k
    assert f"torch {torch.__version__}" in k
    assert k != alg_cache.key("NVIDIA H100 80GB HBM3", torch.float16, 512, 256, 64)


def test_a_torn_or_foreign_file_reads_as_empty_and_is_rewritten(tmp_path):
    path = tmp_path / "algs.json"
    k = alg_cache.key("GPU", torch.bfloat16, 128, 128, 8)
    path.write_text('{"half a write')
    assert alg_cache.lookup(path, k) is None
    path.write_text(json.dumps({k: "not an id"}))
    assert alg_cache.lookup(path, k) is None
    alg_cache.store(path, k, 3)
    assert json.loads(path.read_text()) == {k: 3}


def test_environment_picks_the_file_or_switches_it_off(monkeypatch, tmp_path):
    monkeypatch.setenv(alg_cache.ENV, str(tmp_path / "x.json"))
    assert alg_cache.cache_path() == tmp_path / "x.json"
    monkeypatch.setenv(alg_cache.ENV, "off")
    assert alg_cache.cache_path() is None
    monkeypatch.delenv(alg_cache.ENV)
    assert alg_cache.cache_path().name == "cslt_algs.json"


def test_a_cusparselt_choice_round_trips_through_its_name_with_the_searched_mode():
    """The cache keeps an alg by its name and the run passes it back: the split-K mode must
    survive as the search returned it (0 is cuSPARSELt's INVALID_MODE; a bool lost 2..6)."""
    from kernels.backends.cslt import SPLIT_K_MODES, Alg

    algs = [Alg(17), Alg(20, -1, 1), Alg(3, 4, 2), Alg(5, 2, 6), Alg(1, 8, 9)]
    names = [a.name for a in algs]
    assert names[:3] == ["17", "20 split-K -1 one kernel", "3 split-K 4 two kernels"]
    assert names[4] == "1 split-K 8 mode 9"
    assert [Alg.parse(n) for n in names] == algs
    assert 0 not in SPLIT_K_MODES
