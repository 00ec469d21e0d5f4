"""Property tests for the HTTP response parser, without sockets.

The stream is delivered through ``recv_into`` in pieces chosen by hypothesis, so every split
point (inside a status line, a CRLF, a chunk-size line, a body) gets exercised.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.http import ConnectionClosed, HTTPError, Response, ResponseReader

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Pieces:
    """A ``recv_into`` that serves ``data`` cut at ``cuts``; 0 (EOF) once it is used up."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        bounds = sorted({0, len(data), *(c for c in cuts if 0 <= c <= len(data))})
        self.pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        self.eof_reads = 0

    def __call__(self, view: memoryview) -> int:
        assert len(view) > 0, "the reader asked for zero bytes"
        if not self.pieces:
            self.eof_reads += 1
            return 0
        piece = self.pieces[0]
        n = min(len(piece), len(view))
        view[:n] = piece[:n]
        if n == len(piece):
            self.pieces.pop(0)
        else:
            self.pieces[0] = piece[n:]
        return n


def cuts_for(data: bytes) -> st.SearchStrategy[list[int]]:
    cuts = st.lists(st.integers(0, len(data)), max_size=24)
    if len(data) > 4000:
        return cuts
    return st.one_of(cuts, st.just(list(range(len(data)))))  # or one byte at a time


# --- (1) arbitrary and adversarial streams ---------------------------------------------

TOKENS = [
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 204 No Content\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n",
    b"HTTP/1.1 304 x\r\n",
    b"HTTP/2 200\r\n",
    b"Content-Length: ",
    b"content-length:5\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Content-Length: 3, 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Connection: close\r\n",
    b"Trailer: x\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b";",
    b"=",
    b'"',
    b"0",
    b"5",
    b"ffffffffffffffff",
    b"0\r\n\r\n",
    b"3;a=b\r\nabc\r\n",
    b"x-y: z\r\n",
    b"\x00",
    b"\xff\xfe",
]

adversarial = st.one_of(
    st.binary(max_size=400),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=40).map(b"".join),
)


@FUZZ
@given(
    data=st.data(),
    stream=adversarial,
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    limit=st.sampled_from([64, 300, 65536]),
)
def test_any_stream_gives_a_response_or_an_http_error(
    data: st.DataObject, stream: bytes, method: str, limit: int
) -> None:
    recv = Pieces(stream, data.draw(cuts_for(stream)))
    reader = ResponseReader(recv, max_header_bytes=limit)
    for _ in range(3):  # keep reading: later responses must fail just as cleanly
        try:
            response = reader.read_response(method)
        except HTTPError:
            break
        assert isinstance(response, Response)
        assert 200 <= response.status <= 999
        assert isinstance(response.body, bytes) and len(response.body) <= len(stream)
        assert all(k == k.lower() for k in response.headers)
    assert recv.eof_reads <= 1, "the reader went on reading after the peer closed"


# --- (2) generated valid responses ------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FRAMING = {"content-length", "transfer-encoding", "connection", "trailer"}
# Drawing whole byte strings and mapping them onto the wanted alphabet is much cheaper for
# hypothesis than drawing character by character.
TO_TCHAR = bytes(TCHAR[i % len(TCHAR)].encode()[0] for i in range(256))
TO_VALUE = bytes(
    (b if 0x21 <= b < 0x7F or b >= 0x80 or b in (0x09, 0x20) else 0x41 + b % 26) for b in range(256)
)

names = (
    st.binary(min_size=1, max_size=12)
    .map(lambda raw: raw.translate(TO_TCHAR).decode())
    .filter(lambda n: n.lower() not in FRAMING)
)
ows = st.sampled_from([b"", b" ", b"\t", b"  \t"])
# VCHAR, obs-text (not necessarily valid UTF-8), inner SP/HTAB; no leading/trailing space.
field_values = st.binary(max_size=40).map(lambda raw: raw.translate(TO_VALUE).strip(b" \t"))


