"""What kernels/, measure/, bench/ and reports/ all share: the project's exceptions and dtype
tables. It imports nothing of the project, so kernels/ never needs measure/ (or the reverse)."""
