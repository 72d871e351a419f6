"""``python -m tests.reliability._moto_server``: moto's S3 server in a process of its own, with one
bucket, for the replicas of a run to share (docs/media.md, "Storage": replicas share one object
store).

It runs apart from the run's own process, which is busy posting webhooks and reading streams:
the replicas' puts and the checks' reads are answered without waiting for it. Prints one JSON
line, ``{"msg": "moto s3 serving", "url": ..., "bucket": ...}``, once it serves; stops on
SIGTERM or SIGINT. The credentials it takes are any: the run gives the replicas
:data:`tests.media_support.MotoS3`'s.
"""

from __future__ import annotations

import json
import signal
import threading

from tests.media_support import start_moto_s3

__all__ = ["main"]


def main() -> None:
    moto = start_moto_s3()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    bucket = moto.new_bucket()
    line = {"msg": "moto s3 serving", "url": moto.endpoint_url, "bucket": bucket}
    print(json.dumps(line), flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
