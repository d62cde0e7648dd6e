"""The control plane's certificates: a test CA, the service-account key pair, and the serving
and client certificates it issues (to the components, and to a real node's kubelet)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
from collections.abc import Sequence

from pweza.testing.controlplane.errors import ControlPlaneError

__all__ = ["Pki"]


class Pki:
    """Certificates and keys made with the openssl CLI (the stdlib cannot issue them)."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.dir = directory
        self.ca_cert = directory / "ca.crt"
        self.ca_key = directory / "ca.key"
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"
        self._serial = 1

    def _openssl(self, *args: str) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ControlPlaneError("the openssl CLI is required to make test certificates")
        result = subprocess.run(
            [openssl, *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{result.stderr.strip()}")

    def _ec_key(self, path: pathlib.Path) -> None:
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))

    def create_ca(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ec_key(self.ca_key)
        config = self.dir / "ca.cnf"
        config.write_text(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = pweza-test-ca\n"
            "[ext]\nbasicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
            "subjectKeyIdentifier = hash\n"
        )
        self._openssl(
            "req", "-x509", "-new", "-key", str(self.ca_key), "-config", str(config),
            "-extensions", "ext", "-days", "30", "-sha256", "-out", str(self.ca_cert),
        )  # fmt: skip
        # RSA rather than EC: some service-account token consumers only handle RS256.
        self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                      "-out", str(self.sa_key))  # fmt: skip
        self._openssl("pkey", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub))

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organization: str | None = None,
        server_names: Sequence[str] = (),
        server_ips: Sequence[str] = (),
    ) -> tuple[pathlib.Path, pathlib.Path]:
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        self._ec_key(key)
        subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
        self._openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        sans = [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
        usage = "serverAuth" if sans else "clientAuth"
        ext.write_text(
            "[ext]\nbasicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage = {usage}\nauthorityKeyIdentifier = keyid\n"
            + (f"subjectAltName = {','.join(sans)}\n" if sans else "")
        )
        self._serial += 1
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert), "-CAkey", str(self.ca_key),
            "-set_serial", str(self._serial), "-days", "30", "-sha256",
            "-extfile", str(ext), "-extensions", "ext", "-out", str(cert),
        )  # fmt: skip
        return cert, key
