"""Looking at guard pages from outside the allocator: what the kernel and
sandbox allow (``probe``), guard pages in the page tables (``pagemap``) and a
process's VMAs with its guards (``maps``, public as ``guardalloc.maps``).
"""