@st.composite
def field_block(
    draw: st.DrawFn, extra: tuple[str, bytes] | None = None
) -> tuple[bytes, dict[str, str]]:
    """Field lines (each CRLF-terminated) and the dict the parser must produce for them."""
    fields = draw(st.lists(st.tuples(names, field_values), max_size=6))
    if extra is not None:
        fields.insert(draw(st.integers(0, len(fields))), extra)
    raw = b""
    expected: dict[str, str] = {}
    for name, value in fields:
        raw += name.encode() + b":" + draw(ows) + value + draw(ows) + b"\r\n"
        key = name.lower()
        text = value.decode("utf-8", "surrogateescape")
        expected[key] = f"{expected[key]}, {text}" if key in expected else text
    return raw, expected


@st.composite
def chunk_extension(draw: st.DrawFn) -> bytes:
    name = draw(st.binary(min_size=1, max_size=5)).translate(TO_TCHAR)
    value = draw(
        st.one_of(
            st.just(b""),
            st.binary(min_size=1, max_size=5).map(lambda v: b"=" + v.translate(TO_TCHAR)),
            st.text("abc ;=,", max_size=5).map(lambda v: b'="' + v.encode() + b'"'),
        )
    )
    return draw(st.sampled_from([b"", b" "])) + b";" + name + value


# Bodies above the reader's 64 KiB read size take the receive-straight-into-the-body path;
# drawing them byte by byte would be slow, so vary only their length and seed.
big_bodies = st.builds(
    lambda n, seed: (
        bytes((seed + i * 31) & 0xFF for i in range(256)) * (n // 256) + b"\x00" * (n % 256)
    ),
    st.integers(65_536, 140_000),
    st.integers(0, 255),
)


@dataclass
class Expected:
    raw: bytes
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str]


@st.composite
def interim(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([100, 102, 103]))
    block, _ = draw(field_block())
    return f"HTTP/1.1 {status} Interim\r\n".encode() + block + b"\r\n"


@st.composite
def responses(draw: st.DrawFn, method: str) -> Expected:
    status = draw(st.one_of(st.sampled_from([200, 202, 204, 304, 413, 500]), st.integers(200, 999)))
    reason_raw = draw(field_values)
    chunked = draw(st.booleans())
    body = draw(st.one_of(st.binary(max_size=600), big_bodies))
    no_body = method == "HEAD" or status in (204, 304)
    version = b"HTTP/1.1" if chunked or draw(st.booleans()) else b"HTTP/1.0"

    if chunked:
        framing = ("Transfer-Encoding", b"chunked")
    else:
        framing = ("Content-Length", str(len(body)).encode())
    block, headers = draw(field_block(framing))
    raw = b"".join(draw(st.lists(interim(), max_size=2)))
    raw += version + b" " + str(status).encode() + b" " + reason_raw + b"\r\n" + block + b"\r\n"

    trailers: dict[str, str] = {}
    if not no_body:
        if chunked:
            cuts = sorted(set(draw(st.lists(st.integers(1, max(len(body) - 1, 1)), max_size=6))))
            bounds = [0, *(c for c in cuts if c < len(body)), len(body)]
            for a, b in itertools.pairwise(bounds):
                if a == b:
                    continue
                size = format(b - a, draw(st.sampled_from(["x", "X", "04x"]))).encode()
                exts = b"".join(draw(st.lists(chunk_extension(), max_size=2)))
                raw += size + exts + b"\r\n" + body[a:b] + b"\r\n"
            raw += b"0" + b"".join(draw(st.lists(chunk_extension(), max_size=2))) + b"\r\n"
            trailer_block, trailers = draw(field_block())
            raw += trailer_block + b"\r\n"
        else:
            raw += body
    return Expected(
        raw,
        status,
        reason_raw.decode("utf-8", "surrogateescape"),
        headers,
        b"" if no_body else body,
        trailers,
    )


