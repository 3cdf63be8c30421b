"""schemathesis hooks for TestAPIFuzz: keep the run on loopback.

schemathesis puts URLs it makes up (https://0.com, https://x.example, ...)
in request bodies: webhook endpoints, media, Mastodon instances, return
URLs. The functions may call them later (the outbound policy lets public
addresses through), so before each request every http(s) URL in the body
whose host is not loopback is pointed at 127.0.0.1:9 (discard: nothing
listens), keeping its path and query. The API still validates the URL as
sent; the run reaches no address but the local stack.
"""

from urllib.parse import urlsplit, urlunsplit

import schemathesis

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
NOWHERE = "127.0.0.1:9"


def on_loopback(value):
    """value with every non-loopback http(s) URL in it moved to NOWHERE."""
    if isinstance(value, dict):
        return {k: on_loopback(v) for k, v in value.items()}
    if isinstance(value, list):
        return [on_loopback(v) for v in value]
    if not isinstance(value, str) or "//" not in value:
        return value
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
    except ValueError:
        return value
    if parts.scheme.lower() not in ("http", "https") or host is None or host in LOOPBACK_HOSTS:
        return value
    return urlunsplit((parts.scheme, NOWHERE, parts.path, parts.query, parts.fragment))


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    case.body = on_loopback(case.body)
