"""The pytest plugin (conftest.py loads it): options, hooks, fixtures, machine info, the
regression gate and stop signals, a module each."""

pytest_plugins = [
    "measure.plugin.options",
    "measure.plugin.hooks",
    "measure.plugin.fixtures",
    "measure.plugin.machine",
    "measure.plugin.gate",
    "measure.plugin.signals",
]
