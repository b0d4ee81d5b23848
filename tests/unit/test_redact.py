"""Customer data in the capture (model/redact.py): what is found, what is left alone, each mode."""

from __future__ import annotations

import pytest

from model.redact import REDACTION_VERSION, Redactor, iban_ok, kinds_found, luhn_ok

KEY = "unit-test-key-0123456789"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card 4111 1111 1111 1111 was declined", "my card [PII_CARD] was declined"),
        ("card 4111-1111-1111-1111 blocked?", "card [PII_CARD] blocked?"),
        ("amex 378282246310005 charged twice", "amex [PII_CARD] charged twice"),
        ("order 12 4111 1111 1111 1111", "order 12 [PII_CARD]"),
        ("email me at a.b@c.co.uk", "email me at [PII_EMAIL]"),
        ("Contact: Joao.Silva+bank@empresa.com.br, thanks", "Contact: [PII_EMAIL], thanks"),
        ("call +44 20 7946 0958 please", "call [PII_PHONE] please"),
        ("ring me on 020 7946 0958.", "ring me on [PII_PHONE]."),
        ("my number is (555) 123-4567", "my number is [PII_PHONE]"),
        ("mobile 07700 900123", "mobile [PII_PHONE]"),
        ("0044 20 7946 0958 is my line", "[PII_PHONE] is my line"),
        ("GB82 WEST 1234 5698 7654 32", "[PII_IBAN]"),
        ("pay to gb82west12345698765432 today", "pay to [PII_IBAN] today"),
        ("IBAN DE89 3704 0044 0532 0130 00 is mine", "IBAN [PII_IBAN] is mine"),
    ],
)
def test_true_positives(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I paid £100.50 on 12/03/2024 and it is still pending",
        "top up 100",
        "I sent 1,000,000.00 EUR yesterday",
        "on 2024-03-12 at 10:30 my transfer failed",
        "order 1234567890123 has not arrived",  # 13 digits failing Luhn: an order id, not a card
        "DE89 3704 0044 0532 0130 01",  # IBAN-shaped, wrong check digits
        "sort code 12-34-56, account 12345678",
        "ref 5551234567",  # a bare run of digits is kept (documented limit)
        "x@y is not an address",
        "why was I charged $25.99 twice on 01.02.2024?",
        "I am still waiting on my card",
    ],
)
def test_true_negatives(text: str) -> None:
    assert Redactor().redact(text) == text


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB83WEST12345698765432")


def test_hash_mode_correlates_equal_values_without_revealing_them() -> None:
    h = Redactor("hash", KEY)
    a = h.redact("card 4111 1111 1111 1111")
    b = h.redact("card 4111-1111-1111-1111")  # same number, other format: same token
    c = h.redact("card 5555 5555 5555 4444")
    assert a == b != c and "4111" not in a and a.startswith("card [PII_CARD_")
    other_key = Redactor("hash", KEY + "x").redact("card 4111 1111 1111 1111")
    assert other_key != a  # keyed: without the key the token cannot be recomputed from a guess
    assert h.label == f"hash/{REDACTION_VERSION}/key={h.key_id}" and len(h.key_id) == 8 and KEY not in h.label
    assert kinds_found(h.redact("mail a@b.com or +44 20 7946 0958")) == ["email", "phone"]


def test_hash_mode_needs_a_key_from_configuration() -> None:
    with pytest.raises(ValueError, match="ESTEIRA_CAPTURE_REDACTION_KEY"):
        Redactor("hash")
    with pytest.raises(ValueError, match="ESTEIRA_CAPTURE_REDACTION_KEY"):
        Redactor("hash", "short")
    with pytest.raises(ValueError, match="mode"):
        Redactor("mask")


def test_modes_apply() -> None:
    text = "my card 4111 1111 1111 1111 was declined"
    assert Redactor("redact").apply(text) == "my card [PII_CARD] was declined"
    assert Redactor("drop").apply(text) is None
    assert Redactor("redact").label == f"redact/{REDACTION_VERSION}"
    assert Redactor("drop").label == f"drop/{REDACTION_VERSION}"


def test_placeholders_are_single_out_of_vocabulary_tokens() -> None:
    """The drift check tokenises with \\w+: a placeholder must be one token no training text contains."""
    from model.profile import tokens

    assert tokens(Redactor().redact("card 4111 1111 1111 1111 and a@b.com")) == ["card", "pii_card", "and", "pii_email"]
    hashed = tokens(Redactor("hash", KEY).redact("call +44 20 7946 0958"))
    assert len(hashed) == 2 and hashed[1].startswith("pii_phone_")


def test_settings_read_the_mode_and_refuse_hash_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from model.serving.settings import ServingSettings

    assert ServingSettings.from_env().capture_redaction == "redact"
    monkeypatch.setenv("ESTEIRA_CAPTURE_REDACTION", "hash")
    with pytest.raises(ValueError, match="ESTEIRA_CAPTURE_REDACTION_KEY"):
        ServingSettings.from_env()
    monkeypatch.setenv("ESTEIRA_CAPTURE_REDACTION_KEY", KEY)
    s = ServingSettings.from_env()
    assert s.capture_redaction == "hash" and KEY not in repr(s)
    monkeypatch.setenv("ESTEIRA_CAPTURE_REDACTION", "nope")
    with pytest.raises(ValueError, match="ESTEIRA_CAPTURE_REDACTION"):
        ServingSettings.from_env()
