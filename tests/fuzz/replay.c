/*
 * Runs the fuzz target (options_fuzz.c) once per file named on the command
 * line, without libFuzzer: tests/test_options_fuzz.py replays the checked-in
 * corpus with it, built by any C compiler. Prints nothing; exit status 0, or
 * 2 when a file cannot be read (a check that fails aborts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        uint8_t *data;
        long size;
        if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
                || fseek(f, 0, SEEK_SET) != 0) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 2;
        }
        data = malloc((size_t)size + 1);
        if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 2;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(data, (size_t)size);
        free(data);
    }
    return 0;
}
