import base64
import gzip
import zlib

import brotli
import pytest

from eventpipe.ingest.cors import origin_allowed, parse_origins
from eventpipe.ingest.decode import BodyTooLarge, UndecodableBody, decode_all, decode_legacy_store_body

BODY = b'{"message":"' + b"x" * 5000 + b'"}'


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("br", brotli.compress(BODY)),
        ("gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", zlib.compress(BODY)[2:-4]),  # raw deflate, as some browsers send it
        ("identity", BODY),
        ("", BODY),
    ],
)
def test_each_encoding_decodes(encoding, data):
    assert decode_all(data, encoding, 10_000) == BODY


@pytest.mark.parametrize("encoding", ["br", "gzip", "deflate"])
def test_limits_stop_decompression_and_truncation_is_an_error(encoding):
    compress = {"br": brotli.compress, "gzip": gzip.compress, "deflate": zlib.compress}[encoding]
    with pytest.raises(BodyTooLarge):
        decode_all(compress(b"a" * 5_000_000), encoding, 100_000)
    with pytest.raises(UndecodableBody):
        decode_all(compress(BODY)[:-8], encoding, 100_000)


def test_unknown_encoding_names_the_supported_ones():
    with pytest.raises(UndecodableBody, match="br, gzip, deflate"):
        decode_all(BODY, "compress", 10_000)


def test_legacy_store_bodies():
    assert decode_legacy_store_body(base64.b64encode(zlib.compress(BODY)), 10_000) == BODY
    assert decode_legacy_store_body(base64.b64encode(BODY), 10_000) == BODY
    assert decode_legacy_store_body(BODY, 10_000) is BODY
    with pytest.raises(BodyTooLarge):
        decode_legacy_store_body(base64.b64encode(zlib.compress(b"a" * 1_000_000)), 10_000)


def test_origin_patterns():
    patterns = parse_origins("https://app.example.com, *.example.org shop.test")
    assert origin_allowed("https://app.example.com", patterns)
    assert not origin_allowed("http://app.example.com", patterns)  # an exact origin includes the scheme
    assert origin_allowed("https://a.b.example.org", patterns) and origin_allowed("http://example.org", patterns)
    assert origin_allowed("http://shop.test:8080", patterns)
    assert not origin_allowed("https://evil.test", patterns) and not origin_allowed("https://notexample.org", patterns)
    assert origin_allowed("https://anything", ["*"]) and not origin_allowed("https://anything", [])
