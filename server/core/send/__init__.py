"""The send path: a ``SendMessage`` or ``SendFile`` from the API to the provider and back.

:class:`SendPath` finds the installation, renders the definition's request, calls the provider
through the outbound client, reads the answer with the ``response_map`` and keeps the message.
"""

from ._sender import SendOutcome, SendPath, SendRequest, plan_requests, send_variables

__all__ = ["SendOutcome", "SendPath", "SendRequest", "plan_requests", "send_variables"]
