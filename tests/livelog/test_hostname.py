"""Stateless-DNS host names: upstream's known example, round trips, and refusing forgeries."""

import base64
import datetime

import pytest

from generic_worker.livelog import decode_stateless_dns_name, stateless_dns_name

UPSTREAM_EXAMPLE = "zmvtoaqaaaavkjlja2i2n2ligiol2idykqa3t7vk4vfakdv6.foo.com"
"""stateless-dns-go hostname_test.go ExampleDecode: 203.43.55.2, 2016-06-06 11:11:27.889 UTC, salt [166 233]."""


def test_decodes_upstreams_example():
    decoded = decode_stateless_dns_name(UPSTREAM_EXAMPLE, "foo.com", "turnip4tea")
    assert decoded.ip == "203.43.55.2"
    assert decoded.expires == datetime.datetime(2016, 6, 6, 11, 11, 27, 889000, tzinfo=datetime.UTC)
    assert decoded.salt == bytes([166, 233])


def test_encodes_upstreams_example_given_its_salt():
    expires = datetime.datetime(2016, 6, 6, 11, 11, 27, 889000, tzinfo=datetime.UTC)
    name = stateless_dns_name("203.43.55.2", "foo.com", expires, "turnip4tea", salt=bytes([166, 233]))
    assert name == UPSTREAM_EXAMPLE


def test_round_trip_with_a_random_salt():
    expires = datetime.datetime.now(datetime.UTC).replace(microsecond=123000) + datetime.timedelta(hours=1)
    names = {stateless_dns_name("10.1.2.3", "Taskcluster-Worker.net", expires, "s3cret") for _ in range(20)}
    assert len(names) > 1  # the salt differs
    for name in names:
        label, _, domain = name.partition(".")
        assert len(label) == 48 and label == label.lower() and domain == "taskcluster-worker.net"
        decoded = decode_stateless_dns_name(name, "taskcluster-worker.net", "s3cret")
        assert (decoded.ip, decoded.expires) == ("10.1.2.3", expires)
        raw = base64.b32decode(label.upper())
        assert raw[:4] == bytes([10, 1, 2, 3]) and len(raw) == 30


def test_wrong_secret_or_tampering_is_refused():
    with pytest.raises(ValueError, match="signature"):
        decode_stateless_dns_name(UPSTREAM_EXAMPLE, "foo.com", "not-the-secret")
    # upstream's TestBadName: one character of the signature changed
    with pytest.raises(ValueError, match="signature"):
        decode_stateless_dns_name(UPSTREAM_EXAMPLE.replace("kdv6", "kdw6"), "foo.com", "turnip4tea")
    with pytest.raises(ValueError, match="not under"):
        decode_stateless_dns_name(UPSTREAM_EXAMPLE, "bar.com", "turnip4tea")
    with pytest.raises(ValueError):
        decode_stateless_dns_name("short.foo.com", "foo.com", "turnip4tea")


def test_only_ipv4_addresses():
    with pytest.raises(ValueError):
        stateless_dns_name("::1", "foo.com", datetime.datetime.now(datetime.UTC), "s")
