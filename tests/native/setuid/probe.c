/* Installed setuid-root by setuid_rig.sh and run by an unprivileged user
 * (tests/native/test_native_secure.py). It says what it sees of
 * GUARDALLOC_OPTIONS, then writes one byte past a 20-byte block: harmless
 * in the next allocator's block (24 usable bytes), a guard page when the
 * library guards every block byte-exact (sample_rate=1:alignment=1). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    const char *options = getenv("GUARDALLOC_OPTIONS");
    volatile char *block = malloc(20);
    printf("uid=%d euid=%d GUARDALLOC_OPTIONS=%s\n", (int)getuid(), (int)geteuid(),
           options != NULL ? options : "(unset)");
    fflush(stdout);
    if (block == NULL)
        return 1;
    block[20] = 1;
    free((void *)block);
    printf("done\n");
    return 0;
}
