"""Root conftest: the Block-Shock bench plugin (options, fixtures, cells) lives in measure/;
pytester lets the unit tests drive it as a user would."""

pytest_plugins = ["measure.plugin", "pytester"]
