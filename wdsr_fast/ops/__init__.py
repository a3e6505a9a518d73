"""Custom ops of the ``wdsr_fast`` namespace: registration, fake implementations, autograd,
autocast and argument checks. Importing this package registers every op:

- ``wdsr_b_block``, ``wdsr_b_block_backward``, ``wdsr_a_block``, ``wdsr_a_block_backward``:
  the fused residual blocks (Triton kernels, imported on first call);
- ``pixel_shuffle``, ``pixel_unshuffle``, ``shuffle_add_affine``: the C++/CUDA extension's ops
  (schemas and kernels in ``csrc/``; fakes and autograd here), when the extension loaded.
"""

from wdsr_fast.ops import pixel_shuffle, wdsr_a_block, wdsr_b_block

__all__ = ["pixel_shuffle", "wdsr_a_block", "wdsr_b_block"]
