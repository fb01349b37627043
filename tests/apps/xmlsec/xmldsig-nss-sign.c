/*
 * xmldsig-nss-sign: signs an XML-DSig template with a key found in an NSS database, as a
 * libxmlsec1-nss application does (tests/xmlsec.rs, docs/xmlsec.md).
 *
 *   xmldsig-nss-sign --db sql:DIR [--passphrase-fd N] --output OUT TEMPLATE.xml
 *   xmldsig-nss-sign --db sql:DIR --xmlsec1-defaults --output OUT TEMPLATE.xml
 *
 * TEMPLATE.xml carries a <dsig:Signature> template whose <dsig:KeyName> is the NSS nickname of
 * the signing certificate ("<token label>:<certificate label>"); xmlsec's NSS keys store finds
 * the certificate by that nickname (CERT_FindCertByNickname) and its private key
 * (PK11_FindKeyByAnyCert), and an empty <dsig:X509Data/> receives the certificate.
 *
 * What a libxmlsec1-nss application adds to the xmlsec1 command-line tool: an NSS password
 * callback (PK11_SetPasswordFunc). NSS calls it when a token needs a login: to find a private
 * certificate, and again right before each signature with a key that must be authenticated for
 * every use (CKA_ALWAYS_AUTHENTICATE, a CKU_CONTEXT_SPECIFIC login). The password is read once,
 * as one line, from file descriptor N (default 0, stdin; never from the command line), and given
 * to each first request. When NSS asks again because the password was refused (retry), the
 * callback gives up (returns NULL), so a wrong password is presented once and never repeated.
 *
 * Each call of the callback is reported on stderr as
 *   password callback: token "LABEL", retry=0|1
 *
 * --xmlsec1-defaults does what the xmlsec1 command-line tool does with NSS (`xmlsec1 --crypto nss
 * --crypto-config DIR`, xmlsec 1.2.37 apps/crypto.c): NSS initialized by xmlSecNssAppInit(DIR),
 * and no password callback of its own; only xmlsec's default one, if it has one
 * (xmlSecNssAppGetDefaultPwdCallback(), NULL in xmlsec 1.2.37 and still in 1.3), reported as
 *   xmlsec default NSS password callback: none|set
 *
 * Exit status 0 when signed (the document written to OUT), 1 otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nss.h>
#include <pk11pub.h>
#include <secmod.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <xmlsec/crypto.h>
#include <xmlsec/nss/app.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

static int passphrase_fd = 0;
static char passphrase[256];
static int passphrase_read = 0; /* 1: read, -1: could not be read */

/* Reads one line (without its newline) from passphrase_fd, once. */
static int read_passphrase(void) {
    size_t len = 0;
    if (passphrase_read != 0) {
        return passphrase_read;
    }
    passphrase_read = -1;
    for (;;) {
        char c;
        ssize_t n = read(passphrase_fd, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || c == '\n') {
            break;
        }
        if (len + 1 >= sizeof(passphrase)) {
            memset(passphrase, 0, sizeof(passphrase));
            return passphrase_read;
        }
        passphrase[len++] = c;
    }
    if (len > 0 && passphrase[len - 1] == '\r') {
        passphrase[--len] = '\0';
    }
    passphrase[len] = '\0';
    if (len > 0) {
        passphrase_read = 1;
    }
    return passphrase_read;
}

/* The NSS password callback (PK11PasswordFunc). */
static char *password_callback(PK11SlotInfo *slot, PRBool retry, void *arg) {
    (void)arg;
    fprintf(stderr, "password callback: token \"%s\", retry=%d\n",
            slot ? PK11_GetTokenName(slot) : "?", retry ? 1 : 0);
    if (retry) {
        /* The password given was refused: never present it again. */
        return NULL;
    }
    if (read_passphrase() != 1) {
        fprintf(stderr, "no password on file descriptor %d\n", passphrase_fd);
        return NULL;
    }
    return PORT_Strdup(passphrase);
}

static void usage(void) {
    fprintf(stderr,
            "usage: xmldsig-nss-sign --db sql:DIR [--passphrase-fd N | --xmlsec1-defaults] "
            "--output OUT TEMPLATE.xml\n");
}

