/* One byte past the end of a buffer, byte-exact alignment: the guard. */
#include "harness.h"

int main(int argc, char **argv)
{
    ga_arena_t a;
    char *p;
    ga_test_arena(&a, 4, 1, 1, GA_ALIGN_RIGHT, ga_test_backend(argc, argv), -1);
    ga_test_reports();
    p = ga_test_alloc(&a, 100, 1);
    p[100] = 1;
    return 0;
}
