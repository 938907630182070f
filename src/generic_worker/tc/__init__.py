"""The one Taskcluster client layer: every Taskcluster API call of the worker goes through here."""

from generic_worker.tc.client import Credentials, ServiceFactory
from generic_worker.tc.failures import TC_ERRORS, http_status, redact_url_secrets

__all__ = [
    "TC_ERRORS",
    "Credentials",
    "ServiceFactory",
    "http_status",
    "redact_url_secrets",
]
