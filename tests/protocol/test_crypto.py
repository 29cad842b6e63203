"""AES-256-GCM payload encryption: the notes' vectors, round trips, tampering, fuzz."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmsh.exceptions import EncryptionError
from ssmsh.protocol.crypto import (
    OVERHEAD,
    Encrypter,
    answer_challenge,
    verify_challenge,
)

DATA_KEY = bytes(range(64))
NONCE = bytes.fromhex("000102030405060708090a0b")
# protocol-notes §8.2
CLIENT_LS_CR = bytes.fromhex("000102030405060708090a0b302150796b6ce92de9e02938ee56f3d16b8741")
AGENT_HELLO = bytes.fromhex("000102030405060708090a0b2f67ba77aa2797ff353b8a046d28236dcd9d057bbb")


def fixed_nonce(n: int) -> bytes:
    assert n == 12
    return NONCE


def counter_nonces() -> Callable[[int], bytes]:
    state = {"i": 0}

    def source(n: int) -> bytes:
        state["i"] += 1
        return state["i"].to_bytes(n, "big")

    return source


# ------------------------------------------------------------------ vectors


def test_client_encrypt_vector() -> None:
    assert Encrypter.for_client(DATA_KEY, fixed_nonce).encrypt(b"ls\r") == CLIENT_LS_CR


def test_agent_encrypt_vector() -> None:
    assert Encrypter.for_agent(DATA_KEY, fixed_nonce).encrypt(b"hello") == AGENT_HELLO


def test_client_decrypts_agent_vector() -> None:
    assert Encrypter.for_client(DATA_KEY).decrypt(AGENT_HELLO) == b"hello"


def test_agent_decrypts_client_vector() -> None:
    assert Encrypter.for_agent(DATA_KEY).decrypt(CLIENT_LS_CR) == b"ls\r"


def test_client_cannot_decrypt_its_own_output() -> None:
    # Two distinct keys: what the client encrypts is only readable by the agent.
    with pytest.raises(EncryptionError):
        Encrypter.for_client(DATA_KEY).decrypt(CLIENT_LS_CR)


# ------------------------------------------------------------------ shape and nonces


def test_wire_layout_and_length() -> None:
    enc = Encrypter.for_client(DATA_KEY)
    for size in (0, 1, 1024, 5000):
        out = enc.encrypt(b"x" * size)
        assert len(out) == size + OVERHEAD == size + 28


def test_default_nonces_are_fresh() -> None:
    enc = Encrypter.for_client(DATA_KEY)
    first, second = enc.encrypt(b"same"), enc.encrypt(b"same")
    assert first[:12] != second[:12]
    assert first != second


def test_nonce_source_must_return_12_bytes() -> None:
    enc = Encrypter.for_client(DATA_KEY, lambda n: b"\x00" * 8)
    with pytest.raises(EncryptionError, match="nonce"):
        enc.encrypt(b"x")


def test_repr_hides_keys() -> None:
    text = repr(Encrypter.for_client(DATA_KEY))
    assert DATA_KEY.hex()[:16] not in text and "hidden" in text


# ------------------------------------------------------------------ round trips


@given(st.binary(max_size=4096))
@settings(max_examples=200, deadline=None)
def test_round_trip_both_directions(plaintext: bytes) -> None:
    client, agent = Encrypter.for_client(DATA_KEY), Encrypter.for_agent(DATA_KEY)
    assert agent.decrypt(client.encrypt(plaintext)) == plaintext
    assert client.decrypt(agent.encrypt(plaintext)) == plaintext


@given(st.binary(min_size=64, max_size=64), st.binary(max_size=256))
@settings(max_examples=50, deadline=None)
def test_round_trip_any_key(key: bytes, plaintext: bytes) -> None:
    assert Encrypter.for_agent(key).decrypt(Encrypter.for_client(key).encrypt(plaintext)) == (
        plaintext
    )


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("size", [0, 1, 31, 63, 65, 128])
def test_data_key_must_be_64_bytes(size: int) -> None:
    with pytest.raises(EncryptionError, match="64 bytes"):
        Encrypter.for_client(bytes(size))
    with pytest.raises(EncryptionError, match="64 bytes"):
        Encrypter.for_agent(bytes(size))


def test_data_key_must_be_bytes() -> None:
    with pytest.raises(EncryptionError):
        Encrypter.for_client("x" * 64)  # type: ignore[arg-type]


def test_raw_keys_must_be_32_bytes() -> None:
    with pytest.raises(EncryptionError):
        Encrypter(bytes(16), bytes(32))


@pytest.mark.parametrize("size", [0, 1, 12, 27])
def test_short_input(size: int) -> None:
    with pytest.raises(EncryptionError, match="too short"):
        Encrypter.for_client(DATA_KEY).decrypt(AGENT_HELLO[:size])


@pytest.mark.parametrize(
    "position",
    [0, 11, 12, len(AGENT_HELLO) - 17, len(AGENT_HELLO) - 16, len(AGENT_HELLO) - 1],
    ids=["nonce-first", "nonce-last", "ct-first", "ct-last", "tag-first", "tag-last"],
)
def test_tampering_is_detected(position: int) -> None:
    tampered = bytearray(AGENT_HELLO)
    tampered[position] ^= 0x01
    with pytest.raises(EncryptionError, match="authentication"):
        Encrypter.for_client(DATA_KEY).decrypt(bytes(tampered))


def test_truncated_tag_is_detected() -> None:
    with pytest.raises(EncryptionError):
        Encrypter.for_client(DATA_KEY).decrypt(AGENT_HELLO[:-1])


def test_wrong_key_is_detected() -> None:
    other = Encrypter.for_client(bytes(reversed(range(64))))
    with pytest.raises(EncryptionError):
        other.decrypt(AGENT_HELLO)


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_decrypt_fuzz_only_raises_encryption_error(data: bytes) -> None:
    # Random bytes never authenticate; the only acceptable outcome is EncryptionError.
    with pytest.raises(EncryptionError):
        Encrypter.for_client(DATA_KEY).decrypt(data)


@given(st.binary(min_size=OVERHEAD, max_size=256), st.integers(min_value=0))
@settings(max_examples=200, deadline=None)
def test_any_bit_flip_is_detected(plaintext: bytes, where: int) -> None:
    blob = bytearray(Encrypter.for_agent(DATA_KEY).encrypt(plaintext))
    bit = where % (len(blob) * 8)
    blob[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EncryptionError):
        Encrypter.for_client(DATA_KEY).decrypt(bytes(blob))


# ------------------------------------------------------------------ challenge


def test_challenge_answer_verifies() -> None:
    agent = Encrypter.for_agent(DATA_KEY)
    client = Encrypter.for_client(DATA_KEY)
    secret = b"\x07" * 64
    challenge = agent.encrypt(secret)
    answer = answer_challenge(client, challenge)
    assert answer != challenge
    assert agent.decrypt(answer) == secret
    assert verify_challenge(agent, secret, answer)


def test_challenge_answer_uses_a_fresh_nonce() -> None:
    agent = Encrypter.for_agent(DATA_KEY, fixed_nonce)
    client = Encrypter.for_client(DATA_KEY, counter_nonces())
    answer = answer_challenge(client, agent.encrypt(b"abc"))
    assert answer[:12] != NONCE


def test_challenge_with_wrong_key_fails() -> None:
    agent = Encrypter.for_agent(DATA_KEY)
    wrong = Encrypter.for_client(bytes(64))
    with pytest.raises(EncryptionError):
        answer_challenge(wrong, agent.encrypt(b"secret"))


def test_verify_rejects_wrong_answers() -> None:
    agent = Encrypter.for_agent(DATA_KEY)
    client = Encrypter.for_client(DATA_KEY)
    assert not verify_challenge(agent, b"secret", client.encrypt(b"other"))
    assert not verify_challenge(agent, b"secret", b"garbage")
    assert not verify_challenge(agent, b"secret", agent.encrypt(b"secret"))


# ------------------------------------------------------------------ protocol/vectors/crypto.json

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "crypto.json").read_text()
)
FILE_KEY = bytes.fromhex(VECTORS["data_key_hex"])


def _nonce(hex_nonce: str) -> Callable[[int], bytes]:
    return lambda n: bytes.fromhex(hex_nonce)


def _decrypter_for(key_range: list[int]) -> Encrypter:
    # The client decrypts with [0:32]; the agent decrypts with [32:64].
    return Encrypter.for_client(FILE_KEY) if key_range == [0, 32] else Encrypter.for_agent(FILE_KEY)


def test_file_key_split() -> None:
    assert FILE_KEY[:32].hex() == VECTORS["client_decryption_key_hex"]
    assert FILE_KEY[32:].hex() == VECTORS["client_encryption_key_hex"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_file_vectors(vector: dict[str, Any]) -> None:
    factory = Encrypter.for_client if vector["side"] == "client" else Encrypter.for_agent
    plaintext = bytes.fromhex(vector["plaintext_hex"])
    wire = bytes.fromhex(vector["wire_hex"])
    assert factory(FILE_KEY, _nonce(vector["nonce_hex"])).encrypt(plaintext) == wire
    other = Encrypter.for_agent if vector["side"] == "client" else Encrypter.for_client
    assert other(FILE_KEY).decrypt(wire) == plaintext


def test_file_challenge() -> None:
    vec = VECTORS["challenge"]
    secret = bytes.fromhex(vec["plaintext_hex"])
    agent = Encrypter.for_agent(FILE_KEY, _nonce(vec["agent_nonce_hex"]))
    client = Encrypter.for_client(FILE_KEY, _nonce(vec["client_nonce_hex"]))
    request = agent.encrypt(secret)
    assert request.hex() == vec["request_wire_hex"]
    assert base64.b64encode(request).decode() == vec["request_payload"]["Challenge"]
    answer = answer_challenge(client, request)
    assert answer.hex() == vec["response_wire_hex"]
    assert base64.b64encode(answer).decode() == vec["response_payload"]["Challenge"]
    assert verify_challenge(agent, secret, answer)


@pytest.mark.parametrize("vector", VECTORS["tampered"], ids=lambda v: v["name"])
def test_file_tampered(vector: dict[str, Any]) -> None:
    with pytest.raises(EncryptionError):
        _decrypter_for(vector["key_range"]).decrypt(bytes.fromhex(vector["wire_hex"]))
