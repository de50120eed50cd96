"""What kernels/, measure/, bench/ and reports/ all share: the project's exceptions, the cell
(CellSpec), how a cell can end (outcomes), what each phase is (phases), the record schema
(schema/) and the dtype tables. It imports nothing else of the project, so kernels/ never needs
measure/ (or the reverse); everything here but dtypes.py is torch-free, so the reports read
records and phases without torch."""
