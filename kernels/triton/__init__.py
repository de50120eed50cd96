"""This project's Triton kernels on its compressed 2:4 format (kernels/format24.py): the GEMM
(gemm24) and its tuner (tune24), the one-pass compress, select and place (compress24) and the
SDDMM that writes a 2:4 half's grad_W (sddmm24). Each runs on CPU under TRITON_INTERPRET=1."""
