"""How it is measured: matrix, process groups, timers, meters, checks, records, the plugin."""
