/* A write just past a 100-byte buffer lands in the 12 alignment slack bytes
 * (no fault); the free finds the pattern damaged: GA_ERR_CORRUPT. */
#include "harness.h"

int main(int argc, char **argv)
{
    ga_arena_t a;
    ga_damage_t damage;
    char *p;
    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_RIGHT, ga_test_backend(argc, argv), -1);
    p = ga_test_alloc(&a, 100, 1);
    p[100] = 0;
    if (ga_free(&a, p, 1, &damage) == GA_ERR_CORRUPT) {
        ga_report_free(GA_ERR_CORRUPT, p, &a, ga_slot_of(&a, p), &damage, NULL, 0);
        abort();
    }
    return 0;
}