static int sign(const char *template_file, const char *output) {
    xmlDocPtr doc = NULL;
    xmlNodePtr node;
    xmlSecKeysMngrPtr mngr = NULL;
    xmlSecDSigCtxPtr ctx = NULL;
    FILE *out = NULL;
    int res = -1;

    doc = xmlParseFile(template_file);
    if (doc == NULL || xmlDocGetRootElement(doc) == NULL) {
        fprintf(stderr, "error: cannot parse %s\n", template_file);
        goto done;
    }
    node = xmlSecFindNode(xmlDocGetRootElement(doc), xmlSecNodeSignature, xmlSecDSigNs);
    if (node == NULL) {
        fprintf(stderr, "error: no dsig:Signature template in %s\n", template_file);
        goto done;
    }
    /* The keys manager of a libxmlsec1-nss application: keys by name from the NSS database. */
    mngr = xmlSecKeysMngrCreate();
    if (mngr == NULL || xmlSecNssAppDefaultKeysMngrInit(mngr) < 0) {
        fprintf(stderr, "error: keys manager\n");
        goto done;
    }
    ctx = xmlSecDSigCtxCreate(mngr);
    if (ctx == NULL) {
        fprintf(stderr, "error: signature context\n");
        goto done;
    }
    if (xmlSecDSigCtxSign(ctx, node) < 0 || ctx->status != xmlSecDSigStatusSucceeded) {
        fprintf(stderr, "error: signature failed\n");
        goto done;
    }
    out = fopen(output, "w");
    if (out == NULL) {
        fprintf(stderr, "error: cannot write %s\n", output);
        goto done;
    }
    xmlDocDump(out, doc);
    if (fclose(out) != 0) {
        fprintf(stderr, "error: cannot write %s\n", output);
        goto done;
    }
    fprintf(stderr, "signed: %s\n", output);
    res = 0;

done:
    if (ctx != NULL) {
        xmlSecDSigCtxDestroy(ctx);
    }
    if (mngr != NULL) {
        xmlSecKeysMngrDestroy(mngr);
    }
    if (doc != NULL) {
        xmlFreeDoc(doc);
    }
    return res;
}

int main(int argc, char **argv) {
    const char *db = NULL, *output = NULL, *template_file = NULL;
    int i, res, xmlsec1_defaults = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
        } else if (strcmp(argv[i], "--passphrase-fd") == 0 && i + 1 < argc) {
            char *end;
            long fd = strtol(argv[++i], &end, 10);
            if (*end != '\0' || fd < 0 || fd > 1024) {
                usage();
                return 1;
            }
            passphrase_fd = (int)fd;
        } else if (strcmp(argv[i], "--xmlsec1-defaults") == 0) {
            xmlsec1_defaults = 1;
        } else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            output = argv[++i];
        } else if (argv[i][0] != '-' && template_file == NULL) {
            template_file = argv[i];
        } else {
            usage();
            return 1;
        }
    }
    if (db == NULL || output == NULL || template_file == NULL) {
        usage();
        return 1;
    }

    xmlInitParser();
    LIBXML_TEST_VERSION

    if (xmlsec1_defaults) {
        /* As xmlsec1 --crypto nss --crypto-config DIR: xmlsec initializes NSS on the database. */
        void *pwd_callback;
        if (xmlSecInit() < 0 || xmlSecCheckVersion() != 1 || xmlSecNssAppInit(db) < 0 ||
            xmlSecCryptoInit() < 0) {
            fprintf(stderr, "error: xmlsec initialization failed\n");
            return 1;
        }
        pwd_callback = xmlSecNssAppGetDefaultPwdCallback();
        fprintf(stderr, "xmlsec default NSS password callback: %s\n",
                pwd_callback ? "set" : "none");
        if (pwd_callback != NULL) {
            PK11_SetPasswordFunc((PK11PasswordFunc)pwd_callback);
        }
    } else {
        /* NSS first, with the application's password callback, then xmlsec on top of it. */
        if (NSS_Init(db) != SECSuccess) {
            fprintf(stderr, "error: NSS_Init(%s) failed: %d\n", db, PORT_GetError());
            return 1;
        }
        PK11_SetPasswordFunc(password_callback);
        if (xmlSecInit() < 0 || xmlSecCheckVersion() != 1) {
            fprintf(stderr, "error: xmlsec initialization failed\n");
            return 1;
        }
        /* NSS is initialized already: xmlSecNssAppInit(NULL) only completes xmlsec's setup. */
        if (xmlSecNssAppInit(NULL) < 0 || xmlSecCryptoInit() < 0) {
            fprintf(stderr, "error: xmlsec-nss initialization failed\n");
            return 1;
        }
    }

    res = sign(template_file, output);

    xmlSecCryptoShutdown();
    xmlSecNssAppShutdown();
    xmlSecShutdown();
    xmlCleanupParser();
    memset(passphrase, 0, sizeof(passphrase));
    return res == 0 ? 0 : 1;
}
