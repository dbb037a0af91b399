/* expect: SIGABRT "bad-free" "attempting free on address which was not malloc()-ed"
 * and: "is inside a mapping that no allocator made"
 * Freeing an address inside an mmap()ed region.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
    char *region = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#ifdef TWIN
    char *p = malloc(100);
#else
    char *p = region + 4096 + 32;
#endif
    if (region == MAP_FAILED)
        return 1;
    strcpy(p, "mapped");
    printf("%s\n", p);
    free(p);
    munmap(region, 1 << 16);
    return 0;
}
