/* A guard page with no live buffer on either side. */
#include "harness.h"

int main(int argc, char **argv)
{
    ga_arena_t a;
    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_RIGHT, ga_test_backend(argc, argv), -1);
    ga_test_reports();
    ((volatile char *)a.base)[2 * a.stride] = 1;
    return 0;
}
