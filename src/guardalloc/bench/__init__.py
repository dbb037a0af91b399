"""The ``bench`` command: guard costs against mprotect and no guards
(``guard_costs``, its plots in ``plots``), the timing toolkit (``timing``)
and the malloc library beside its peers (``peers``). Imported only when the
command runs."""
