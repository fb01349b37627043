#!/usr/bin/python3
"""Export a document to PDF signed with a PKCS#11 token, through a headless LibreOffice.

LibreOffice (7.4+) signs PDFs with NSS. Its export filter finds the certificate by subject
(`SignCertificateSubjectName`) and uses `SignaturePassword` for the signature itself (NSS's
context-specific login for a key with CKA_ALWAYS_AUTHENTICATE), but it cannot log in to the
token *before* searching for the certificate: headless, the login dialog has nobody to answer
it, the certificate of a login-protected token is not found, and the export writes no PDF. So
this file is two things:

* a LibreOffice Python macro (`jpki_login`), run inside soffice, that initializes
  LibreOffice's NSS and logs in to the token with `PK11_CheckUserPassword`, then lists the
  subjects of the personal certificates it now sees;
* a UNO client (`__main__`, run with Debian's /usr/bin/python3 and `python3-uno`) that connects
  to a running `soffice --headless --accept=pipe,name=NAME;urp;`, copies this file into that
  soffice's user profile as a macro, calls `jpki_login`, loads the document and stores it with
  `writer_pdf_Export` and the signing options.

The password is read from the environment variable named by --pin-env (default JPKI_SIGN_PIN),
never from the command line. Exit status: 0 when the PDF was written, 1 otherwise (with the
reason on stderr). Check the PDF with `pdfsig`.
"""

import ctypes
import os
import shutil
import sys
import time

MACRO_FILE = "jpki_sign_pdf.py"


# ---------------------------------------------------------------------------------------------
# The macro: runs inside soffice.
# ---------------------------------------------------------------------------------------------
def _nss():
    nss = ctypes.CDLL("libnss3.so")  # the instance LibreOffice has loaded and initialized
    nss.PK11_FindSlotByName.restype = ctypes.c_void_p
    nss.PK11_FindSlotByName.argtypes = [ctypes.c_char_p]
    nss.PK11_CheckUserPassword.restype = ctypes.c_int
    nss.PK11_CheckUserPassword.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    nss.PK11_IsLoggedIn.restype = ctypes.c_int
    nss.PK11_IsLoggedIn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    nss.PK11_FreeSlot.argtypes = [ctypes.c_void_p]
    nss.PK11_FindCertFromNickname.restype = ctypes.c_void_p
    nss.PK11_FindCertFromNickname.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    nss.CERT_DestroyCertificate.argtypes = [ctypes.c_void_p]
    nss.PORT_GetError.restype = ctypes.c_int
    return nss


class _SECItem(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("data", ctypes.c_void_p), ("len", ctypes.c_uint)]


class _CERTCertificateHead(ctypes.Structure):
    """The first fields of NSS's public CERTCertificate (certt.h), up to derCert."""

    _fields_ = [
        ("arena", ctypes.c_void_p),
        ("subjectName", ctypes.c_char_p),
        ("issuerName", ctypes.c_char_p),
        ("signatureWrap", _SECItem * 4),  # CERTSignedData: data, algorithm (2 items), signature
        ("derCert", _SECItem),
    ]


def jpki_sign_pdf(input_url, output_url, token_label, cert_label, pin, subject,
                  signature_password=None):
    """Logs in to `token_label` in LibreOffice's NSS, then exports the document at `input_url`
    to a PDF at `output_url` signed with the certificate `cert_label` of that token (and its
    private key). `subject`, if not empty, must be the certificate's subject as NSS prints it.
    `signature_password` (default `pin`) is what LibreOffice gives NSS for the signature itself.

    Returns "OK <subject>" or "ERROR <reason>".
    """
    import uno
    from com.sun.star.beans import PropertyValue

    def props(**kw):
        out = []
        for k, v in kw.items():
            p = PropertyValue()
            p.Name = k
            p.Value = v
            out.append(p)
        return tuple(out)

    ctx = uno.getComponentContext()
    smgr = ctx.ServiceManager
    # Initializes NSS with the certificate database of $MOZILLA_CERTIFICATE_FOLDER (or the
    # one set in Tools > Options > Security), which loads the PKCS#11 modules registered there.
    seinit = smgr.createInstanceWithContext("com.sun.star.xml.crypto.SEInitializer", ctx)
    sec_ctx = seinit.createSecurityContext("")
    if sec_ctx is None:
        return "ERROR LibreOffice could not initialize NSS (no certificate database?)"
    sec_env = sec_ctx.getSecurityEnvironment()

    nss = _nss()
    slot = nss.PK11_FindSlotByName(token_label.encode("utf-8"))
    if not slot:
        return "ERROR no token %r in LibreOffice's NSS (module not registered with modutil, " \
               "or no card in the reader)" % token_label
    try:
        # The login LibreOffice cannot do without a dialog. The certificate and the private key
        # of the signature token are only visible after it.
        if not nss.PK11_IsLoggedIn(slot, None):
            if nss.PK11_CheckUserPassword(slot, pin.encode("utf-8")) != 0:
                return "ERROR login to %r failed (NSS error %d)" % (
                    token_label, nss.PORT_GetError())
    finally:
        nss.PK11_FreeSlot(slot)

    nickname = "%s:%s" % (token_label, cert_label)
    cert = nss.PK11_FindCertFromNickname(nickname.encode("utf-8"), None)
    if not cert:
        return "ERROR no certificate %r after the login (NSS error %d)" % (
            nickname, nss.PORT_GetError())
    try:
        head = _CERTCertificateHead.from_address(cert)
        der = ctypes.string_at(head.derCert.data, head.derCert.len)
    finally:
        nss.CERT_DestroyCertificate(cert)
    xcert = sec_env.createCertificateFromRaw(uno.ByteSequence(der))
    if xcert is None:
        return "ERROR LibreOffice could not read the certificate %r" % nickname
    if subject and xcert.SubjectName != subject:
        return "ERROR certificate %r has subject %r, not %r" % (
            nickname, xcert.SubjectName, subject)

    desktop = smgr.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    doc = desktop.loadComponentFromURL(input_url, "_blank", 0, props(Hidden=True))
    if doc is None:
        return "ERROR LibreOffice could not open %s" % input_url
    try:
        # The same filter options as File > Export as PDF > Digital Signatures. NSS uses
        # SignaturePassword for the login the key's CKA_ALWAYS_AUTHENTICATE asks for.
        filter_data = uno.Any("[]com.sun.star.beans.PropertyValue", props(
            SignPDF=True, SignatureCertificate=xcert,
            SignaturePassword=pin if signature_password is None else signature_password))
        uno.invoke(doc, "storeToURL", (output_url, props(
            FilterName="writer_pdf_Export", FilterData=filter_data)))
    finally:
        doc.close(True)
    return "OK " + xcert.SubjectName


