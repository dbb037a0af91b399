# What a free is given and what it answers, for Arena, Buffer and the Pool:
# the address argument (also of owns, slot_of, block_size), and the one map
# from the C core's free results (GA_ERR_*) to exceptions. Included by
# arena.pyx.

cdef int raise_free_error(Arena arena, int code, size_t address, ga_damage_t *damage,
                          object what) except -1:
    cdef int err = errno   # before any Python call can change it
    cdef ga_arena_t *a = &arena.a
    cdef long index = ga_slot_of(a, <void *><uintptr_t>address)
    slot = None if index < 0 else index
    if what is None:
        what = f"address {address:#x}"
    elif not isinstance(what, str):
        what = repr(what)
    if code == GA_ERR_FOREIGN:
        raise ForeignBufferError(f"{what} is not in this arena ({arena!r})", address, None)
    if code == GA_ERR_DOUBLE:
        raise DoubleFreeError(f"double free of {what} (slot {slot})", address, slot)
    if code == GA_ERR_OWNED:
        raise InvalidFreeError(
            f"{what} is the start of slot {slot}'s Buffer object: free the Buffer, not its address",
            address, slot)
    if code == GA_ERR_INVALID:
        raise InvalidFreeError(
            f"invalid free of {what}: not the start of a live buffer "
            f"(slot {slot}, {_STATE_NAMES[a.slots[index].state] if index >= 0 else 'outside every slot'})",
            address, slot)
    if code == GA_ERR_CORRUPT:
        nbytes = a.slots[index].nbytes
        raise CorruptionError(
            f"heap corruption in {what}: {damage.damaged} slack byte(s) past the end of the "
            f"{nbytes}-byte buffer were overwritten, the first at offset {damage.first_offset} "
            f"({damage.first_offset - nbytes} bytes past the end); the buffer was freed",
            address, slot, nbytes, damage.first_offset, damage.damaged)
    raise GuardInstallError(err, f"{what} was freed, but installing its use-after-free guard failed: "
                                 f"{strerror(err).decode()}{einval_hint(err, arena.fd_ >= 0)}")


def _address(value, str name="address") -> object:
    """An address argument as an int in [0, 2**64), or None when it cannot be
    an address at all (negative or too large: owned by nobody).

    Raises:
        TypeError: not an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = value.__index__()
        except (AttributeError, TypeError):
            raise TypeError(f"{name} must be an integer address, not {type(value).__name__}") from None
    if not 0 <= value < 2 ** 64:
        return None
    return value