def assert_matches(response: Response, expected: Expected) -> None:
    assert response.status == expected.status
    assert response.reason == expected.reason
    assert response.headers == expected.headers
    assert response.body == expected.body
    assert response.trailers == expected.trailers


@VALID
@given(data=st.data(), method=st.sampled_from(["GET", "POST", "HEAD"]))
def test_valid_responses_parse_exactly(data: st.DataObject, method: str) -> None:
    expected = data.draw(responses(method))
    recv = Pieces(expected.raw, data.draw(cuts_for(expected.raw)))
    reader = ResponseReader(recv)
    assert_matches(reader.read_response(method), expected)
    assert reader.buffered == 0 and recv.eof_reads == 0, "read exactly one response, no more"


# --- (3) back to back on one stream -----------------------------------------------------


@settings(VALID, max_examples=250)
@given(
    data=st.data(),
    methods=st.tuples(st.sampled_from(["GET", "HEAD"]), st.sampled_from(["GET", "POST"])),
)
def test_two_responses_back_to_back_are_not_misframed(
    data: st.DataObject, methods: tuple[str, str]
) -> None:
    first = data.draw(responses(methods[0]))
    second = data.draw(responses(methods[1]))
    stream = first.raw + second.raw
    recv = Pieces(stream, data.draw(cuts_for(stream)))
    reader = ResponseReader(recv)
    assert_matches(reader.read_response(methods[0]), first)
    assert_matches(reader.read_response(methods[1]), second)
    assert reader.buffered == 0
    try:
        reader.read_response("GET")
    except ConnectionClosed as exc:
        assert "before the response started" in str(exc)
    else:
        raise AssertionError("a third response appeared out of nowhere")


# --- (4) repeated heads ---------------------------------------------------------------------


@settings(VALID, max_examples=150)
@given(
    data=st.data(),
    order=st.lists(st.integers(0, 2), min_size=2, max_size=8),
    method=st.sampled_from(["GET", "POST"]),
)
def test_a_head_seen_before_is_read_exactly_as_the_first_time(
    data: st.DataObject, order: list[int], method: str
) -> None:
    # The reader reuses its parse of a head it has just seen byte for byte (the Runtime API's
    # 202): a repeat must give the same response, and what a caller does with one response's
    # headers must not leak into the next.
    kinds = [data.draw(responses(method)) for _ in range(3)]
    stream = b"".join(kinds[i].raw for i in order)
    reader = ResponseReader(Pieces(stream, data.draw(cuts_for(stream))))
    for i in order:
        response = reader.read_response(method)
        assert_matches(response, kinds[i])
        response.headers["x-mutated-by-caller"] = "yes"
    assert reader.buffered == 0


# --- (3) stray octets in a field value are data -----------------------------------------------

# Anything but a CRLF pair (which ends the line); no leading/trailing SP/HTAB (stripped as OWS).
stray_values = (
    st.binary(min_size=1, max_size=40)
    .filter(lambda v: b"\r\n" not in v)
    .map(lambda v: v.strip(b" \t"))
    .filter(lambda v: v and not v.startswith(b"\n") and not v.endswith(b"\r"))
)


@VALID
@given(data=st.data(), value=stray_values, name=names)
def test_control_octets_in_a_field_value_are_kept_as_data(
    data: st.DataObject, value: bytes, name: str
) -> None:
    # A caller's 0x7F or NUL forwarded into a Runtime API header must not cost the runtime
    # its connection: the value arrives as it was sent, and the next response still parses.
    raw = (
        b"HTTP/1.1 200 OK\r\n" + name.encode() + b": " + value + b"\r\nContent-Length: 2\r\n\r\nok"
    ) + b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    reader = ResponseReader(Pieces(raw, data.draw(cuts_for(raw))))
    first = reader.read_response("GET")
    assert first.body == b"ok"
    assert first.headers[name.lower()] == value.decode("utf-8", "surrogateescape")
    assert reader.read_response("POST").status == 202
