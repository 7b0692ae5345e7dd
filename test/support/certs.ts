// Test certificates made with openssl (on every machine here): a CA and leaf certificates
// signed by it, ECDSA P-256, written as PEM files into a directory.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeCa(dir: string, name: string): CertFiles {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', files.key, '-out', files.cert], dir);
  return files;
}

/** A serving certificate for `sans` (e.g. ['IP:127.0.0.1', 'DNS:localhost']), signed by `ca`. */
export function makeServerCert(dir: string, name: string, ca: CertFiles, sans: string[]): CertFiles {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', files.key, '-out', csr], dir);
  fs.writeFileSync(ext, `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', files.cert], dir);
  return files;
}

/** An RSA key pair for the API server to sign and check service-account tokens. */
export function makeServiceAccountKeys(dir: string): { privateKey: string; publicKey: string } {
  const privateKey = path.join(dir, 'sa.key');
  const publicKey = path.join(dir, 'sa.pub');
  openssl(['genrsa', '-out', privateKey, '2048'], dir);
  openssl(['rsa', '-in', privateKey, '-pubout', '-out', publicKey], dir);
  return { privateKey, publicKey };
}
