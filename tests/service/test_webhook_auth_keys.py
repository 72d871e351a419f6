"""(ext) An ``rsa`` WebhookAuth's public key in a property is read when an installation is saved
(docs/format.md, "WebhookAuth"): through the real gRPC API a value that is not a usable RSA key
is refused with the property named and the value not repeated, on enable and on update, and a
usable one (base64 DER as MessageMedia returns it) is kept."""

from __future__ import annotations

import json

import grpc
import pytest

from client._webhook_signing import RSA_PUBLIC as GOOD
from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, definition, rpc_details

KEY = "Signature public key"
BAD = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxyz"


@pytest.fixture
async def signed(gateway: Gateway, provider: RunningFakeProvider) -> Gateway:
    doc = json.loads(
        definition(
            provider.url, properties=["API key", {"name": KEY, "secret": False}], send_file=False
        )
    )
    doc["WebhookAuth"] = {"type": "rsa", "header": "X-Signature", "public_key": f"${KEY}$"}
    await gateway.register(json.dumps(doc))
    return gateway


async def test_a_value_that_is_not_an_rsa_key_is_refused_naming_the_property(
    signed: Gateway,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await signed.enable("acme-sms", properties={"API key": "k1", KEY: BAD})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (violation,) = rpc_details(caught.value)["bad_request"].field_violations
    assert violation.field == f"properties[{KEY}]"
    assert violation.description == "the public key is not a PEM or base64 DER RSA public key"
    assert BAD not in str(caught.value)


async def test_a_usable_key_is_kept_and_a_bad_update_refused(signed: Gateway) -> None:
    installation = await signed.enable("acme-sms", properties={"API key": "k1", KEY: GOOD})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await signed.stub.UpdateInstallation(
            gateway_pb2.UpdateInstallationRequest(
                installation_id=installation.id, properties={KEY: "not a key"}
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (violation,) = rpc_details(caught.value)["bad_request"].field_violations
    assert violation.field == f"properties[{KEY}]"
