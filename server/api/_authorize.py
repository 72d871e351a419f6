"""Who calls a Gateway RPC, and whether the request may touch what it names.

The token's scope was checked by :class:`server.security.api_access.AccessInterceptor` before the
handler ran; here the handler learns the :class:`Caller` and, for a token scoped to
organisations, that the records the request names are theirs (the matrix is in
:mod:`server.security.api_access`).
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import Message

from ..core import InstallationDirectory, installation_not_found
from ..errors import NotFound
from ..security.api_access import AccessPolicy, Caller
from ..store import Store

__all__ = ["Authorizer", "message_not_found"]

logger = logging.getLogger(__name__)

_ANYONE = Caller()  # the caller of every call when no API token is configured


class Authorizer:
    def __init__(
        self, access: AccessPolicy, *, installations: InstallationDirectory, store: Store
    ) -> None:
        self._access = access
        self._installations = installations
        self._store = store

    async def __call__(self, request: Message, context: grpc.aio.ServicerContext) -> Caller:
        """The caller, once the request may go ahead as far as what it names goes.

        For a token scoped to organisations: an ``org_id`` the request names must be one of
        them (PERMISSION_DENIED), and an installation or a message it names must belong to one
        — otherwise NOT_FOUND, the same answer as for an id that does not exist. Filters and
        durable consumers are narrowed by the handlers, with the caller returned.
        """
        if not self._access.enforced:
            return _ANYONE  # no tokens: nothing to look up on the hot path
        caller = Caller.of(self._access, context.invocation_metadata() or ())
        if caller.orgs is None:
            return caller
        caller.check_org(_named(request, "org_id"))
        installation_id = _named(request, "installation_id")
        if installation_id:
            installation = await self._installations.get(installation_id)
            if not caller.sees(installation.org_id):
                _log_hidden("installation", caller)
                raise installation_not_found(installation_id)
        message_id = _named(request, "message_id")
        if message_id:
            message = await self._store.get_message(message_id)
            if message is None or not caller.sees(message.org_id):
                if message is not None:
                    _log_hidden("message", caller)
                raise message_not_found(message_id)
        return caller


def message_not_found(message_id: str) -> NotFound:
    return NotFound(f"no message {message_id!r}", reason="MESSAGE_NOT_FOUND")


def _named(request: Message, field: str) -> str:
    """The string field ``field`` of ``request`` ("" when its type has no such field)."""
    if field not in request.DESCRIPTOR.fields_by_name:
        return ""
    value: str = getattr(request, field)
    return value


def _log_hidden(record: str, caller: Caller) -> None:
    # For the operator: a scoped token reached for another organisation's record (the caller
    # is answered as for a missing one).
    logger.info(
        "another organisation's record answered as not found",
        extra={"record": record, "token": caller.name},
    )
