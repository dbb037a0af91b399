"""The ``guardalloc`` command (``python -m guardalloc``): ``main`` routes to
one module per command (``run``, ``demo``, ``maps``; ``exec`` lives with the
preload library, ``bench`` with the benchmark suite)."""
