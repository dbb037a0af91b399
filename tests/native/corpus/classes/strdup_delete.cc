/* expect: SIGABRT "alloc-dealloc-mismatch (malloc vs operator delete)" "allocated at:" "freed at:"
 * strdup (malloc) released with delete.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <cstdio>
#include <cstdlib>
#include <cstring>

__attribute__((noinline)) static char *make() { return strdup("mismatch"); }

int main()
{
    char *p = make();
    std::memset(p, 1, 4);
    std::printf("%d\n", (int)*p);
#ifdef TWIN
    std::free(p);
#else
    delete p;
#endif
    return 0;
}
