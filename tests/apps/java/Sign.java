import java.nio.file.Files;
import java.nio.file.Path;
import java.security.AuthProvider;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Collections;

/**
 * Signs with a PKCS#11 token's private key through OpenJDK's SunPKCS11, as a Java program does:
 * java.security.KeyStore "PKCS11" loaded with the PIN (SunPKCS11 logs in with CKU_USER), then
 * java.security.Signature. Used by tests/java.rs.
 *
 * Usage: Sign CONFIG PIN MESSAGE OUTDIR STEP...
 * Steps, in order:
 *   login              load the keystore with PIN (a C_Login(CKU_USER)); writes OUTDIR/cert.der
 *   logout             AuthProvider.logout() (C_Logout)
 *   NAME=ALGORITHM     sign MESSAGE with ALGORITHM ("SHA256withRSA", "RSASSA-PSS",
 *                      "SHA256withRSASSA-PSS"; PSS with SHA-256, MGF1-SHA-256, salt 32) into
 *                      OUTDIR/NAME.sig, printing "signed NAME"; or "refused NAME: <exception>"
 *   algorithms         print "has ALGORITHM" for each signature algorithm the provider offers
 */
public class Sign {
    public static void main(String[] args) throws Exception {
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(provider);
        char[] pin = args[1].toCharArray();
        byte[] message = Files.readAllBytes(Path.of(args[2]));
        Path out = Path.of(args[3]);
        PrivateKey key = null;
        for (int i = 4; i < args.length; i++) {
            String step = args[i];
            if (step.equals("login")) {
                KeyStore ks = KeyStore.getInstance("PKCS11", provider);
                ks.load(null, pin);
                for (String alias : Collections.list(ks.aliases())) {
                    if (ks.isKeyEntry(alias)) {
                        key = (PrivateKey) ks.getKey(alias, null);
                        Certificate cert = ks.getCertificate(alias);
                        Files.write(out.resolve("cert.der"), cert.getEncoded());
                        System.out.println("key " + alias);
                    }
                }
            } else if (step.equals("logout")) {
                ((AuthProvider) provider).logout();
                System.out.println("logged out");
            } else if (step.equals("algorithms")) {
                for (Provider.Service s : provider.getServices()) {
                    if (s.getType().equals("Signature")) {
                        System.out.println("has " + s.getAlgorithm());
                    }
                }
            } else {
                String[] nameAlg = step.split("=", 2);
                try {
                    Signature sig = Signature.getInstance(nameAlg[1], provider);
                    if (nameAlg[1].contains("PSS")) {
                        sig.setParameter(new PSSParameterSpec("SHA-256", "MGF1",
                                MGF1ParameterSpec.SHA256, 32, PSSParameterSpec.TRAILER_FIELD_BC));
                    }
                    sig.initSign(key);
                    sig.update(message);
                    Files.write(out.resolve(nameAlg[0] + ".sig"), sig.sign());
                    System.out.println("signed " + nameAlg[0]);
                } catch (Exception e) {
                    StringBuilder why = new StringBuilder(e.toString());
                    for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                        why.append(" / caused by ").append(c);
                    }
                    System.out.println("refused " + nameAlg[0] + ": " + why);
                }
            }
        }
    }
}
