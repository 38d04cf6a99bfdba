"""The SSE parser and re-framer: any re-chunking and any mix of line ends give the same events."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.apis.sse import ChunkRepair, EventTooLarge, SSEParser

payloads = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "content"]), st.text(max_size=20), max_size=3).map(
        json.dumps
    ),
    min_size=1,
    max_size=8,
)


def parse_all(chunks: list[bytes]) -> list[str]:
    parser = SSEParser()
    events: list[str] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


@settings(max_examples=300, deadline=None)
@given(payloads, st.data())
def test_any_rechunking_and_line_ends_give_the_same_events(
    events: list[str], data: st.DataObject
) -> None:
    wire = b""

    def line(text: bytes) -> None:
        nonlocal wire
        # After a bare CR, an LF would merge with it into one CRLF: the spec reads it so too.
        ends = [b"\r\n", b"\r"] if wire.endswith(b"\r") and not text else [b"\n", b"\r\n", b"\r"]
        wire += text + data.draw(st.sampled_from(ends))

    for event in events:
        noise = data.draw(
            st.sampled_from([b"", b": keep-alive", b"event: message", b"id: 7", b"retry: 10"])
        )
        if noise:
            line(noise)
        line(b"data: " + event.encode())
        line(b"")  # the blank line that ends the event
    line(b"data: [DONE]")
    line(b"")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=30)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert parse_all(chunks) == [*events, "[DONE]"]


def test_multi_line_data_and_field_rules() -> None:
    wire = b'data:{"a":\ndata: 1}\n\ndata\n\ndatax: ignored\n\ndata: tail-without-blank-line'
    assert parse_all([wire]) == ['{"a":\n1}', "", "tail-without-blank-line"]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    assert parse_all([b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"]) == ["1", "2"]


READ = 64 * 1024
MIB = 1024 * 1024


def test_an_endless_line_is_cut_at_the_cap_after_linear_work() -> None:
    """An upstream sending 400 MB without a line end: refused once past the cap, each byte
    searched at most once per line-end kind (the old parser re-joined its whole buffer on every
    read, quadratic in the event's size)."""
    parser = SSEParser(max_event_bytes=16 * MIB)
    reads = iter([b"data: " + b"x" * (READ - 6)] + [b"x" * READ] * (400 * MIB // READ - 1))
    fed = 0

    def feed_until_refused() -> None:
        nonlocal fed
        for chunk in reads:
            fed += len(chunk)
            parser.feed(chunk)

    with pytest.raises(EventTooLarge, match="16777216 bytes"):
        feed_until_refused()
    assert 16 * MIB < fed <= 16 * MIB + READ
    assert parser.scanned <= 2 * fed


def test_work_is_linear_in_the_bytes_fed_whatever_the_line_ends() -> None:
    parser = SSEParser()
    size = 32 * MIB
    fed = 0
    events: list[str] = []
    events += parser.feed(b"data: ")
    for _ in range(size // READ):
        events += parser.feed(b"y" * READ)
    events += parser.feed(b"\n\n")
    fed = 6 + size + 2
    assert events == ["y" * size]
    assert parser.scanned <= 2 * fed
    crs = SSEParser()  # a read of bare CRs: many line ends, and no LF anywhere to find
    assert crs.feed(b"\r" * READ) == []
    assert crs.scanned <= 2 * READ


def test_an_event_of_many_data_lines_is_capped_too() -> None:
    parser = SSEParser(max_event_bytes=1000)
    assert parser.feed(b"data: " + b"a" * 499 + b"\ndata: " + b"b" * 499 + b"\n\n") == [
        "a" * 499 + "\n" + "b" * 499
    ]
    with pytest.raises(EventTooLarge):
        parser.feed(b"data: 0123456789\n" * 200)


def test_comment_lines_are_capped_like_any_line() -> None:
    parser = SSEParser(max_event_bytes=100)
    assert parser.feed(b": " + b"k" * 90 + b"\n") == []
    with pytest.raises(EventTooLarge):
        parser.feed(b": " + b"k" * 120)


def test_repair_adds_finish_reason_and_splits_final_content() -> None:
    repair = ChunkRepair()
    first = repair.frames({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    assert [json.loads(f[6:]) for f in first] == [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    ]
    last = repair.frames(
        {
            "id": "x",
            "choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "stop"}],
            "usage": {"t": 1},
        }
    )
    assert [json.loads(f[6:]) for f in last] == [
        {
            "id": "x",
            "choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": None}],
            "usage": {"t": 1},
        },
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    assert repair.finished
    assert all(f.endswith(b"\n\n") and f.count(b"\n") == 2 for f in first + last)
