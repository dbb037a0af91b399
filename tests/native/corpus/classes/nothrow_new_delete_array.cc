/* expect: SIGABRT "alloc-dealloc-mismatch (operator new vs operator delete [])" "allocated at:"
 * A nothrow new released with delete[].
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <cstdio>
#include <new>

__attribute__((noinline)) static long *make() { return new (std::nothrow) long(5); }

int main()
{
    long *p = make();
    std::printf("%ld\n", *p);
#ifdef TWIN
    delete p;
#else
    delete[] p;
#endif
    return 0;
}
