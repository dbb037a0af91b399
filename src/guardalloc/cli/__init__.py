"""The ``guardalloc`` command (``python -m guardalloc``): ``main`` routes to
one module per command (``run``, ``exec``, ``demo``, ``maps``; ``bench``
lives with the benchmark suite). ``native_flags`` makes the flags of the
native library's options, which ``exec`` and ``run`` share."""
