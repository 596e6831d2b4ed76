"""Run-time helpers of the tools and the models (the analysis tools are in
:mod:`mlla_mm.analysis`).

* :mod:`.launch` -- config loading for ``tools/train.py``/``test.py``: ``--data-root``,
  ``--cfg-options``, work dirs, AMP, the codebase from ``default_scope``;
* :mod:`.package_configs` -- ``mlla_mm::NAME.py`` config names;
* :mod:`.checkpoint` -- reading checkpoints and loading pretrained weights into backbones;
* :mod:`.pretrained_zoo` and :mod:`.download` -- the table of official checkpoints and
  their verified download (``tools/download_checkpoints.py``);
* :mod:`.inference` and :mod:`.visualize` -- a trained model on images, and pictures of
  its predictions (``tools/infer.py``, ``tools/demo.py``).
"""
