/*
 * The capture's unwinder against libgcc's where C++ exceptions are in
 * flight (tests/test_unwinder.py): in destructors run while an exception
 * unwinds the stack (libgcc's own _Unwind_RaiseException frames are on it),
 * in catch blocks, and after a rethrow. Prints "compared N" or exits 1.
 */
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

extern "C" int compare_unwinders(int *compared);

static int failures, compared_total;

static void check()
{
    int compared = 0;
    failures += compare_unwinders(&compared);
    compared_total += compared;
}

struct Checker {
    ~Checker() { check(); }
};

__attribute__((noinline)) static void thrower(int depth)
{
    Checker c;
    if (depth == 0)
        throw std::runtime_error("bottom");
    thrower(depth - 1);
}

__attribute__((noinline)) static void rethrower(int depth)
{
    try {
        thrower(depth);
    } catch (const std::runtime_error &) {
        check();
        throw;
    }
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? std::atoi(argv[1]) : 5;
    for (int i = 0; i < 3; i++) {
        try {
            rethrower(depth + i);
        } catch (const std::exception &) {
            check();
        }
    }
    std::printf("compared %d\n", compared_total);
    return failures != 0;
}
