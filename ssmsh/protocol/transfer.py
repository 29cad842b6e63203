"""File transfer over a Session Manager shell: the helper ``ssmsh cp`` runs on the target.

Only the session's terminal carries bytes both ways on the official agent: a
NonInteractiveCommands command gets no stdin (``protocol/traces/noninteractive-stdin*``),
and a port session needs something listening on the instance. So ``ssmsh cp`` starts
an AWS-StartInteractiveCommand session whose command is a small POSIX ``sh`` program,
:func:`helper_script`, and speaks a request/response protocol with it over the pty:

* Like :mod:`.piped_stdin`, it first puts the pty in raw mode (``stty raw -echo``:
  every byte value passes, nothing echoes, no CR/NL mapping) and picks an exact reader
  (``head -c N`` when it reads no more than N bytes, else ``dd bs=1``), then prints
  ``ESC ] ssmsh-cp ; MARKER ; READER,ENCODER,HASHER,COMPRESSOR BEL``: what it found on the
  target. The client sends nothing before.
* Requests go client → helper as *frames* (8 decimal digits of length, then the
  bytes): one frame of words (the operation and its numbers), then one frame per path
  (any bytes but NUL: paths are never part of the shell text), then, for ``write``,
  the raw data. A frame of length 0 ends the helper.
* Responses go helper → client as the operation's output through the encoder
  (``base64``, or ``od -An -v -tx1`` where there is none), then a line
  ``. MARKER STATUS`` (written ``\\n.MARKER STATUS\\n``). Output must be encoded: the
  official agent sends a terminal's output as UTF-8 text and damages bytes that are
  not (``docs/compatibility.md``); the alphabet of either encoder has no ``.``, so
  the end line cannot be mistaken for data. A failed operation's output is its error
  message.

Operations (offsets and lengths in blocks of :data:`BLOCK` bytes, so that ``dd``
can seek; sizes in bytes):

``stat P``          ``TYPE SIZE MODE MTIME`` (TYPE ``f`` file, ``d`` directory, ``o``
                    other, ``n`` none; MODE octal and MTIME seconds, or ``-``)
``list P``          every path under P (symlinks followed), P first, each as a ``stat``
                    line plus the path's length in bytes, then the path and a newline
``read S C P``      C blocks of P from block S, raw
``readz S C P``     the same through ``gzip -c`` (where the helper found gzip)
``hash P``          SHA-256 of P; ``hash S C P``: of C blocks from block S
``hashes B N P``    SHA-256 of each of N consecutive chunks of B blocks
``size N P``        create P (or cut or extend it) to N bytes
``write S N P``     the N bytes that follow the request go into P at block S
``commit M T P Q``  rename P to Q, then mode M and time T (``touch -t`` stamp), or ``-``
``mkdir M P``       ``mkdir -p`` P, then mode M (or ``-``)
``remove P``        ``rm -f`` P
``stamp T P``       modification time T (``touch -t`` stamp) for P (a directory, at the end)
``glob P``          the paths the shell pattern P matches (each: its length, a newline,
                    the path, a newline), none when nothing does

Sans-I/O: :func:`helper_script` builds the program, :func:`request` the bytes to send,
:class:`HelperOutput` reads the output back into :class:`HelperReady` and :class:`Reply`.
"""

from __future__ import annotations

import binascii
import dataclasses
import re
import shlex
from collections.abc import Iterable, Sequence

__all__ = [
    "BLOCK",
    "OPERATIONS",
    "QUIT",
    "Capabilities",
    "Entry",
    "HelperOutput",
    "HelperReady",
    "Reply",
    "TransferProtocolError",
    "helper_script",
    "parse_entries",
    "parse_hashes",
    "parse_paths",
    "parse_stat",
    "request",
]

#: The unit of offsets: what ``dd`` reads and seeks by.
BLOCK = 64 * 1024
#: The operations the helper knows (and how many paths each takes).
OPERATIONS = {
    "stat": 1, "list": 1, "read": 1, "readz": 1, "hash": 1, "hashes": 1, "size": 1, "write": 1,
    "commit": 2, "mkdir": 1, "remove": 1, "glob": 1, "stamp": 1,
}  # fmt: skip
#: The frame that ends the helper (a length of 0).
QUIT = b"00000000"

_READY = b"\x1b]ssmsh-cp;"
_BEL = b"\x07"
#: Longest output before the ready sequence that is kept (for the error message).
_MAX_PREAMBLE = 4096
#: Longest capabilities text.
_MAX_CAPABILITIES = 64
_HEX64 = re.compile(rb"\b[0-9a-f]{64}\b")


