/* A pointer into a block, not its start, freed: GA_ERR_INVALID. */
#include "harness.h"

int main(int argc, char **argv)
{
    ga_arena_t a;
    ga_damage_t damage;
    char *p;
    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_RIGHT, ga_test_backend(argc, argv), -1);
    p = ga_test_alloc(&a, 64, 1);
    if (ga_free(&a, p + 8, 1, &damage) == GA_ERR_INVALID) {
        ga_report_free(GA_ERR_INVALID, p + 8, &a, ga_slot_of(&a, p + 8), NULL, NULL, 0);
        abort();
    }
    return 0;
}
