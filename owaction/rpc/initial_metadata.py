"""Initial metadata sent with the reply rather than in a batch of its own.

grpcio's synchronous server sends what ``ServicerContext.send_initial_metadata`` is given at once,
as a batch of its own: one more operation for the transport, one more write, and one more
completion its single polling thread has to take the GIL for. Measured on the gRPC door alone
(a service answering at once, 16 calls in flight), that batch cost about 100 us of CPU per call,
more than the rest of the door above a bare grpcio server. Initial metadata that has not been
sent when the call ends goes out in the batch that carries the reply and the status (or the
error status), but grpcio has no public way to put anything into it.

``send_with_reply`` does that through the one grpcio function every such batch takes its
initial metadata from (``grpc._server._get_initial_metadata``), wrapped once by ``install``:
the metadata is kept on the call's state and added to the batch that ends the call, whether it
answers or aborts. grpcio is pinned (requirements.txt); when its internals are not the ones this
was written against, ``install`` declines and ``send_with_reply`` sends at once, as before. A
client reads the same initial metadata either way (tests/rpc/test_rpcs.py); for a unary call it
only arrives with the reply instead of before it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence

import grpc

_ATTRIBUTE = "_owaction_initial_metadata"
_lock = threading.Lock()
_installed: bool | None = None


def install() -> bool:
    """Wrap grpcio's initial-metadata function once; False when grpcio is not as expected."""
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        _installed = False
        try:
            from grpc import _server
        except ImportError:  # pragma: no cover - grpcio without its sync server
            return False
        original = getattr(_server, "_get_initial_metadata", None)
        context_class = getattr(_server, "_Context", None)
        if (original is None or context_class is None
                or list(inspect.signature(original).parameters) != ["state", "metadata"]
                or not hasattr(_server._RPCState(), "initial_metadata_allowed")):
            return False

        def _get_initial_metadata(state, metadata):
            if metadata is None:
                metadata = getattr(state, _ATTRIBUTE, None)
            return original(state, metadata)

        _server._get_initial_metadata = _get_initial_metadata
        _installed = True
        return True


def send_with_reply(context: grpc.ServicerContext, metadata: Sequence[tuple[str, str]]) -> None:
    """Send ``metadata`` as the call's initial metadata, in the batch that ends the call.

    As with ``send_initial_metadata``, a call its client has already cancelled raises
    ``grpc.RpcError`` at once (so no work is done for it), and a second call raises ValueError.
    """
    state = getattr(context, "_state", None) if _installed else None
    if state is None or not context.is_active():
        context.send_initial_metadata(metadata)
        return
    with state.condition:
        if state.initial_metadata_allowed and getattr(state, _ATTRIBUTE, None) is None:
            setattr(state, _ATTRIBUTE, tuple(metadata))
            return
    raise ValueError("Initial metadata no longer allowed!")
