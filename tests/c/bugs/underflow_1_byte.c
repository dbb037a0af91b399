/* One byte before the start of a left-aligned buffer: the guard. */
#include "harness.h"

int main(int argc, char **argv)
{
    ga_arena_t a;
    char *p;
    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_LEFT, ga_test_backend(argc, argv), -1);
    ga_test_reports();
    p = ga_test_alloc(&a, 100, 1);
    p[-1] = 1;
    return 0;
}
