/* expect: SIGABRT "alloc-dealloc-mismatch (operator new [] vs realloc)" "allocated at:" "freed at:"
 * new[] resized with realloc.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <cstdio>
#include <cstdlib>

__attribute__((noinline)) static int *make()
{
#ifdef TWIN
    return static_cast<int *>(std::malloc(4 * sizeof(int)));
#else
    return new int[4];
#endif
}

int main()
{
    int *p = make();
    p[0] = 3;
    p = static_cast<int *>(std::realloc(p, 64 * sizeof(int)));
    std::printf("%d\n", p[0]);
    std::free(p);
    return 0;
}
