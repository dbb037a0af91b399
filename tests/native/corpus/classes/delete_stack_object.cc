/* expect: SIGABRT "bad-free" "is on the stack of thread" "freed by operator delete"
 * delete of an object that lives on the stack.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <cstdio>

struct Point { long x, y; };

__attribute__((noinline)) static void release(Point *p) { delete p; }

int main()
{
#ifdef TWIN
    Point *p = new Point{1, 2};
#else
    Point local{1, 2};
    Point *p = &local;
#endif
    std::printf("%ld\n", p->x + p->y);
    release(p);
    return 0;
}
