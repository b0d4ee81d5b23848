"""Customer data in the inference capture: find card numbers, e-mail addresses, phone numbers and IBANs
in a message and replace them before the message is written to S3.

Why here and not in the drift check: the capture bucket is read by people (on-call, auditors) and by
several jobs (drift check, recent-traffic reference, retraining); whatever reaches it is as good as
published inside the account. So the text is redacted before it is captured, and the served prediction
still uses the original (model/serving/capture.py redacts on its writer thread, off the request path).

What is detected (one precompiled pass; a message with no digit and no "@" costs one failed search):

- e-mail: local@domain.tld (ASCII or Unicode word characters, a dotted domain, a 2+ letter TLD).
- IBAN: 2 letters, 2 check digits, 11-30 letters/digits, optionally in groups of 4 separated by single
  spaces, any case; redacted only when the ISO 13616 mod-97 check holds (every IBAN country uses it),
  so "AB12 ..." shaped words that are not IBANs stay.
- card number: 13-19 digits, optionally grouped with single spaces or dashes; redacted only when the
  Luhn check holds (on the whole run, or on a run of its groups: "order 12 4111 1111 1111 1111"
  redacts the card and keeps "12"). Decision: Luhn alone, no issuer-prefix list. One in ten random
  13-19 digit numbers passes Luhn, so a long order id is sometimes captured as [PII_CARD]; that costs
  an order id in the capture, while a missed card is a leaked card. Amounts, dates and short numbers
  (under 13 digits) are never cards.
- phone: "+" and 8-15 digits (E.164), "00" and 10-17 digits, a national number starting with a trunk
  "0" or an "(area)" with 9-12 digits, and the North American 3-3-4 grouping (555-123-4567).
  Separators: single spaces, dashes, dots, parentheses; never "/", ":" or ",", so dates (12/03/2024,
  2024-03-12 has 8 digits), times and amounts (£100.50, 1,000.00, "top up 100") do not match, and a
  run preceded by a currency sign is never a phone. Not detected (by design, to keep order numbers): a
  bare run of digits without "+", "0" or grouping ("5551234567"), unless it is a Luhn-valid card.

Modes (ESTEIRA_CAPTURE_REDACTION, model/serving/settings.py):

- ``redact`` (default): each value becomes a typed placeholder, ``[PII_CARD]``, ``[PII_EMAIL]``,
  ``[PII_PHONE]``, ``[PII_IBAN]``. Why not ``[CARD]``: the drift check's tokeniser (model/profile.py,
  ``\\w+``) would read ``card``, one of BANKING77's most frequent in-vocabulary words, where the
  original value was a run of unknown tokens; ``pii_card`` is one token that no training text contains,
  so a redacted value still counts as out-of-vocabulary, as the value did (see docs/benchmarks.md,
  section drift-redaction, for the verdicts on original vs redacted text).
- ``hash``: ``[PII_CARD_<12 hex>]``: HMAC-SHA256 of the normalised value (digits of a card or phone,
  the lower-cased e-mail, the upper-cased IBAN without spaces) under a key from configuration
  (ESTEIRA_CAPTURE_REDACTION_KEY, at least 16 characters; never a default in code). Equal values give equal
  tokens, so "the same card in 40 complaints" can be seen without the card. Keyed because an unkeyed
  hash of a card number is reversible by enumeration (a BIN plus 9 digits is ~10^9 candidates); the
  key id (HMAC of a fixed label, 8 hex) is recorded so an auditor can tell which key was used, and
  rotating the key breaks correlation across the rotation, by design.
- ``drop``: the record is captured without its text (``"text": null``); intent, confidence and the
  rest stay, so the drift check still runs its prediction, confidence and sequential tests, and skips
  the two tests that read text (OOV rate, input typicality); its report lists only the tests that ran.

Every capture record says what was applied (``"redaction": "redact/v1"``, ``"hash/v1/key=<id>"`` or
``"drop/v1"``); REDACTION_VERSION changes whenever the detection rules change, so an auditor can tell
which rules a record went through.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

REDACTION_VERSION: Final = "v1"
MODES: Final = ("redact", "hash", "drop")
KINDS: Final = ("card", "email", "phone", "iban")
MIN_KEY_CHARS: Final = 16
HASH_HEX: Final = 12  # 48 bits: collisions among a day's distinct values are negligible; shorter is less to leak

PLACEHOLDER: Final = {kind: f"[PII_{kind.upper()}]" for kind in KINDS}

# Anything worth a look has a digit: one C-level search rejects most messages; "@" is a substring test.
_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
# Candidates are found with patterns that start on a character class (the regex engine then skips
# non-starting positions in C) and checked in Python, which measured ~3x faster than lookbehinds.
_IBAN = re.compile(r"[a-zA-Z]{2}\d{2}(?:[ ]?[a-zA-Z0-9]{4}){2,7}(?:[ ]?[a-zA-Z0-9]{1,3})?(?![a-zA-Z0-9])")
_NUM = re.compile(r"[+(]?\d[\d ().\-]{6,}\d")
_NOT_DIGIT = re.compile(r"\D")
_DIGITS = re.compile(r"\d+")
_DOUBLE_SEP = re.compile(r"[ .\-]{2}|[()]{2}")
_DATE = re.compile(r"(?<!\d)(?:\d{1,2}[.\-]\d{1,2}[.\-]\d{2,4}|\d{4}-\d{2}-\d{2})(?!\d)")
_NANP = re.compile(r"\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}")
_CARD_SHAPE = re.compile(r"\d+(?:[ .\-]\d+)*")
_BEFORE_NUM = frozenset("£$€¥+.,_")  # a run right after these is an amount or part of something else


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, the number mod 97 is 1."""
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card_span(text: str) -> tuple[int, int] | None:
    """(start, end) inside `text` (digits with single space/dash separators) of the longest run of whole
    groups with 13-19 digits that passes Luhn, or None."""
    if not _CARD_SHAPE.fullmatch(text):
        return None
    digits = _NOT_DIGIT.sub("", text)
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return 0, len(text)
    groups = [(m.start(), m.end()) for m in _DIGITS.finditer(text)]
    best: tuple[int, int] | None = None
    for i in range(len(groups)):
        n = 0
        for j in range(i, len(groups)):
            n += groups[j][1] - groups[j][0]
            if n > 19:
                break
            if n >= 13:
                s, e = groups[i][0], groups[j][1]
                if (best is None or e - s > best[1] - best[0]) and luhn_ok(_NOT_DIGIT.sub("", text[s:e])):
                    best = (s, e)
    return best


