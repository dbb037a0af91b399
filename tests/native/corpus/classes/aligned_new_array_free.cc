/* expect: SIGABRT "alloc-dealloc-mismatch (operator new [] vs free)" "allocated at:" "freed at:"
 * An over-aligned new[] (C++17 aligned operator new[]) released with free.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct alignas(64) Line { char bytes[64]; };

__attribute__((noinline)) static Line *make() { return new Line[4]; }

int main()
{
    Line *p = make();
    std::memset(p, 1, sizeof(Line) * 4);
    std::printf("%d\n", (int)p[3].bytes[63]);
#ifdef TWIN
    delete[] p;
#else
    std::free(p);
#endif
    return 0;
}
