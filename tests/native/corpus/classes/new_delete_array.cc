/* expect: SIGABRT "alloc-dealloc-mismatch (operator new vs operator delete [])" "allocated at:" "freed at:"
 * new released with delete[].
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <cstdio>
#include <cstdlib>
#include <cstring>

__attribute__((noinline)) static int *make() { return new int; }

int main()
{
    int *p = make();
    std::memset(p, 1, sizeof(*p));
    std::printf("%d\n", (int)*p);
#ifdef TWIN
    delete p;
#else
    delete[] p;
#endif
    return 0;
}
