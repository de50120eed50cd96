"""The 2:4 backends: one module per backend, each a `Backend` (base.py) that builds a half.

Their names, labels and defaults are in kernels/registry.py, which imports these modules on
first use; adding one is a module here (or anywhere, as an extension) and one
`register_backend(BackendSpec(...))`.
"""
