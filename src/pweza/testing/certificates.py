"""Test certificate authorities, made and used with the openssl CLI (the stdlib cannot issue
certificates): the control plane's CA (``controlplane.pki``) and the add-ons' own."""

from __future__ import annotations

import pathlib
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from typing import ClassVar, Self

__all__ = ["CertificateAuthority", "CertificateError"]


class CertificateError(RuntimeError):
    """openssl is missing, or refused to make a key or certificate."""


class CertificateAuthority:
    """A CA whose certificates are made with the openssl CLI.

    ``CertificateAuthority.create(dir, cn)`` makes a new CA; ``CertificateAuthority(dir,
    cert, key)`` signs with an existing one (say the control plane's ``pki/ca.crt``).
    """

    # What a failure raises: a subclass names its own kit's error.
    failure: ClassVar[type[Exception]] = CertificateError

    def __init__(self, directory: pathlib.Path, cert: pathlib.Path, key: pathlib.Path) -> None:
        self.dir = directory
        self.cert = cert
        self.key = key

    @classmethod
    def create(cls, directory: pathlib.Path, common_name: str, *, name: str = "ca") -> Self:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = cls(directory, directory / f"{name}.crt", directory / f"{name}.key")
        ca._ec_key(ca.key)
        config = directory / f"{name}.cnf"
        config.write_text(
            f"[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {common_name}\n"
            "[ext]\nbasicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
            "subjectKeyIdentifier = hash\n"
        )
        ca.openssl(
            "req", "-x509", "-new", "-key", str(ca.key), "-config", str(config),
            "-extensions", "ext", "-days", "30", "-sha256", "-out", str(ca.cert),
        )  # fmt: skip
        return ca

    def openssl(self, *args: str) -> None:
        """Run openssl in this CA's directory."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise self.failure("the openssl CLI is required to make test certificates")
        result = subprocess.run([openssl, *args], cwd=self.dir, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise self.failure(f"openssl {' '.join(args)} failed:\n{result.stderr.strip()}")

    def _ec_key(self, path: pathlib.Path) -> None:
        self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
        path.chmod(0o600)

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organization: str | None = None,
        server_names: Sequence[str] = (),
        server_ips: Sequence[str] = (),
    ) -> tuple[pathlib.Path, pathlib.Path]:
        """A leaf certificate and key in this CA's directory: a server one if it has SANs, else a client one."""
        key, csr, cert, ext = (self.dir / f"{name}.{suffix}" for suffix in ("key", "csr", "crt", "ext"))
        self._ec_key(key)
        subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
        self.openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        sans = [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
        ext.write_text(
            "[ext]\nbasicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage = {'serverAuth' if sans else 'clientAuth'}\nauthorityKeyIdentifier = keyid\n"
            + (f"subjectAltName = {','.join(sans)}\n" if sans else "")
        )
        # A random serial: several CertificateAuthority objects may sign with one CA key.
        self.openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-set_serial", str(secrets.randbits(63)), "-days", "30", "-sha256",
            "-extfile", str(ext), "-extensions", "ext", "-out", str(cert),
        )  # fmt: skip
        return cert, key
