// Every form of the C++ operators the library defines, used correctly: the
// blocks are guarded (at sample_rate=1), aligned as asked, and a request no
// allocator can serve throws std::bad_alloc (or gives NULL for nothrow).
// Prints "ok" and exits 0, or names the failed check and exits 1.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <new>

#define CHECK(c) \
    do { if (!(c)) { std::printf("FAILED line %d: %s\n", __LINE__, #c); std::exit(1); } } while (0)

struct alignas(64) Wide { char bytes[100]; };
struct Plain { long a, b, c; };

int main()
{
    auto owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "guardalloc_native_owns");
    CHECK(owns != nullptr);
    Plain *p = new Plain{1, 2, 3};              // _Znwm, sized delete _ZdlPvm
    CHECK(owns(p) && p->c == 3);
    delete p;
    Plain *a = new Plain[5];                    // _Znam, _ZdaPv (trivial: unsized)
    CHECK(owns(a));
    delete[] a;
    Wide *w = new Wide;                         // _ZnwmSt11align_val_t
    CHECK(owns(w) && ((uintptr_t)w % 64) == 0);
    delete w;                                   // _ZdlPvmSt11align_val_t
    Wide *wa = new Wide[3];                     // _ZnamSt11align_val_t
    CHECK(owns(wa) && ((uintptr_t)wa % 64) == 0);
    delete[] wa;                                // _ZdaPvSt11align_val_t
    int *n = new (std::nothrow) int(7);         // _ZnwmRKSt9nothrow_t
    CHECK(n != nullptr && owns(n) && *n == 7);
    delete n;
    int *na = new (std::nothrow) int[9];        // _ZnamRKSt9nothrow_t
    CHECK(na != nullptr && owns(na));
    delete[] na;
    Wide *wn = new (std::nothrow) Wide;         // aligned nothrow
    CHECK(wn != nullptr && ((uintptr_t)wn % 64) == 0);
    delete wn;
    operator delete(operator new(10, std::nothrow), std::nothrow);
    operator delete[](operator new[](10, std::nothrow), std::nothrow);
    operator delete(operator new(10, std::align_val_t(128)), std::align_val_t(128), std::nothrow);
    operator delete[](operator new[](10, std::align_val_t(32), std::nothrow), std::align_val_t(32),
                      std::nothrow);
    // Too big for any allocator: the next operator new throws.
    volatile size_t huge = SIZE_MAX / 4;
    bool thrown = false;
    try {
        char *never = new char[huge];
        delete[] never;
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown);
    CHECK(new (std::nothrow) char[huge] == nullptr);
    std::puts("ok");
    return 0;
}
