/* expect: SIGABRT "bad-free" "attempting free on address which was not malloc()-ed"
 * and: "is on the stack of thread" "(the main thread"
 * Freeing a stack array.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void release(char *p) { free(p); }

int main(void)
{
#ifdef TWIN
    char *buf = malloc(32);
#else
    char buf[32];
#endif
    strcpy(buf, "hello");
    printf("%s\n", buf);
    release(buf);
    return 0;
}
