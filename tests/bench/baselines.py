"""The baselines the service is measured against, in the same run and on the same fake provider:

- ``raw aiohttp``: this process posts straight to the fake provider — the cost of the provider
  call alone (the floor for latency at 1 caller);
- ``OutboundClient``: the same loop through the gateway's outbound client — what its policy and
  error handling cost over bare aiohttp;
- ``grpc echo``: a bare grpc.aio service whose one method returns its request bytes — what gRPC
  alone costs;
- ``bare relay``: grpc.aio in, aiohttp straight to the fake provider, nothing rendered or stored —
  the ceiling for any Python gateway here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import grpc

from server.engine import RenderedRequest
from server.outbound import OutboundClient, OutboundPolicy

from ._harness import PAYLOAD, BenchEnv, Benchmark, Result, grpc_unary_caller, measure

__all__ = ["BASELINES", "start_echo_server", "start_relay_server"]

_SERVICE = "bench.Baseline"
_HEADERS = {"Content-Type": "application/json"}

# The child process's servers: a grpc.aio server stops when it is garbage-collected.
_RUNNING: list[grpc.aio.Server] = []


async def _grpc_server(method: str, behaviour: Callable[[bytes, Any], Awaitable[bytes]]) -> str:
    handler = grpc.method_handlers_generic_handler(
        _SERVICE,
        {method: grpc.unary_unary_rpc_method_handler(behaviour)},  # no (de)serializers: bytes
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _RUNNING.append(server)
    return f"127.0.0.1:{port}"


async def start_echo_server() -> str:
    """(In a child process.) A gRPC service whose ``Echo`` returns the request's bytes."""

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    return await _grpc_server("Echo", echo)


async def start_relay_server(provider_url: str) -> str:
    """(In a child process.) A gRPC service whose ``Relay`` posts the request's bytes to the
    provider with one shared aiohttp session and returns the provider's body."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

    async def relay(request: bytes, context: Any) -> bytes:
        async with session.post(provider_url, data=request, headers=_HEADERS) as response:
            body = await response.read()
        if response.status >= 300:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"provider said {response.status}")
        return body

    return await _grpc_server("Relay", relay)


async def raw_aiohttp(env: BenchEnv, benchmark: Benchmark) -> Result:
    url = f"{env.fake_url}/messages"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def call() -> bytes:
            async with session.post(url, data=PAYLOAD, headers=_HEADERS) as response:
                body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"fake provider answered {response.status}")
            return body

        return await measure(benchmark, call)


async def outbound_client(env: BenchEnv, benchmark: Benchmark) -> Result:
    """The raw loop again through :class:`OutboundClient` (policy, pooled session, body cap):
    what the gateway's own HTTP layer costs over bare aiohttp."""
    request = RenderedRequest(
        method="POST", url=f"{env.fake_url}/messages", headers=tuple(_HEADERS.items()), body=PAYLOAD
    )
    policy = OutboundPolicy.from_strings(allow=["127.0.0.1"])
    async with OutboundClient(policy=policy) as client:

        async def call() -> bytes:
            response = await client.send(request, timeout=10)
            if response.status != 200:
                raise RuntimeError(f"fake provider answered {response.status}")
            return response.body

        return await measure(benchmark, call)


async def grpc_echo(env: BenchEnv, benchmark: Benchmark) -> Result:
    target = await env.server("grpc echo", start_echo_server)
    async with grpc.aio.insecure_channel(target) as channel:
        return await measure(benchmark, grpc_unary_caller(channel, f"/{_SERVICE}/Echo", PAYLOAD))


async def bare_relay(env: BenchEnv, benchmark: Benchmark) -> Result:
    target = await env.server("bare relay", start_relay_server, f"{env.fake_url}/messages")
    async with grpc.aio.insecure_channel(target) as channel:
        return await measure(benchmark, grpc_unary_caller(channel, f"/{_SERVICE}/Relay", PAYLOAD))


BASELINES: list[Benchmark] = [
    Benchmark(name=name, concurrency=concurrency, run=run)
    for name, run in (
        ("raw aiohttp → fake", raw_aiohttp),
        ("OutboundClient → fake", outbound_client),
        ("grpc echo", grpc_echo),
        ("bare relay (grpc → aiohttp → fake)", bare_relay),
    )
    for concurrency in (1, 64)
]
