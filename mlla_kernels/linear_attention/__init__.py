"""MLLA's linear attention with its RoPE, normaliser, LePE and output gate as one operation.
Backends: ``naive`` (the layer's formulation in PyTorch ops, the reference), ``torch`` (the
same ops: what runs on a GPU), ``numba`` (fused CPU kernels, recompute backward). See
:func:`mlla_kernels.linear_attention`."""