class TransferProtocolError(Exception):
    """The helper's output does not follow the protocol."""


# The parts of the program, in the order they run. ``$K`` is the marker.
_SETUP = r"""stty raw -echo 2>/dev/null || exit 125
LC_ALL=C; export LC_ALL
cd 2>/dev/null
if [ "$(printf abcdef | { head -c 2 >/dev/null 2>&1; cat; })" = cdef ]; then rd() { head -c "$1"; }; r=head; else rd() { dd bs=1 count="$1" 2>/dev/null; }; r=dd; fi
if [ "$(printf ab | base64 2>/dev/null)" = YWI= ]; then enc() { base64; }; e=base64; elif [ "$(printf ab | od -An -v -tx1 2>/dev/null | tr -d ' \n')" = 6162 ]; then enc() { od -An -v -tx1; }; e=od; else enc() { cat >/dev/null; }; e=none; fi
if command -v sha256sum >/dev/null 2>&1; then sha() { sha256sum; }; h=sha256sum; elif command -v openssl >/dev/null 2>&1; then sha() { openssl dgst -sha256; }; h=openssl; elif command -v shasum >/dev/null 2>&1; then sha() { shasum -a 256; }; h=shasum; else sha() { cat >/dev/null; echo no sha256sum; return 1; }; h=none; fi
if [ "$(printf ab | gzip -c 2>/dev/null | gzip -dc 2>/dev/null)" = ab ]; then z=gzip; else z=none; fi
"""  # noqa: E501 (shell text)

# meta PATH: "TYPE SIZE MODE MTIME". Kept as text too: find -exec runs it in a new sh.
_META = r"""meta() { if [ -d "$1" ]; then t=d; elif [ -f "$1" ]; then t=f; elif [ -e "$1" ]; then t=o; else echo n 0 - -; return; fi; x=$(stat -L -c '%s %a %Y' -- "$1" 2>/dev/null); if [ -z "$x" ]; then x=0; [ "$t" = f ] && x=$(($(wc -c < "$1" 2>/dev/null || echo 0))); x="$x - -"; fi; echo "$t $x"; }"""  # noqa: E501

_LIST_EACH = r"""for f do set -- $(meta "$f"); printf '%s %s %s %s %s\n%s\n' "$1" "$2" "$3" "$4" "${#f}" "$f"; done"""  # noqa: E501

_OPERATIONS = r"""eval "$M"
fr() { n=$(rd 8); case $n in ""|*[!0-9]*) exit 0;; esac; n=${n#"${n%%[!0]*}"}; [ -n "$n" ] || exit 0; v=$(rd "$n"; echo x); v=${v%x}; }
path() { fr; p=$v; case $p in "~") p=$HOME;; "~/"*) p=$HOME/${p#"~/"};; esac; }
fail() { echo "$*"; return 1; }
readable() { [ -e "$p" ] || { fail "no such file or directory"; return; }; [ -r "$p" ] || fail "permission denied"; }
op_stat() { meta "$p"; }
op_list() { readable || return; find -L "$p" -exec sh -c "$M; $L" sh {} + 2>/dev/null; }
op_read() { readable || return; dd if="$p" bs=65536 skip="$1" count="$2" 2>/dev/null; }
op_readz() { readable || return; dd if="$p" bs=65536 skip="$1" count="$2" 2>/dev/null | gzip -c; }
op_hash() { readable || return; if [ $# -eq 0 ]; then sha < "$p"; else dd if="$p" bs=65536 skip="$1" count="$2" 2>/dev/null | sha; fi; }
op_hashes() { readable || return; i=0; while [ "$i" -lt "$2" ]; do dd if="$p" bs=65536 skip=$((i * $1)) count="$1" 2>/dev/null | sha || return; i=$((i + 1)); done; }
op_size() { x=$(dd if=/dev/null of="$p" bs=1 seek="$1" 2>&1) || fail "${x##*: }"; }
op_write() { rd "$2" | { x=$(dd of="$p" bs=65536 seek="$1" conv=notrunc 2>&1) || { cat >/dev/null; fail "${x##*: }"; }; }; }
op_commit() { x=$(mv -f -- "$p" "$q" 2>&1) || fail "${x##*: }" || return; if [ "$1" != - ]; then x=$(chmod "$1" -- "$q" 2>&1) || fail "${x##*: }" || return; fi; if [ "$2" != - ]; then x=$(TZ=UTC0 touch -t "$2" -- "$q" 2>&1) || fail "${x##*: }"; fi; }
op_mkdir() { x=$(mkdir -p -- "$p" 2>&1) || fail "${x##*: }" || return; if [ "$1" != - ]; then x=$(chmod "$1" -- "$p" 2>&1) || fail "${x##*: }"; fi; }
op_remove() { rm -f -- "$p"; }
op_stamp() { x=$(TZ=UTC0 touch -t "$1" -- "$p" 2>&1) || fail "${x##*: }"; }
op_glob() { ( IFS=; for f in $p; do [ -e "$f" ] && printf '%s\n%s\n' "${#f}" "$f"; done; exit 0 ); }
exec 4>&1
printf '\033]ssmsh-cp;%s;%s,%s,%s,%s\007' "$K" "$r" "$e" "$h" "$z"
while fr; do set -- $v; o=$1; shift; path; case $o in commit) q0=$p; path; q=$p; p=$q0;; stat|list|read|readz|hash|hashes|size|write|mkdir|remove|glob|stamp) ;; *) o=unknown;; esac; if [ "$o" = unknown ]; then s=$( { { echo "unknown operation"; echo 1 >&3; } | enc >&4 3>&-; } 3>&1 ); else s=$( { { op_$o "$@"; echo $? >&3; } | enc >&4 3>&-; } 3>&1 ); fi; printf '\n.%s %s\n' "$K" "${s:-255}"; done
"""  # noqa: E501


