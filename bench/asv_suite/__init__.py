"""asv benchmarks: a thin shim over the harness's cells (benchmarks.json's `asv` suite)."""
