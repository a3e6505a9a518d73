"""Triton kernels and their launchers (installed as ``wdsr_fast.kernels``)."""
