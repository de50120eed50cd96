"""What is measured: the masks and the linear-layer methods compared by the harness."""
