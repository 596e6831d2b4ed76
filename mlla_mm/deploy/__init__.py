"""Export beyond PyTorch (ONNX). Imports nothing optional at import time: ``onnx`` and
``onnxruntime`` (``pip install mlla-mm[deploy]``) are needed only when exporting."""
