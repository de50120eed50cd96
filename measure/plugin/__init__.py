"""The pytest plugin (conftest.py loads it): options, hooks and fixtures, a module each."""

pytest_plugins = [
    "measure.plugin.options",
    "measure.plugin.hooks",
    "measure.plugin.fixtures",
    "measure.plugin.machine",
    "measure.plugin.gate",
]
