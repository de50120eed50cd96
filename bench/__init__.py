"""The cells: parametrized pytest tests generated from benchmarks.json."""
