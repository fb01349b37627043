/* Test-only stand-in for Windows' bcryptprimitives.dll, for running the test executables under
 * Debian 12's Wine 8.0, which lacks ProcessPrng (imported by Rust's standard library since 1.78).
 * It forwards to RtlGenRandom (advapi32's SystemFunction036), which Wine implements. Built and
 * placed beside the test executables by scripts/wine-run.sh; never shipped with the module
 * (a real Windows has the genuine DLL). */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