def helper_script(marker: str) -> str:
    """The program for AWS-StartInteractiveCommand's ``command`` (run by ``sh -c``): one
    line, as a document parameter is best kept."""
    if not re.fullmatch(r"[0-9a-f]{8,64}", marker):
        raise ValueError("the marker must be hex digits")
    text = (
        f"K={marker}\n"
        + _SETUP
        + f"M={shlex.quote(_META)}\n"
        + f"L={shlex.quote(_LIST_EACH)}\n"
        + _OPERATIONS
    )
    return "; ".join(line for line in text.splitlines() if line)


def _frame(data: bytes) -> bytes:
    if len(data) > 99_999_999:
        raise ValueError("a frame holds at most 99,999,999 bytes")
    return b"%08d" % len(data) + data


def request(
    operation: str, numbers: Sequence[int | str] = (), paths: Iterable[bytes] = ()
) -> bytes:
    """The bytes of one request (without a ``write``'s data, which follows it)."""
    words = " ".join([operation, *(str(n) for n in numbers)])
    if operation not in OPERATIONS or not re.fullmatch(r"[a-z]+( [0-9.\-]+)*", words):
        raise ValueError(f"bad request words: {words!r}")
    out = _frame(words.encode())
    for path in paths:
        if not path or b"\0" in path:
            raise ValueError("a path is not empty and has no NUL byte")
        out += _frame(path)
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """What the helper found on the target: its reader, encoder, hasher and compressor."""

    reader: str
    encoder: str
    hasher: str
    compressor: str = "none"

    def missing(self) -> str | None:
        """What the target lacks for ``ssmsh cp``, in words (None: nothing)."""
        if self.encoder == "none":
            return "base64 or od"
        if self.hasher == "none":
            return "sha256sum, openssl or shasum"
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class HelperReady:
    capabilities: Capabilities
    #: Output before the ready sequence (a login banner, an error), at most 4 KiB.
    preamble: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int
    #: The operation's output, decoded.
    payload: bytes

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def message(self) -> str:
        """A failed operation's message: its last line of output."""
        lines = self.payload.decode(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else f"status {self.status}"


class HelperOutput:
    """Reads the helper's output: first :class:`HelperReady`, then one :class:`Reply` per
    request, in order. :meth:`feed` takes output as it comes and returns the events
    complete so far; a payload is held until its end line (a read's is one chunk)."""

    def __init__(self, marker: str) -> None:
        self._ready_token = _READY + marker.encode() + b";"
        self._end_token = b"\n." + marker.encode() + b" "
        self._buffer = bytearray()
        self._preamble = b""
        self.capabilities: Capabilities | None = None

    @property
    def ready(self) -> bool:
        return self.capabilities is not None

    @property
    def preamble(self) -> bytes:
        """Output seen before the ready sequence (for a message when there is none)."""
        return self._preamble + bytes(self._buffer[-_MAX_PREAMBLE:])

    def feed(self, data: bytes) -> list[HelperReady | Reply]:
        self._buffer += data
        events: list[HelperReady | Reply] = []
        if self.capabilities is None:
            start = self._buffer.find(self._ready_token)
            if start < 0:
                self._trim_preamble()
                return events
            end = self._buffer.find(_BEL, start + len(self._ready_token))
            if end < 0:
                if len(self._buffer) - start > len(self._ready_token) + _MAX_CAPABILITIES:
                    raise TransferProtocolError("the helper's ready sequence is too long")
                return events
            words = bytes(self._buffer[start + len(self._ready_token) : end]).decode(
                "ascii", "replace"
            )
            parts = words.split(",")
            if len(parts) != 4:
                raise TransferProtocolError(f"the helper's ready sequence is unreadable: {words!r}")
            self.capabilities = Capabilities(*parts)
            preamble = (self._preamble + bytes(self._buffer[:start]))[-_MAX_PREAMBLE:]
            del self._buffer[: end + 1]
            events.append(HelperReady(self.capabilities, preamble))
        while True:
            at = self._buffer.find(self._end_token)
            if at < 0:
                return events
            line_end = self._buffer.find(b"\n", at + len(self._end_token))
            if line_end < 0:
                if len(self._buffer) - at > len(self._end_token) + 16:
                    raise TransferProtocolError("the helper's end line is too long")
                return events
            status_text = bytes(self._buffer[at + len(self._end_token) : line_end])
            try:
                status = int(status_text)
            except ValueError:
                raise TransferProtocolError(
                    f"bad status from the helper: {status_text!r}"
                ) from None
            payload = self._decode(bytes(self._buffer[:at]))
            del self._buffer[: line_end + 1]
            events.append(Reply(status, payload))

    def _trim_preamble(self) -> None:
        keep = len(self._ready_token) + _MAX_CAPABILITIES
        if len(self._buffer) > _MAX_PREAMBLE + keep:
            cut = len(self._buffer) - keep
            self._preamble = (self._preamble + bytes(self._buffer[:cut]))[-_MAX_PREAMBLE:]
            del self._buffer[:cut]

    def _decode(self, text: bytes) -> bytes:
        assert self.capabilities is not None
        try:
            if self.capabilities.encoder == "od":
                return bytes.fromhex(text.decode("ascii"))
            return binascii.a2b_base64(b"".join(text.split()), strict_mode=True)
        except (ValueError, binascii.Error) as exc:
            raise TransferProtocolError(
                f"the helper's output is not {self.capabilities.encoder}: {exc}"
            ) from None


def parse_hashes(payload: bytes) -> list[str]:
    """The SHA-256 digests in a ``hash`` or ``hashes`` reply (what any hasher prints)."""
    return [m.decode() for m in _HEX64.findall(payload.lower())]


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """A path on the target, as ``stat`` and ``list`` describe it."""

    kind: str  # f, d, o, n
    size: int
    mode: int | None
    mtime: int | None
    path: bytes = b""


def _entry(words: Sequence[bytes], path: bytes = b"") -> Entry:
    if len(words) < 4 or words[0] not in (b"f", b"d", b"o", b"n"):
        raise TransferProtocolError(f"bad stat line from the helper: {b' '.join(words)!r}")
    try:
        size = int(words[1])
        mode = None if words[2] == b"-" else int(words[2], 8)
        mtime = None if words[3] == b"-" else int(words[3])
    except ValueError:
        raise TransferProtocolError(
            f"bad stat line from the helper: {b' '.join(words)!r}"
        ) from None
    return Entry(words[0].decode(), size, mode, mtime, path)


def parse_paths(payload: bytes) -> list[bytes]:
    """The paths of a ``glob`` reply, in order."""
    paths: list[bytes] = []
    at = 0
    while at < len(payload):
        line_end = payload.find(b"\n", at)
        length_text = payload[at:line_end] if line_end >= 0 else b""
        if not length_text.isdigit():
            raise TransferProtocolError(f"bad glob line from the helper: {length_text!r}")
        start = line_end + 1
        end = start + int(length_text)
        if payload[end : end + 1] != b"\n":
            raise TransferProtocolError("a glob entry is cut short")
        paths.append(payload[start:end])
        at = end + 1
    return paths


def parse_stat(payload: bytes) -> Entry:
    return _entry(payload.split())


def parse_entries(payload: bytes) -> list[Entry]:
    """The entries of a ``list`` reply, in order (the listed path first)."""
    entries: list[Entry] = []
    at = 0
    while at < len(payload):
        line_end = payload.find(b"\n", at)
        if line_end < 0:
            raise TransferProtocolError("a list entry is cut short")
        words = payload[at:line_end].split()
        if len(words) != 5 or not words[4].isdigit():
            raise TransferProtocolError(f"bad list line from the helper: {payload[at:line_end]!r}")
        length = int(words[4])
        start = line_end + 1
        path = payload[start : start + length]
        if len(path) != length or payload[start + length : start + length + 1] != b"\n":
            raise TransferProtocolError("a list entry is cut short")
        entries.append(_entry(words[:4], path))
        at = start + length + 1
    return entries
