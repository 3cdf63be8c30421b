"""Run moto's server with DynamoDB requests serialised.

moto_server handles requests on threads, and its DynamoDB backend does not
lock items: two concurrent UpdateItem ADD calls on one counter can both
read the old value, so one increment is lost. Real DynamoDB applies each
write atomically. This launcher serves the same application as
moto_server, but lets one DynamoDB request run at a time, so conditional
writes and atomic counters behave as they do on AWS; SQS long polls and
every other service stay concurrent.

It also counts requests by X-Amz-Target (GET /_posse/calls answers the
counts as JSON), so benchmarks can report KMS calls per delivery.

Usage: python serve.py -H 127.0.0.1 -p 4566
"""

import argparse
import collections
import json
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()

    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()
    counted = threading.Lock()
    calls = collections.Counter()

    def serialised(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if environ.get("PATH_INFO") == "/_posse/calls":
            with counted:
                body = json.dumps(calls).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if target:
            with counted:
                calls[target] += 1
        if target.startswith("DynamoDB_"):
            with dynamodb:
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(args.host, args.port, serialised, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
