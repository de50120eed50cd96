"""The pytest plugin (conftest.py loads it): options, hooks, fixtures and stop signals, a module
each."""

pytest_plugins = [
    "measure.plugin.options",
    "measure.plugin.hooks",
    "measure.plugin.fixtures",
    "measure.plugin.signals",
]
