# ---------------------------------------------------------------------------
# The default pool behind guardalloc.alloc()

cdef Pool _default_pool = None
_default_options = {}
_default_lock = threading.Lock()


def configure(**options) -> None:
    """Set the options of the default pool behind :func:`alloc` (those of
    :class:`Pool`: ``max_bytes``, ``guard_pages``, ``uaf``, ...), for
    example ``guardalloc.configure(max_bytes=1 << 30)`` under a tight
    ``RLIMIT_AS``. Takes effect at once: the next :func:`alloc` uses a new
    default pool; buffers from the previous one keep working (each keeps
    its pool alive). ``configure()`` with no options restores the defaults.

    Raises:
        TypeError, ValueError: an unknown option or a bad value (named).
        AddressSpaceError: the new pool's reservation does not fit.
        GuardUnsupportedError: as :class:`Pool`.
    """
    global _default_pool, _default_options
    check_option_names(options, _POOL_OPTIONS, "guardalloc.configure()")
    try:
        pool = Pool(**options)
    except AddressSpaceError as exc:
        raise exc.instead("guardalloc.configure()") from None
    with _default_lock:
        _default_pool = pool
        _default_options = dict(options)


def default_pool() -> Pool:
    """The pool behind :func:`alloc`, created on first use with the options
    of :func:`configure` (defaults: those of :class:`Pool`).

    Raises:
        AddressSpaceError: its reservation does not fit (the message names
            the ``guardalloc.configure(max_bytes=...)`` that would).
    """
    global _default_pool
    if _default_pool is None or _default_pool.is_closed:
        with _default_lock:
            if _default_pool is None or _default_pool.is_closed:
                try:
                    _default_pool = Pool(**_default_options)
                except AddressSpaceError as exc:
                    raise exc.instead("guardalloc.configure() before guardalloc.alloc()") from None
    return _default_pool


def alloc(nbytes, *, zero=True):
    """A guarded :class:`guardalloc.Buffer` of any size (1 byte to 3.5 GiB)
    from the default pool: ``default_pool().alloc(nbytes, zero=zero)``;
    :func:`configure` sets that pool's options.

    Raises:
        TypeError, ValueError, MemoryError: as :meth:`Pool.alloc`.
        AddressSpaceError: as :func:`default_pool`.
    """
    return default_pool().alloc(nbytes, zero=check_bool("zero", zero))
