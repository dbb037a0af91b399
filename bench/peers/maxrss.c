/* maxrss FILE PROGRAM [ARGS...]: run PROGRAM, write the peak resident set
 * (KiB, ru_maxrss of it and the descendants it waited for) to FILE, exit
 * with its status (128 + N for a signal N).
 *
 * A process started straight from the benchmark's Python would count the
 * Python's own resident set as its peak (a forked child starts with its
 * parent's pages, and exec keeps the peak); this small launcher is the
 * parent instead. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct rusage usage;
    int status;
    pid_t pid;
    FILE *f;
    if (argc < 3) {
        fputs("usage: maxrss FILE PROGRAM [ARGS...]\n", stderr);
        return 2;
    }
    pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    if (wait4(pid, &status, 0, &usage) != pid)
        return 127;
    f = fopen(argv[1], "w");
    if (f != NULL) {
        fprintf(f, "%ld\n", usage.ru_maxrss);
        fclose(f);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
