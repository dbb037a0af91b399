/* The same block freed twice: the core says GA_ERR_DOUBLE, the caller reports. */
#include "harness.h"

int main(int argc, char **argv)
{
    ga_arena_t a;
    ga_damage_t damage;
    char *p;
    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_RIGHT, ga_test_backend(argc, argv), -1);
    p = ga_test_alloc(&a, 64, 1);
    ga_free(&a, p, 1, &damage);
    if (ga_free(&a, p, 1, &damage) == GA_ERR_DOUBLE) {
        ga_report_free(GA_ERR_DOUBLE, p, &a, ga_slot_of(&a, p), NULL, NULL, 0);
        abort();
    }
    return 0;
}
