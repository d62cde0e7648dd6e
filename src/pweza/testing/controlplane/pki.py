"""The control plane's certificates: a test CA, the service-account key pair, and the serving
and client certificates it issues (to the components, and to a real node's kubelet)."""

from __future__ import annotations

import pathlib

from pweza.testing.certificates import CertificateAuthority
from pweza.testing.controlplane.errors import ControlPlaneError

__all__ = ["Pki"]


class Pki(CertificateAuthority):
    """The cluster's CA (``ca.crt``, ``ca.key``) with the service-account key pair (``sa.key``,
    ``sa.pub``) beside it: ``Pki.create(directory, cn)``, then ``create_service_account_keys()``."""

    failure = ControlPlaneError

    @property
    def ca_cert(self) -> pathlib.Path:
        return self.cert

    @property
    def ca_key(self) -> pathlib.Path:
        return self.key

    @property
    def sa_key(self) -> pathlib.Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> pathlib.Path:
        return self.dir / "sa.pub"

    def create_service_account_keys(self) -> None:
        # RSA rather than EC: some service-account token consumers only handle RS256.
        self.openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(self.sa_key))
        self.openssl("pkey", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub))
