"""What is shown: tables, plots and verdicts built from the harness's own result files."""
