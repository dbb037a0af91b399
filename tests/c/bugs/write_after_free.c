/* A write through a stale pointer: the freed slot's data pages are guarded. */
#include "harness.h"

int main(int argc, char **argv)
{
    ga_arena_t a;
    ga_damage_t damage;
    char *p;
    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_RIGHT, ga_test_backend(argc, argv), 4);
    ga_test_reports();
    p = ga_test_alloc(&a, 64, 1);
    ga_free(&a, p, 1, &damage);
    p[10] = 1;
    return 0;
}
