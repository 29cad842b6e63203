#!/usr/bin/env python3
"""Write the golden test vectors in ``protocol/vectors/*.json``.

The byte strings below are data from the protocol notes: frames produced by the official
Go serializer (notes §4.7-4.9), the AES-GCM vectors of §8.2 and the smux frames of §9.6.
This script only reshapes them into JSON with their decoded fields. It deliberately does
not import ``ssmsh``: the vectors must stay independent of the code they test. Every
vector is cross-checked here with ``struct``/``hashlib``/``cryptography`` before it is
written, so a typo in a hex string fails loudly.

Usage: ``python scripts/make_vectors.py [--check]`` (``--check`` compares instead of writing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "protocol" / "vectors"

_HEADER = struct.Struct(">I32sIQqQ8s8s32sII")

# --------------------------------------------------------------------------- frames

ACK_PAYLOAD = (
    b'{"AcknowledgedMessageType":"output_stream_data",'
    b'"AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16",'
    b'"AcknowledgedMessageSequenceNumber":2,"IsSequentialMessage":true}'
)

FRAMES: list[dict[str, Any]] = [
    {
        "name": "acknowledge (notes 4.7)",
        "hex": (
            "0000007461636b6e6f776c65646765202020202020202020202020202020202020202020"
            "000000010000015e0baa78840000000000000000000000000000000388"
            "99aabbccddeeff0011223344554677826149d35e09fb655b0de7148dac393b940c08944a"
            "eccbefab44cbd86c9be05000000000000000b0" + ACK_PAYLOAD.hex()
        ),
        "payload_json": {
            "AcknowledgedMessageType": "output_stream_data",
            "AcknowledgedMessageId": "dd01e56b-ff48-483e-a508-b5f073f31b16",
            "AcknowledgedMessageSequenceNumber": 2,
            "IsSequentialMessage": True,
        },
    },
    {
        "name": "(a) keyboard input ls CR",
        "hex": (
            "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020"
            "000000010000015e0baa788400000000000000010000000000000000a508b5f073f31b16"
            "dd01e56bff48483e1d887ce0f8672e4914d9000e801cd74ecd805dd9366c0bc42dc16adc"
            "0197dc2f00000001000000036c730d"
        ),
    },
    {
        "name": "(b) agent output hello, seq 0 with SYN flag",
        "hex": (
            "000000746f75747075745f73747265616d5f646174612020202020202020202020202020"
            "000000010000018bcfe56800000000000000000000000000000000018444555555555555"
            "11111111222243332cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362"
            "938b9824000000010000000568656c6c6f"
        ),
    },
    {
        "name": "(e) smux SYN + PSH hi in one data message",
        "hex": (
            "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020"
            "000000010000018bcfe56800000000000000000300000000000000008444555555555555"
            "11111111222243333842ce499b65b89256329c9bf60e8d14c22719888eba221695bdf5bb"
            "da9e0cc30000000100000012010000000300000001020200030000006869"
        ),
    },
    {
        "name": "(f) official round-trip test message",
        "hex": (
            "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020"
            "000000010000015e0baa788400000000000000010000000000000002a508b5f073f31b16"
            "dd01e56bff48483e239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852"
            "d5a935e500000000000000077061796c6f6164"
        ),
    },
]

# Frames of which the notes give only the tail (PayloadType, PayloadLength, Payload) and digest.
TAILS: list[dict[str, Any]] = [
    {
        "name": "(c) terminal size 80x24",
        "payload_type": 3,
        "payload_hex": b'{"cols":80,"rows":24}'.hex(),
        "digest": "d53ca1ea7dce87c11432052a8550ed2615cf715ca843c89710ed83325b691cba",
        "tail_hex": "0000000300000015" + b'{"cols":80,"rows":24}'.hex(),
    },
    {
        "name": "(d) flag TerminateSession",
        "payload_type": 10,
        "payload_hex": "00000002",
        "digest": "433ebf5bc03dffa38536673207a21281612cef5faa9bc7a4d5b9be2fdb12cf1a",
        "tail_hex": "0000000a0000000400000002",
    },
]


def decode_fields(frame: bytes) -> dict[str, Any]:
    """An independent, minimal decoder used only to annotate and cross-check the vectors."""
    (hl, mtype, schema, created, seq, flags, low, high, digest, ptype, plen) = _HEADER.unpack_from(
        frame
    )
    payload = frame[_HEADER.size :]
    assert hl == 116 and plen == len(payload), "inconsistent frame"
    assert hashlib.sha256(payload).digest() == digest, "digest mismatch"
    return {
        "header_length": hl,
        "message_type": mtype.decode("ascii").rstrip(" "),
        "schema_version": schema,
        "created_date": created,
        "sequence_number": seq,
        "flags": flags,
        "message_id": str(uuid.UUID(bytes=high + low)),
        "payload_digest": digest.hex(),
        "payload_type": ptype,
        "payload_length": plen,
        "payload_hex": payload.hex(),
    }


def _frame(
    mtype: bytes,
    created: int,
    payload: bytes,
    *,
    header_length: int = 116,
    digest: bytes | None = None,
    payload_length: int | None = None,
) -> bytes:
    """Assemble a frame by hand (for the invalid-frame vectors)."""
    raw_id = uuid.UUID("dd01e56b-ff48-483e-a508-b5f073f31b16").bytes
    return (
        _HEADER.pack(
            header_length,
            mtype,
            1,
            created,
            1,
            0,
            raw_id[8:],
            raw_id[:8],
            hashlib.sha256(payload).digest() if digest is None else digest,
            1,
            len(payload) if payload_length is None else payload_length,
        )
        + payload
    )


def messages() -> dict[str, Any]:
    frames = []
    for item in FRAMES:
        raw = bytes.fromhex(item["hex"])
        fields = decode_fields(raw)
        entry = {"name": item["name"], "length": len(raw), "hex": item["hex"], "fields": fields}
        if "payload_json" in item:
            payload = bytes.fromhex(fields["payload_hex"])
            assert json.loads(payload) == item["payload_json"]
            entry["payload_json"] = item["payload_json"]
        frames.append(entry)
    # Cross-check a few facts the notes state in prose.
    assert frames[0]["length"] == 296 and frames[1]["length"] == 123
    assert frames[2]["length"] == 125 and frames[4]["length"] == 127
    assert frames[0]["fields"]["message_id"] == "00112233-4455-4677-8899-aabbccddeeff"
    for tail in TAILS:
        payload = bytes.fromhex(tail["payload_hex"])
        assert hashlib.sha256(payload).hexdigest() == tail["digest"]
        assert tail["tail_hex"] == struct.pack(">II", tail["payload_type"], len(payload)).hex() + (
            payload.hex()
        )

    good = b"input_stream_data".ljust(32, b" ")
    created = 1503434274948
    payload = b"payload"
    invalid = [
        ("empty frame", b"", "short"),
        ("119 bytes", _frame(good, created, payload)[:119], "short"),
        ("header length 0", _frame(good, created, payload, header_length=0), "header_length"),
        ("header length 120", _frame(good, created, payload, header_length=120), "header_length"),
        ("type not UTF-8", _frame(b"\xff\xfe".ljust(32, b" "), created, payload), "type_utf8"),
        ("type all spaces", _frame(b" " * 32, created, payload), "type_empty"),
        ("type all NUL", _frame(b"\x00" * 32, created, payload), "type_empty"),
        ("created date 0", _frame(good, 0, payload), "created_date"),
        ("digest mismatch", _frame(good, created, payload, digest=bytes(32)), "digest"),
        ("payload truncated", _frame(good, created, payload)[:-1], "truncated"),
        ("trailing garbage", _frame(good, created, payload) + b"\x00", "trailing"),
        ("payload length too small", _frame(good, created, payload, payload_length=3), "trailing"),
    ]
    # The official Validate() test checks these conditions in this order; each frame below
    # fails exactly the first check that the previous one did not.
    bad_digest = bytes(32)
    order = [
        (_frame(b" " * 32, 0, payload, header_length=0, digest=bad_digest), "header_length"),
        (_frame(b" " * 32, 0, payload, digest=bad_digest), "type_empty"),
        (_frame(good, 0, payload, digest=bad_digest), "created_date"),
        (_frame(good, created, payload, digest=bad_digest), "digest"),
        (_frame(good, created, payload), None),
    ]
    # start_publication / pause_publication skip every check but the header length.
    publication = [
        _frame(b"start_publication".ljust(32, b" "), 0, b"", digest=bad_digest),
        _frame(b"pause_publication".ljust(32, b"\x00"), 1700000000000, b""),
    ]
    return {
        "description": (
            "ClientMessage frames from the official Go serializer (protocol notes 4.7-4.8), "
            "with their decoded fields; frames given only by their tail; and invalid frames "
            "with the reason the decoder must give."
        ),
        "frames": frames,
        "tails": TAILS,
        "invalid": [{"name": n, "hex": f.hex(), "reason": r} for n, f, r in invalid],
        "validation_order": [{"hex": f.hex(), "reason": r} for f, r in order],
        "publication_without_payload": [
            {"hex": f.hex(), "message_type": t}
            for f, t in zip(publication, ["start_publication", "pause_publication"], strict=True)
        ],
    }


# --------------------------------------------------------------------------- integers


def _put(name: str, kind: str, buf: str, offset: int, value: Any, expected: str) -> dict[str, Any]:
    v = {"name": name, "op": "put", "type": kind, "buffer_hex": buf, "offset": offset}
    return v | {"value": value, "expected_hex": expected}


def _get(name: str, kind: str, buf: str, offset: int, value: Any) -> dict[str, Any]:
    return {"name": name, "op": "get", "type": kind, "buffer_hex": buf, "offset": offset} | {
        "value": value
    }


def _err(name: str, op: str, kind: str, buf: str, offset: int, value: Any) -> dict[str, Any]:
    v = {"name": name, "op": op, "type": kind, "buffer_hex": buf, "offset": offset}
    return v | {"value": value, "error": "space" if kind == "string" else "offset"}


def encoding() -> dict[str, Any]:
    z = "00"
    hello8 = b"hello   ".hex()
    vectors: list[dict[str, Any]] = [
        _put("LongToBytes", "uint64", z * 8, 0, 5747283, "000000000057b253"),
        _put("PutLong basic", "uint64", z * 9, 0, 5747283, "000000000057b25300"),
        _put("PutLong offset", "uint64", z * 10, 1, 92837273, "00000000000588959900"),
        _put("PutLong exact", "uint64", z * 8, 0, 50, "0000000000000032"),
        _err("PutLong offset past end", "put", "uint64", z * 8, 1, 1),
        _err("PutLong negative offset", "put", "uint64", z * 8, -1, 1),
        _err("PutLong offset beyond buffer", "put", "uint64", z * 4, 10, 1),
        _put("PutInteger basic", "uint32", z * 5, 0, 324, "0000014400"),
        _put("PutInteger offset", "uint32", z * 8, 1, 520392, "000007f0c8000000"),
        _put("PutInteger exact", "uint32", z * 4, 0, 50, "00000032"),
        _put("GetBytesFromInteger", "uint32", z * 4, 0, 256, "00000100"),
        _get("GetLong basic", "uint64", "00000000005a056600", 0, 5899622),
        _get("GetLong offset", "uint64", "000000000000005a056a00", 2, 5899626),
        _get("GetLong exact", "uint64", "0000000000000032", 0, 50),
        _put("PutGetInteger put", "uint32", "00000000ff00", 1, 256, "000000010000"),
        _get("PutGetInteger get 1", "uint32", "000000010000", 1, 256),
        _get("PutGetInteger get 2", "uint32", "000000010000", 2, 65536),
        _err("PutGetInteger get 3", "get", "uint32", "000000010000", 3, None),
        _put("PutGetLong put", "uint64", z * 12, 1, 4294967296, "000000000100000000000000"),
        _get("PutGetLong get", "uint64", "000000000100000000000000", 1, 4294967296),
        _get("GetString", "string", "727700", 0, "rw") | {"length": 2},
        _get("GetString offset", "string", "0000727700", 2, "rw") | {"length": 2},
        _get("GetBytes", "bytes", "727700", 0, "7277") | {"length": 2},
        _put("PutBytes", "bytes", z * 8, 0, "2255ff22", "2255ff2200000000"),
        _put("PutBytes offset", "bytes", z * 8, 1, "2255ff22", "002255ff22000000"),
        _put("PutString", "string", z * 8, 0, "hello", hello8) | {"length": 8},
        _err("PutString too long", "put", "string", z * 8, 0, "longinputstring") | {"length": 8},
        _put("PutGetString put", "string", z * 8 + "01010001", 1, "hello", z + hello8 + "010001")
        | {"length": 8},
        _get("PutGetString get", "string", z + hello8 + "010001", 1, "hello") | {"length": 8},
    ]
    for v in vectors:
        _check_encoding(v)
    return {
        "description": (
            "Integer, string and byte helpers of the official codec (protocol notes 4.9). "
            "All integers are big-endian; strings are space-padded on put and trimmed of "
            "spaces and NULs on get; an offset outside the buffer is an error."
        ),
        "vectors": vectors,
    }


def _check_encoding(v: dict[str, Any]) -> None:
    buf = bytearray.fromhex(v["buffer_hex"])
    size = {"uint32": 4, "uint64": 8}.get(v["type"], v.get("length", 0))
    if v["type"] == "bytes" and v["op"] == "put":
        size = len(bytes.fromhex(v["value"]))
    inside = v["offset"] >= 0 and v["offset"] + size <= len(buf)
    if "error" in v:
        too_long = v["type"] == "string" and len(v["value"]) > size
        assert not inside or too_long, v["name"]
        return
    assert inside, v["name"]
    o = v["offset"]
    if v["op"] == "put":
        if v["type"] in ("uint32", "uint64"):
            buf[o : o + size] = v["value"].to_bytes(size, "big")
        elif v["type"] == "string":
            buf[o : o + size] = v["value"].encode().ljust(size, b" ")
        else:
            buf[o : o + size] = bytes.fromhex(v["value"])
        assert buf.hex() == v["expected_hex"], v["name"]
    else:
        chunk = bytes(buf[o : o + size])
        if v["type"] in ("uint32", "uint64"):
            assert int.from_bytes(chunk, "big") == v["value"], v["name"]
        elif v["type"] == "string":
            assert chunk.strip(b"\x00").decode().strip() == v["value"], v["name"]
        else:
            assert chunk.hex() == v["value"], v["name"]


# --------------------------------------------------------------------------- versions


def versions() -> dict[str, Any]:
    client_side = [
        # Official tests (notes 4.9).
        ("terminate_session_flag", "2.3.750.0", True, "official"),
        ("terminate_session_flag", "2.3.614.0", False, "official"),
        ("terminate_session_flag", "2.3.722.0", False, "official"),
        ("disable_smux_keepalive", "3.1.1476.0", False, "official"),
        ("disable_smux_keepalive", "3.1.1600.0", True, "official"),
        # Derived from the rules in notes 7.5.
        ("terminate_session_flag", "3.3.1142.0", True, "derived"),
        ("terminate_session_flag", "2.3.723.0", True, "derived"),
        ("terminate_session_flag", "2.4.0.0", True, "derived"),
        ("terminate_session_flag", "", False, "derived"),
        ("terminate_session_flag", "2.3.750", False, "derived"),
        ("terminate_session_flag", "2.3.x.0", False, "derived"),
        ("mux", "3.0.196.0", False, "derived"),
        ("mux", "3.0.197.0", True, "derived"),
        ("mux", "3.0.1000.0", True, "derived"),
        ("mux", "2.3.750.0", False, "derived"),
        ("mux", "3.3.1142.0", True, "derived"),
        ("mux", "", False, "derived"),
        ("disable_smux_keepalive", "3.1.1511.0", False, "derived"),
        ("disable_smux_keepalive", "3.1.1512.0", True, "derived"),
        ("disable_smux_keepalive", "3.3.1142.0", True, "derived"),
        ("disable_smux_keepalive", "3.1", False, "derived"),
    ]
    return {
        "description": (
            "Client-side feature gates on the agent's AgentVersion (notes 7.5): a feature is on "
            "when the agent version is strictly greater than the threshold. Versions with a "
            "different number of components, non-numeric components or an empty string never "
            "compare greater (the official comparison returns an error)."
        ),
        "thresholds": {
            "terminate_session_flag": "2.3.722.0",
            "mux": "3.0.196.0",
            "disable_smux_keepalive": "3.1.1511.0",
        },
        "cases": [
            {"feature": f, "agent_version": v, "expected": e, "source": s}
            for f, v, e, s in client_side
        ],
        "compare_errors": [
            {"a": "2.3.56.0", "b": "2.5.45", "source": "official"},
            {"a": "2.3.x.0", "b": "2.3.1.0", "source": "derived"},
            {"a": "", "b": "2.3.1.0", "source": "derived"},
        ],
        "agent_side": {
            "description": (
                "Constants the agent compares the client's ClientVersion with (amazon-ssm-agent, "
                "notes 7.5): mux port sessions for ClientVersion >= 1.1.70; the agent turns its "
                "smux keepalive off for ClientVersion > 1.2.331.0; the agent's output-separation "
                "constants. Useful for the emulator."
            ),
            "mux_supported_client_version": "1.1.70",
            "mux_keepalive_disabled_after_client_version": "1.2.331.0",
            "client_version_without_output_separation": "1.2.295",
            "first_client_version_with_output_separation": "1.2.312.0",
        },
    }


# --------------------------------------------------------------------------- crypto


def crypto() -> dict[str, Any]:
    data_key = bytes(range(64))
    nonce = bytes(range(12))
    official: list[dict[str, Any]] = [
        {
            "name": "client encrypts ls CR",
            "side": "client",
            "direction": "client>agent",
            "key_range": [32, 64],
            "nonce_hex": nonce.hex(),
            "plaintext_hex": b"ls\r".hex(),
            "wire_hex": "000102030405060708090a0b302150796b6ce92de9e02938ee56f3d16b8741",
            "source": "official",
        },
        {
            "name": "agent encrypts hello",
            "side": "agent",
            "direction": "agent>client",
            "key_range": [0, 32],
            "nonce_hex": nonce.hex(),
            "plaintext_hex": b"hello".hex(),
            "wire_hex": "000102030405060708090a0b2f67ba77aa2797ff353b8a046d28236dcd9d057bbb",
            "source": "official",
        },
    ]
    for v in official:
        lo, hi = v["key_range"]
        wire = bytes.fromhex(v["wire_hex"])
        got = nonce + AESGCM(data_key[lo:hi]).encrypt(
            nonce, bytes.fromhex(v["plaintext_hex"]), None
        )
        assert got == wire, v["name"]
    # The challenge exchange (notes 8.4), computed here: the agent encrypts a random
    # challenge with the client's decryption key; the client answers with the same
    # plaintext encrypted under its encryption key and a fresh nonce.
    challenge = bytes(range(100, 164))
    agent_nonce = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
    client_nonce = bytes.fromhex("b0b1b2b3b4b5b6b7b8b9babb")
    request = agent_nonce + AESGCM(data_key[0:32]).encrypt(agent_nonce, challenge, None)
    response = client_nonce + AESGCM(data_key[32:64]).encrypt(client_nonce, challenge, None)
    return {
        "description": (
            "AES-256-GCM, 12-byte nonce, 16-byte tag, no AAD; wire = nonce || ciphertext || tag "
            "(notes 8.2). The 64-byte KMS data key splits into the client's decryption key "
            "[0:32] (the agent encrypts with it) and the client's encryption key [32:64]."
        ),
        "data_key_hex": data_key.hex(),
        "client_decryption_key_hex": data_key[0:32].hex(),
        "client_encryption_key_hex": data_key[32:64].hex(),
        "vectors": official,
        "challenge": {
            "source": "derived",
            "plaintext_hex": challenge.hex(),
            "agent_nonce_hex": agent_nonce.hex(),
            "request_wire_hex": request.hex(),
            "request_payload": {"Challenge": base64.b64encode(request).decode()},
            "client_nonce_hex": client_nonce.hex(),
            "response_wire_hex": response.hex(),
            "response_payload": {"Challenge": base64.b64encode(response).decode()},
        },
        "tampered": [
            {
                "name": "flipped tag bit",
                "key_range": [0, 32],
                "wire_hex": official[1]["wire_hex"][:-2] + "ba",
            },
            {
                "name": "wrong key half",
                "key_range": [32, 64],
                "wire_hex": official[1]["wire_hex"],
            },
            {"name": "shorter than nonce + tag", "key_range": [0, 32], "wire_hex": "00" * 27},
        ],
    }


# --------------------------------------------------------------------------- smux

SMUX_CMDS = {0: "SYN", 1: "FIN", 2: "PSH", 3: "NOP"}


def _smux(hex_: str, name: str, source: str) -> dict[str, Any]:
    raw = bytes.fromhex(hex_)
    version, cmd, length, sid = struct.unpack_from("<BBHI", raw)
    assert len(raw) == 8 + length
    return {
        "name": name,
        "hex": hex_,
        "version": version,
        "cmd": SMUX_CMDS[cmd],
        "cmd_value": cmd,
        "length": length,
        "stream_id": sid,
        "data_hex": raw[8:].hex(),
        "source": source,
    }


def smux() -> dict[str, Any]:
    frames = [
        _smux("0100000003000000", "SYN stream 3", "official"),
        _smux("010202000300000068 69".replace(" ", ""), "PSH hi stream 3", "official"),
        _smux("0101000003000000", "FIN stream 3", "official"),
        _smux("0100000005000000", "SYN stream 5", "official"),
        _smux("0103000000000000", "NOP keepalive", "official"),
    ]
    psh_long = b"x" * 300
    frames.append(
        _smux(
            struct.pack("<BBHI", 1, 2, len(psh_long), 7).hex() + psh_long.hex(),
            "PSH 300 bytes stream 7 (length 0x012c little-endian)",
            "derived",
        )
    )
    streams = [
        {
            "name": "(e) data message payload: SYN 3 + PSH hi 3",
            "hex": "010000000300000001020200030000006869",
            "frames": [0, 1],
        },
        {
            "name": "trace: PSH 24 bytes + FIN in one agent message",
            "hex": ("0102180003000000" + b"hello-from-port-forward\n".hex() + "0101000003000000"),
            "frames": None,
        },
    ]
    return {
        "description": (
            "smux v1 frames (xtaci/smux 1.5.16, notes 9.6): 8-byte little-endian header "
            "version(1) cmd(1) length(2) stream_id(4), then length data bytes. Client stream "
            "ids are odd and start at 3. Byte streams may hold several frames back to back."
        ),
        "frames": frames,
        "streams": streams,
        "invalid": [
            {"name": "version 2", "hex": "0200000003000000"},
            {"name": "unknown cmd 4 (v2 UPD)", "hex": "0104000003000000"},
            {"name": "unknown cmd 9", "hex": "0109000003000000"},
        ],
    }


def main() -> int:
    check = "--check" in sys.argv[1:]
    outputs = {
        "messages.json": messages(),
        "encoding.json": encoding(),
        "versions.json": versions(),
        "crypto.json": crypto(),
        "smux.json": smux(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, data in outputs.items():
        text = json.dumps(data, indent=1) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale vector files: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
