/* Test-only scripted pinentry for the Windows test executables (the POSIX-shell one of
 * src/pinentry.rs cannot run there). It speaks just enough Assuan for the module's client and
 * takes its script from files in its own directory (src/pinentry.rs `tests::scripted` copies it
 * there):
 *   answer   the raw lines sent for GETPIN (e.g. "D 1234\nOK")
 *   log      every command received is appended to it
 *   wait     if present, GETPIN first creates "asking" and waits until "go" exists
 * Built beside the test executables by scripts/wine-run.sh; never shipped. */
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <string.h>

static char dir[MAX_PATH];

static void path(char *out, const char *name)
{
    snprintf(out, MAX_PATH, "%s%s", dir, name);
}

static int exists(const char *name)
{
    char p[MAX_PATH];
    path(p, name);
    return GetFileAttributesA(p) != INVALID_FILE_ATTRIBUTES;
}

static void reply(const char *s)
{
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

int main(void)
{
    char line[4096], p[MAX_PATH];
    DWORD n = GetModuleFileNameA(NULL, dir, MAX_PATH);
    char *slash = strrchr(dir, '\\');
    if (n == 0 || n >= MAX_PATH || slash == NULL)
        return 2;
    slash[1] = 0;
    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
    reply("OK Pleased to meet you");
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        path(p, "log");
        FILE *log = fopen(p, "ab");
        if (log) {
            fprintf(log, "%s\n", line);
            fclose(log);
        }
        if (strcmp(line, "GETPIN") == 0) {
            if (exists("wait")) {
                path(p, "asking");
                FILE *f = fopen(p, "wb");
                if (f)
                    fclose(f);
                while (!exists("go"))
                    Sleep(50);
            }
            char answer[4096];
            size_t len = 0;
            path(p, "answer");
            FILE *a = fopen(p, "rb");
            if (a) {
                len = fread(answer, 1, sizeof answer - 1, a);
                fclose(a);
            }
            answer[len] = 0;
            reply(answer);
        } else if (strcmp(line, "BYE") == 0) {
            reply("OK closing connection");
            return 0;
        } else if (strncmp(line, "OPTION bogus", 12) == 0) {
            reply("ERR 83886254 Unknown option");
        } else {
            reply("OK");
        }
    }
    return 0;
}
