/* expect: SIGABRT "alloc-dealloc-mismatch (malloc vs operator delete)" "allocated at:" "freed at:"
 * malloc released with delete.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <cstdio>
#include <cstdlib>
#include <cstring>

__attribute__((noinline)) static int *make() { return static_cast<int *>(std::malloc(40)); }

int main()
{
    int *p = make();
    std::memset(p, 1, sizeof(*p));
    std::printf("%d\n", (int)*p);
#ifdef TWIN
    std::free(p);
#else
    delete p;
#endif
    return 0;
}
