"""A local S3 server for the tests: moto's S3 backend served on 127.0.0.1.

Run as ``python tests/s3/server.py``: it binds a free port, prints ``PORT <n>`` on
stdout once it accepts connections, and serves until SIGTERM.

Two changes to moto's own ``moto_server`` (which the tests cannot use as it is):

* **Writes are serialized.** moto (5.2) answers ``If-None-Match: *`` on PutObject
  with 412 when the key exists, but it checks and then stores in two steps of one
  request handler, and ``moto_server`` handles requests on threads: two conditional
  PUTs of one key can interleave between the steps and both succeed. S3 itself makes
  the check and the write one atomic step, and so does this server, by running
  every request that changes something (PUT, POST, DELETE) under one lock. Reads
  stay concurrent.
* **Buckets that play servers without conditional writes**, for the refusal tests:
  in a bucket whose name starts with ``no-conditional-`` the ``If-None-Match``
  header is dropped before moto sees it (a server that ignores it, as older
  S3-compatible servers do), and in one starting with ``not-implemented-`` a PUT
  carrying it is answered 501 NotImplemented.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

IGNORES_IF_NONE_MATCH = "no-conditional-"
REJECTS_IF_NONE_MATCH = "not-implemented-"

NOT_IMPLEMENTED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
                   b"<Message>A header you provided implies functionality that is not "
                   b"implemented</Message><Header>If-None-Match</Header></Error>")


class S3Emulation:
    """WSGI middleware around moto's application (see the module's docstring)."""

    def __init__(self, app):
        self.app = app
        self.writes = threading.Lock()

    def __call__(self, environ, start_response):
        bucket = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
        if "HTTP_IF_NONE_MATCH" in environ:
            if bucket.startswith(IGNORES_IF_NONE_MATCH):
                del environ["HTTP_IF_NONE_MATCH"]
            elif bucket.startswith(REJECTS_IF_NONE_MATCH) and environ["REQUEST_METHOD"] == "PUT":
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("501 Not Implemented", [("Content-Type", "application/xml"),
                                                       ("Content-Length", str(len(NOT_IMPLEMENTED)))])
                return [NOT_IMPLEMENTED]
        if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            return self.app(environ, start_response)
        with self.writes:  # the whole response is made inside: moto answers eagerly
            return list(self.app(environ, start_response))


def main() -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    app = S3Emulation(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
