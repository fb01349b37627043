import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.Provider;
import java.security.Security;
import java.security.cert.CertificateFactory;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * A JSSE TLS client that authenticates with a PKCS#11 token's key through OpenJDK's SunPKCS11:
 * the token is a KeyStore "PKCS11" (loaded with the PIN) handed to a KeyManagerFactory. Sends
 * "GET /" and prints the answer (the status page of `openssl s_server -www`). Used by
 * tests/java.rs.
 *
 * Usage: TlsClient CONFIG PIN SERVER_CA_PEM PORT PROTOCOL   (PROTOCOL: TLSv1.3 or TLSv1.2)
 */
public class TlsClient {
    public static void main(String[] args) throws Exception {
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        // Registered, so that JSSE finds the token's RSASSA-PSS and RSA signatures for its key.
        Security.addProvider(provider);
        KeyStore token = KeyStore.getInstance("PKCS11", provider);
        token.load(null, args[1].toCharArray());
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("NewSunX509");
        kmf.init(token, null);

        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        try (InputStream in = Files.newInputStream(Path.of(args[2]))) {
            trust.setCertificateEntry("server CA",
                    CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);

        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        try (SSLSocket socket = (SSLSocket) context.getSocketFactory()
                .createSocket("127.0.0.1", Integer.parseInt(args[3]))) {
            SSLParameters params = socket.getSSLParameters();
            params.setProtocols(new String[] {args[4]});
            params.setEndpointIdentificationAlgorithm("HTTPS"); // the server's certificate names 127.0.0.1
            socket.setSSLParameters(params);
            socket.startHandshake();
            System.out.println("handshake " + socket.getSession().getProtocol() + " "
                    + socket.getSession().getCipherSuite());
            OutputStream out = socket.getOutputStream();
            out.write("GET / HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            ByteArrayOutputStream page = new ByteArrayOutputStream();
            socket.getInputStream().transferTo(page);
            System.out.println(page.toString(StandardCharsets.UTF_8));
        }
    }
}