g_exportedScripts = (jpki_sign_pdf,)


# ---------------------------------------------------------------------------------------------
# The client: runs outside soffice.
# ---------------------------------------------------------------------------------------------
def _die(msg):
    print("lo_sign_pdf: " + msg, file=sys.stderr)
    sys.exit(1)


def _connect(uno, pipe, timeout):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local
    )
    url = "uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe
    deadline = time.monotonic() + timeout
    while True:
        try:
            return resolver.resolve(url)
        except Exception as e:  # NoConnectException while soffice starts
            if time.monotonic() > deadline:
                _die("could not connect to soffice on pipe %r in %ds: %s" % (pipe, timeout, e))
            time.sleep(0.5)


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipe", required=True, help="soffice's --accept=pipe,name=NAME")
    ap.add_argument("--profile", required=True,
                    help="soffice's -env:UserInstallation directory (the macro is copied there)")
    ap.add_argument("--token", default="JPKI Digital Signature", help="PKCS#11 token label")
    ap.add_argument("--cert", default="Digital Signature",
                    help="the certificate's label (CKA_LABEL) on the token")
    ap.add_argument("--subject", default="",
                    help="refuse to sign unless the certificate's subject, as NSS prints it "
                         "(CN=...,O=...,C=JP), is this")
    ap.add_argument("--pin-env", default="JPKI_SIGN_PIN",
                    help="environment variable holding the password (default JPKI_SIGN_PIN)")
    ap.add_argument("--signature-password-env", default=None,
                    help="for tests only: a different password for the signature itself "
                         "(after the login with --pin-env's)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds to wait for soffice")
    ap.add_argument("--terminate", action="store_true", help="close soffice at the end")
    ap.add_argument("input", help="document to export (e.g. .odt)")
    ap.add_argument("output", help="the signed PDF to write")
    args = ap.parse_args()

    pin = os.environ.get(args.pin_env)
    if not pin:
        _die("set the password in $%s" % args.pin_env)

    sig_pin = pin
    if args.signature_password_env:
        sig_pin = os.environ.get(args.signature_password_env, "")

    import uno

    scripts = os.path.join(args.profile, "user", "Scripts", "python")
    os.makedirs(scripts, exist_ok=True)
    shutil.copyfile(os.path.abspath(__file__), os.path.join(scripts, MACRO_FILE))

    output = os.path.abspath(args.output)
    if os.path.exists(output):
        os.remove(output)
    ctx = _connect(uno, args.pipe, args.timeout)
    try:
        provider = ctx.ServiceManager.createInstanceWithContext(
            "com.sun.star.script.provider.MasterScriptProviderFactory", ctx
        ).createScriptProvider("")
        script = provider.getScript(
            "vnd.sun.star.script:%s$jpki_sign_pdf?language=Python&location=user" % MACRO_FILE
        )
        result = script.invoke((
            uno.systemPathToFileUrl(os.path.abspath(args.input)),
            uno.systemPathToFileUrl(output),
            args.token, args.cert, pin, args.subject, sig_pin,
        ), (), ())[0]
    finally:
        if args.terminate:
            try:
                ctx.ServiceManager.createInstanceWithContext(
                    "com.sun.star.frame.Desktop", ctx).terminate()
            except Exception:
                pass  # the bridge goes down with soffice
    if not result.startswith("OK "):
        _die(result)
    # LibreOffice writes no file, and reports nothing, when signing fails.
    if not os.path.exists(output) or os.path.getsize(output) == 0:
        _die("LibreOffice wrote no PDF (signing failed): %s" % output)
    print("signed %s with %s" % (output, result[3:]))


if __name__ == "__main__":
    main()
