from generic_worker.workerproto import CAPABILITIES, decode, encode


def test_encode_decode_round_trip():
    line = encode({"type": "hello", "capabilities": ["log"]})
    assert line == b'~{"type":"hello","capabilities":["log"]}\n'
    assert decode(line) == {"type": "hello", "capabilities": ["log"]}


def test_non_protocol_lines_are_ignored():
    assert decode(b"plain log line\n") is None
    assert decode(b"~not json\n") is None
    assert decode(b'~["a list"]\n') is None
    assert decode(b'~{"no":"type"}\n') is None


def test_capabilities_are_upstreams_sorted():
    assert list(CAPABILITIES) == sorted(
        ["error-report", "graceful-termination", "log", "new-credentials", "shutdown"]
    )
