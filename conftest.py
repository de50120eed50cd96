"""Root conftest: the Block-Shock bench plugin (options, fixtures, cells) lives in measure/."""

pytest_plugins = ["measure.plugin"]
