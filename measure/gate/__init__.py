"""Comparing two runs: may their times be compared (machine.py), and did a cell get slower
(regression.py). Torch-free: `python -m measure.gate OLD.json NEW.json` reads pytest-benchmark
files anywhere; the pytest options are in measure/plugin/gate.py and machine.py."""
