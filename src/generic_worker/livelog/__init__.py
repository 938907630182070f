"""The built-in live log: an HTTP(S) server streaming running tasks' logs, and its host names.

- `server`: `LiveLogServer`, one per worker, serving `/log/<token>` for each running task;
- `hostname`: the stateless-DNS host names that live log URLs use when `subdomain` is set.
"""

from generic_worker.livelog.hostname import DecodedName, decode_stateless_dns_name, stateless_dns_name
from generic_worker.livelog.server import CONTENT_TYPE, LiveLogServer

__all__ = [
    "CONTENT_TYPE",
    "DecodedName",
    "LiveLogServer",
    "decode_stateless_dns_name",
    "stateless_dns_name",
]
