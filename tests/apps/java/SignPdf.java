import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Calendar;
import java.util.Collections;
import java.util.List;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.PDPage;
import org.apache.pdfbox.pdmodel.PDPageContentStream;
import org.apache.pdfbox.pdmodel.font.PDType1Font;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.PDSignature;
import org.apache.pdfbox.pdmodel.interactive.digitalsignature.SignatureInterface;
import org.bouncycastle.cert.jcajce.JcaCertStore;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedDataGenerator;
import org.bouncycastle.cms.jcajce.JcaSignerInfoGeneratorBuilder;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;

/**
 * Signs a PDF the way JSignPdf does: Apache PDFBox 2 prepares the signature dictionary
 * (adbe.pkcs7.detached) and Bouncy Castle builds the CMS SignedData, whose signature is made by
 * the token's key through OpenJDK's SunPKCS11 (KeyStore "PKCS11" loaded with the password: one
 * login, one signature). Used by tests/java.rs.
 *
 * Usage: SignPdf CONFIG PASSWORD UNSIGNED_PDF SIGNED_PDF
 * Writes UNSIGNED_PDF (a one-page document) first, then SIGNED_PDF (it, signed incrementally).
 */
public class SignPdf {
    public static void main(String[] args) throws Exception {
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(provider);
        KeyStore token = KeyStore.getInstance("PKCS11", provider);
        token.load(null, args[1].toCharArray());
        String alias = null;
        for (String a : Collections.list(token.aliases())) {
            if (token.isKeyEntry(a)) {
                alias = a;
            }
        }
        PrivateKey key = (PrivateKey) token.getKey(alias, null);
        List<Certificate> chain = new ArrayList<>();
        Collections.addAll(chain, token.getCertificateChain(alias));
        X509Certificate signer = (X509Certificate) chain.get(0);

        try (PDDocument doc = new PDDocument()) {
            PDPage page = new PDPage();
            doc.addPage(page);
            try (PDPageContentStream text = new PDPageContentStream(doc, page)) {
                text.beginText();
                text.setFont(PDType1Font.HELVETICA, 14);
                text.newLineAtOffset(72, 700);
                text.showText("A document signed with the My Number Card from Java");
                text.endText();
            }
            doc.save(new File(args[2]));
        }

        SignatureInterface cms = (InputStream content) -> {
            try {
                ContentSigner contentSigner = new JcaContentSignerBuilder("SHA256withRSA")
                        .setProvider(provider).build(key);
                CMSSignedDataGenerator gen = new CMSSignedDataGenerator();
                gen.addSignerInfoGenerator(new JcaSignerInfoGeneratorBuilder(
                        new JcaDigestCalculatorProviderBuilder().build())
                        .build(contentSigner, signer));
                gen.addCertificates(new JcaCertStore(chain));
                byte[] data = content.readAllBytes();
                return gen.generate(new CMSProcessableByteArray(data), false).getEncoded();
            } catch (Exception e) {
                throw new java.io.IOException(e);
            }
        };
        try (PDDocument doc = PDDocument.load(new File(args[2]));
                FileOutputStream out = new FileOutputStream(args[3])) {
            PDSignature signature = new PDSignature();
            signature.setFilter(PDSignature.FILTER_ADOBE_PPKLITE);
            signature.setSubFilter(PDSignature.SUBFILTER_ADBE_PKCS7_DETACHED);
            signature.setName("My Number Card holder");
            signature.setReason("tests/java.rs");
            signature.setSignDate(Calendar.getInstance());
            doc.addSignature(signature, cms);
            doc.saveIncremental(out);
        }
        System.out.println("signed " + args[3] + " as " + signer.getSubjectX500Principal());
    }
}
