"""The front ends that guard memory guardalloc does not hand out itself:
numpy's allocations (``numpy``, NEP 49), the interpreter's (``pymem``) and
every ``malloc`` of a process (``preload``: the LD_PRELOAD library).

Their public paths are ``guardalloc.numpy``, ``guardalloc.pymem`` and
``guardalloc.native``, which name these same modules.
"""
