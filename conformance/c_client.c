/*
 * conformance/c_client.c: loads the module the way a C application (NSS) does and checks
 * the C-level contract: exported symbols, interfaces, C_Initialize with application mutex
 * callbacks, the two-call convention, the attribute template rules, a login and a multi-part
 * RSA-PSS signature (written to a file for openssl to verify), and the finalize rules.
 *
 * usage: c_client MODULE.so AUTH_PIN SIGNATURE_OUT
 * Prints one line per check; exits 0 only if every check passed.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pkcs11.h"

static int failures = 0, checks = 0;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        checks++;                                                                            \
        if (cond) {                                                                          \
            printf("ok   ");                                                                 \
        } else {                                                                             \
            printf("FAIL ");                                                                 \
            failures++;                                                                      \
        }                                                                                    \
        printf(__VA_ARGS__);                                                                 \
        printf("\n");                                                                        \
    } while (0)

#define RV(call, want) CHECK((rv = (call)) == (want), "%s -> 0x%lx (want 0x%lx)", #call, rv, (CK_RV)(want))

/* Application mutex callbacks, as NSS passes them. */
static int mutexes = 0;
static CK_RV create_mutex(void **m) { *m = malloc(1); mutexes++; return CKR_OK; }
static CK_RV destroy_mutex(void *m) { free(m); return CKR_OK; }
static CK_RV lock_mutex(void *m) { (void)m; return CKR_OK; }
static CK_RV unlock_mutex(void *m) { (void)m; return CKR_OK; }

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODULE.so AUTH_PIN SIGNATURE_OUT\n", argv[0]);
        return 2;
    }
    CK_RV rv;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL, "dlopen %s", dlerror() ? "failed" : "");
    if (!lib) return 1;

    /* Only the three entry points are exported. */
    CHECK(dlsym(lib, "C_GetFunctionList") && dlsym(lib, "C_GetInterface") && dlsym(lib, "C_GetInterfaceList"),
          "the three entry points are exported");
    CHECK(dlsym(lib, "C_Sign") == NULL && dlsym(lib, "C_Initialize") == NULL, "C_Sign, C_Initialize are not exported");

    CK_C_GetInterface get_interface = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
    CK_C_GetFunctionList get_function_list = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    CK_INTERFACE *iface = NULL;
    /* NSS asks for a fork-safe interface first; this module does not claim one. */
    CHECK(get_interface((CK_UTF8CHAR *)"PKCS 11", NULL, &iface, CKF_INTERFACE_FORK_SAFE) != CKR_OK,
          "no fork-safe interface is claimed");
    RV(get_interface((CK_UTF8CHAR *)"PKCS 11", NULL, &iface, 0), CKR_OK);
    CK_FUNCTION_LIST_3_0 *f3 = iface ? (CK_FUNCTION_LIST_3_0 *)iface->pFunctionList : NULL;
    CHECK(f3 && f3->version.major == 3 && f3->version.minor == 0, "default interface is PKCS#11 3.0");
    CK_FUNCTION_LIST *f2 = NULL;
    RV(get_function_list(&f2), CKR_OK);
    CHECK(f2 && f2->version.major == 2 && f2->version.minor == 40, "C_GetFunctionList gives 2.40");
    RV(get_function_list(NULL), CKR_ARGUMENTS_BAD);
    if (!f3 || !f2) return 1;
    CK_FUNCTION_LIST *f = f2;

    CK_ULONG n = 0;
    RV(f->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
    RV(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

    CK_C_INITIALIZE_ARGS args = {create_mutex, destroy_mutex, lock_mutex, unlock_mutex, CKF_OS_LOCKING_OK, NULL};
    CK_C_INITIALIZE_ARGS partial = {create_mutex, NULL, lock_mutex, unlock_mutex, CKF_OS_LOCKING_OK, NULL};
    CK_C_INITIALIZE_ARGS no_os = {create_mutex, destroy_mutex, lock_mutex, unlock_mutex, 0, NULL};
    RV(f->C_Initialize(&partial), CKR_ARGUMENTS_BAD);
    RV(f->C_Initialize(&no_os), CKR_CANT_LOCK);
    RV(f->C_Initialize(&args), CKR_OK);
    RV(f3->C_Initialize(&args), CKR_CRYPTOKI_ALREADY_INITIALIZED);

    CK_INFO info;
    RV(f3->C_GetInfo(&info), CKR_OK);
    CHECK(info.cryptokiVersion.major == 3, "3.0 table's C_GetInfo reports 3.x");
    RV(f->C_GetInfo(&info), CKR_OK);
    CHECK(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40, "2.40 table's C_GetInfo reports 2.40");

    /* Two-call convention on the slot list. */
    RV(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
    CHECK(n >= 2 && n % 2 == 0, "slots with a token: %lu (two per card)", n);
    CK_SLOT_ID slots[64];
    CK_ULONG small = 1;
    if (n > 1) RV(f->C_GetSlotList(CK_TRUE, slots, &small), CKR_BUFFER_TOO_SMALL);
    CHECK(small == n, "BUFFER_TOO_SMALL gives the needed count");
    RV(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);

    /* The authentication token. */
    CK_SLOT_ID auth = (CK_SLOT_ID)-1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memmem(ti.label, 32, "Authentication", 14)) {
            auth = slots[i];
            CHECK((ti.flags & (CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED | CKF_WRITE_PROTECTED)) ==
                      (CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED | CKF_WRITE_PROTECTED),
                  "token flags");
            CHECK(ti.ulMinPinLen == 4 && ti.ulMaxPinLen == 4, "4-digit PIN");
            break;
        }
    }
    CHECK(auth != (CK_SLOT_ID)-1, "found the authentication token");
    CK_SLOT_INFO si;
    RV(f->C_GetSlotInfo(auth, &si), CKR_OK);
    CHECK(si.flags & CKF_REMOVABLE_DEVICE, "removable slot");
    RV(f->C_GetSlotInfo(9999, &si), CKR_SLOT_ID_INVALID);

    CK_SESSION_HANDLE h;
    RV(f->C_OpenSession(auth, CKF_RW_SESSION, NULL, NULL, &h), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    RV(f->C_OpenSession(auth, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h), CKR_OK);

    /* The friendly-token profile. */
    CK_OBJECT_CLASS cls = CKO_PROFILE;
    CK_ATTRIBUTE by_class = {CKA_CLASS, &cls, sizeof cls};
    CK_OBJECT_HANDLE objs[16];
    CK_ULONG found = 0;
    RV(f->C_FindObjectsInit(h, &by_class, 1), CKR_OK);
    RV(f->C_FindObjectsInit(h, &by_class, 1), CKR_OPERATION_ACTIVE);
    RV(f->C_FindObjects(h, objs, 16, &found), CKR_OK);
    RV(f->C_FindObjectsFinal(h), CKR_OK);
    CHECK(found == 1, "one CKO_PROFILE");
    CK_ULONG profile = 0;
    CK_ATTRIBUTE pid = {CKA_PROFILE_ID, &profile, sizeof profile};
    if (found == 1) RV(f->C_GetAttributeValue(h, objs[0], &pid, 1), CKR_OK);
    CHECK(profile == CKP_PUBLIC_CERTIFICATES_TOKEN, "public-certificates token");

    /* Attribute template rules on the certificate. */
    cls = CKO_CERTIFICATE;
    CK_BYTE id1 = 1;
    CK_ATTRIBUTE cert_tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &id1, 1}};
    RV(f->C_FindObjectsInit(h, cert_tmpl, 2), CKR_OK);
    RV(f->C_FindObjects(h, objs, 16, &found), CKR_OK);
    RV(f->C_FindObjectsFinal(h), CKR_OK);
    CHECK(found == 1, "one certificate with CKA_ID 01");
    CK_BYTE label[2];
    CK_ATTRIBUTE t[3] = {{CKA_VALUE, NULL, 0}, {CKA_LABEL, label, sizeof label}, {0x7fff0000UL, NULL, 0}};
    RV(f->C_GetAttributeValue(h, objs[0], t, 3), CKR_ATTRIBUTE_TYPE_INVALID);
    CHECK(t[0].ulValueLen > 100 && t[0].ulValueLen != CK_UNAVAILABLE_INFORMATION, "NULL pValue gives the length (%lu)", t[0].ulValueLen);
    CHECK(t[1].ulValueLen == CK_UNAVAILABLE_INFORMATION, "too-small buffer gives CK_UNAVAILABLE_INFORMATION");
    CHECK(t[2].ulValueLen == CK_UNAVAILABLE_INFORMATION, "unknown type gives CK_UNAVAILABLE_INFORMATION");
    CK_ATTRIBUTE t2[1] = {{CKA_LABEL, label, sizeof label}};
    RV(f->C_GetAttributeValue(h, objs[0], t2, 1), CKR_BUFFER_TOO_SMALL);

    /* Login and a multi-part RSA-PSS signature, as NSS makes it for TLS 1.3. */
    /* A malformed PIN: C_Login's own code (NSS asks again on it), nothing sent to the card. */
    RV(f->C_Login(h, CKU_USER, (CK_UTF8CHAR *)"12", 2), CKR_PIN_INCORRECT);
    RV(f->C_Login(h, CKU_USER, (CK_UTF8CHAR *)argv[2], strlen(argv[2])), CKR_OK);
    RV(f->C_Login(h, CKU_USER, (CK_UTF8CHAR *)argv[2], strlen(argv[2])), CKR_USER_ALREADY_LOGGED_IN);
    cls = CKO_PRIVATE_KEY;
    RV(f->C_FindObjectsInit(h, &by_class, 1), CKR_OK);
    RV(f->C_FindObjects(h, objs, 16, &found), CKR_OK);
    RV(f->C_FindObjectsFinal(h), CKR_OK);
    CHECK(found == 1, "one private key after login");
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM bad = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof pss - 1};
    RV(f->C_SignInit(h, &bad, objs[0]), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof pss};
    RV(f->C_SignInit(h, &m, objs[0]), CKR_OK);
    RV(f->C_SignInit(h, &m, objs[0]), CKR_OPERATION_ACTIVE);
    RV(f->C_SignUpdate(h, (CK_BYTE *)"conformance ", 12), CKR_OK);
    RV(f->C_SignUpdate(h, (CK_BYTE *)"message", 7), CKR_OK);
    CK_ULONG siglen = 0;
    RV(f->C_SignFinal(h, NULL, &siglen), CKR_OK);
    CHECK(siglen == 256, "signature length %lu", siglen);
    CK_BYTE sig[512];
    CK_ULONG one = 1;
    RV(f->C_SignFinal(h, sig, &one), CKR_BUFFER_TOO_SMALL);
    siglen = sizeof sig;
    RV(f->C_SignFinal(h, sig, &siglen), CKR_OK);
    CHECK(siglen == 256, "signature of 256 bytes");
    RV(f->C_SignFinal(h, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);
    FILE *out = fopen(argv[3], "wb");
    CHECK(out && fwrite(sig, 1, siglen, out) == siglen, "signature written");
    if (out) fclose(out);

    /* Writes are refused on this read-only token. */
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_ATTRIBUTE create[] = {{CKA_CLASS, &data, sizeof data}};
    CK_OBJECT_HANDLE created;
    RV(f->C_CreateObject(h, create, 1, &created), CKR_TOKEN_WRITE_PROTECTED);
    RV(f->C_DestroyObject(h, objs[0]), CKR_TOKEN_WRITE_PROTECTED);

    RV(f->C_Logout(h), CKR_OK);
    RV(f->C_Logout(h), CKR_USER_NOT_LOGGED_IN);
    RV(f->C_CloseAllSessions(auth), CKR_OK);
    RV(f->C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
    RV(f->C_Finalize((void *)1), CKR_ARGUMENTS_BAD);
    RV(f->C_Finalize(NULL), CKR_OK);
    RV(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    RV(f->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
    /* And again: initialize after finalize works. */
    RV(f->C_Initialize(NULL), CKR_OK);
    RV(f->C_Finalize(NULL), CKR_OK);

    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
