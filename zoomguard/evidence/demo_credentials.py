"""Throw-away Content Credentials for the demo and the tests: an ES256 chain and offline signing.

The chain is what c2pa accepts for claim signing (root CA + leaf with the C2PA claim-signing EKU); nothing
here is trusted anywhere unless its root is configured as an anchor. No time-stamp authority: offline.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, ObjectIdentifier

SIGNING_CONTEXT = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},
}

VALIDITY = (dt.timedelta(days=-1), dt.timedelta(days=30))  # notBefore, notAfter of each certificate, from now


@dataclass(frozen=True)
class Chain:
    """A root CA and a leaf that signs manifests: `pem` is what the signer sends (leaf + root)."""

    root_pem: str
    pem: bytes
    key_pem: bytes
    name: str


def make_chain(
    name: str,
    ocsp_url: str | None = None,
    leaf_validity: tuple[dt.timedelta, dt.timedelta] = VALIDITY,
) -> Chain:
    """`leaf_validity`: the signer's notBefore and notAfter, from now. c2pa refuses to sign outside them, so a
    signature whose certificate has expired is made with a short-lived leaf and read after it lapses."""
    now = dt.datetime.now(dt.UTC)

    def subject(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{name} Org")]
        )

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(sign, False, False, False, False, ca, ca, False, False)

    def builder(
        name: x509.Name,
        issuer: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        validity: tuple[dt.timedelta, dt.timedelta] = VALIDITY,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + validity[0])
            .not_valid_after(now + validity[1])
        )

    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (
        builder(subject(f"{name} Root"), subject(f"{name} Root"), root_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        builder(subject(f"{name} Signer"), root.subject, leaf_key, leaf_validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, ObjectIdentifier("1.3.6.1.4.1.62558.2.1")]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
    )
    if ocsp_url:
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        leaf = leaf.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    pem = [cert.public_bytes(serialization.Encoding.PEM) for cert in (leaf.sign(root_key, hashes.SHA256()), root)]
    key = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Chain(root_pem=pem[1].decode(), pem=pem[0] + pem[1], key_pem=key, name=name)


def sign(
    chain: Chain,
    data: bytes,
    mime: str,
    source_type: c2pa.C2paDigitalSourceType = c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA,
    edit: bool = False,
    remote_url: str | None = None,
) -> bytes:
    """A created manifest declaring `source_type`; with `edit`, an editor's manifest over `data`, signed before
    (it becomes the parent ingredient)."""
    builder = c2pa.Builder(
        {"claim_generator_info": [{"name": f"{chain.name} App", "version": "1.0"}]},
        context=c2pa.Context.from_dict(SIGNING_CONTEXT),
    )
    if edit:
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
        builder.add_ingredient({"title": "parent", "relationship": "parentOf"}, mime, io.BytesIO(data))
        builder.add_action({"action": "c2pa.color_adjustments"})
    else:
        builder.set_intent(c2pa.C2paBuilderIntent.CREATE, source_type)
    if remote_url:
        builder.set_no_embed()
        builder.set_remote_url(remote_url)
    out = io.BytesIO()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain.pem, chain.key_pem, None))
    builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()