def _phone(text: str, digits: str) -> bool:
    n = len(digits)
    if text.startswith("+"):
        return 8 <= n <= 15
    if digits.startswith("00"):
        return 10 <= n <= 17
    if text.startswith(("0", "(")):
        return 9 <= n <= 12
    return _NANP.fullmatch(text) is not None


class Redactor:
    """Applies one mode; build once (it holds the compiled key) and call `apply` per message."""

    def __init__(self, mode: str = "redact", key: str | None = None):
        if mode not in MODES:
            raise ValueError(f"redaction mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self._mac: hmac.HMAC | None = None
        self.key_id = ""
        if mode == "hash":
            if not key or len(key) < MIN_KEY_CHARS:
                raise ValueError(
                    f"redaction mode 'hash' needs ESTEIRA_CAPTURE_REDACTION_KEY of at least {MIN_KEY_CHARS} characters"
                )
            self._mac = hmac.new(key.encode("utf-8"), digestmod=hashlib.sha256)
            self.key_id = self._digest("key-id", "esteira-capture-redaction")[:8]
        self.label = f"{mode}/{REDACTION_VERSION}" + (f"/key={self.key_id}" if self.key_id else "")

    def _digest(self, kind: str, value: str) -> str:
        assert self._mac is not None
        mac = self._mac.copy()  # the keyed state is computed once; a copy per value is cheap
        mac.update(f"{kind}\x00{value}".encode())
        return mac.hexdigest()

    def _token(self, kind: str, normalised: str) -> str:
        if self._mac is None:
            return PLACEHOLDER[kind]
        return f"[PII_{kind.upper()}_{self._digest(kind, normalised)[:HASH_HEX]}]"

    def _email(self, m: re.Match[str]) -> str:
        return self._token("email", m.group().lower())

    def _iban(self, m: re.Match[str]) -> str:
        found, start = m.group(), m.start()
        if start and (m.string[start - 1].isalnum() or m.string[start - 1] == "_"):
            return found  # inside a longer word
        compact = found.replace(" ", "").upper()
        return self._token("iban", compact) if iban_ok(compact) else found

    def _number(self, m: re.Match[str]) -> str:
        found, start, end, text = m.group(), m.start(), m.end(), m.string
        before = text[start - 1] if start else " "
        if before.isalnum() or before in _BEFORE_NUM:
            return found  # part of a word, an amount (£100...), a decimal or a code
        if end < len(text) and (text[end].isalnum() or (text[end] in ".," and text[end + 1 : end + 2].isdigit())):
            return found
        if _DOUBLE_SEP.search(found) or _DATE.search(found):
            return found
        digits = _NOT_DIGIT.sub("", found)
        if found[0] != "+" and len(digits) >= 13:
            span = _card_span(found)
            if span is not None:
                s, e = span
                card = self._token("card", _NOT_DIGIT.sub("", found[s:e]))
                return f"{found[:s]}{card}{found[e:]}"
        if _phone(found, digits):
            return self._token("phone", ("+" if found[0] == "+" else "") + digits)
        return found

    def redact(self, text: str) -> str:
        """The text with every detected value replaced (modes redact and hash); unchanged if none."""
        if "@" in text:
            text = _EMAIL.sub(self._email, text)
        if _DIGIT.search(text) is None:
            return text
        text = _IBAN.sub(self._iban, text)
        return _NUM.sub(self._number, text)

    def apply(self, text: str) -> str | None:
        """What the capture stores for `text`: None in mode drop."""
        return None if self.mode == "drop" else self.redact(text)


def kinds_found(redacted: str) -> list[str]:
    """The kinds of value replaced in a redacted text (for tests and reports)."""
    return [k for k in KINDS if f"[PII_{k.upper()}" in redacted]
