"""Customer data in the capture: what redaction costs per message, and whether the drift check gives the
same verdicts on redacted text as on the original.

Windows: the drift benchmark's own (benchmarks/drift.py: its pool, models, fresh 3,080-row reference
per stream, clean streams and the two shifted scenarios). Into a share of the messages of every window
(and, for the recent-traffic reference, of the reference) realistic customer data is injected: a
sentence with a Luhn-valid card number, an e-mail address, a phone number (+CC or national) or a valid
IBAN, each formatted several ways. Each window is then judged three times with the same profile, intents
and confidences (the capture holds the prediction made on the original text): on the original text,
redacted (mode redact) and hashed (mode hash). Agreement is per window, on the verdict (any per-window
test or the sequential test fired), each arm carrying its own sequential evidence along the stream.

Two references: "evaluation" (production's default: the reference texts carry no customer data, as
BANKING77's evaluation split) and "recent traffic" (pipelines/reference.py builds it from captured,
hence redacted, traffic: the reference carries customer data at the same share, original for the
original arm and redacted for the others).

Run: `.venv/bin/python -m benchmarks.drift_redaction` (no Evidently needed; ~1-2 min) ->
docs/benchmarks.md, section "drift-redaction".
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.drift import World, build_worlds, draw_reference, shifted_stream
from model.drift import SEQUENTIAL, TESTS, DriftConfig, Evidence, compare
from model.profile import request_features
from model.redact import Redactor

HASH_KEY = "benchmark-only-key-not-a-secret"  # a throwaway key for the benchmark's hash arm


def _luhn_complete(body: str) -> str:
    for d in "0123456789":
        total = 0
        for i, ch in enumerate(reversed(body + d)):
            v = int(ch) * (2 if i % 2 else 1)
            total += v - 9 if v > 9 else v
        if total % 10 == 0:
            return body + d
    raise AssertionError("unreachable")


def _iban(rng: np.random.Generator) -> str:
    country, bban = "GB", "WEST" + "".join(str(d) for d in rng.integers(0, 10, 14))
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    compact = f"{country}{check:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if rng.random() < 0.6 else compact


def pii_sentence(rng: np.random.Generator) -> str:
    """One realistic sentence carrying customer data (a support message's typical way of giving it)."""
    kind = rng.integers(0, 4)
    if kind == 0:
        digits = _luhn_complete(
            str(rng.choice(["4", "51", "53", "37"])) + "".join(str(d) for d in rng.integers(0, 10, 13))
        )
        digits = digits[:16] if digits.startswith(("4", "5")) else _luhn_complete(digits[:14])
        sep = str(rng.choice([" ", "-", ""]))
        card = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
        return str(rng.choice(["my card {} was declined", "card number {}", "the card ending {} is blocked"])).format(
            card
        )
    if kind == 1:
        user = str(rng.choice(["john.smith", "maria_g", "a.b", "kim2021", "joao.silva"]))
        dom = str(rng.choice(["gmail.com", "example.co.uk", "outlook.com", "empresa.com.br"]))
        return str(rng.choice(["email me at {}", "my email is {}", "contact {} please"])).format(f"{user}@{dom}")
    if kind == 2:
        n = "".join(str(d) for d in rng.integers(0, 10, 7))
        phone = str(
            rng.choice([f"+44 20 {n[:4]} {n[4:]}0", f"07700 9{n[:5]}", f"+1 (555) {n[:3]}-{n[3:]}", f"+351 91{n}"])
        )
        return str(rng.choice(["call me on {}", "my number is {}", "phone {}"])).format(phone)
    return str(rng.choice(["my IBAN is {}", "send it to {}", "account {}"])).format(_iban(rng))


def inject(texts: list[str], share: float, rng: np.random.Generator) -> list[str]:
    """Each message gets a customer-data sentence (before or after) with probability `share`."""
    out = []
    for t in texts:
        if rng.random() < share:
            s = pii_sentence(rng)
            t = f"{s}. {t}" if rng.random() < 0.3 else f"{t} {s}"
        out.append(t)
    return out


ARMS = ("original", "redact", "hash")


def _redactors() -> dict[str, Callable[[str], str]]:
    r, h = Redactor("redact"), Redactor("hash", HASH_KEY)
    return {"original": lambda t: t, "redact": r.redact, "hash": h.redact}


def run(window: int, share: float, streams: int, seed: int, cfg: DriftConfig) -> dict[str, Any]:
    full, held_world, held, _ = build_worlds()
    rng = np.random.default_rng(seed)
    arms = _redactors()
    all_idx = np.arange(len(full.texts))
    known = np.array([i for i, lab in enumerate(held_world.labels) if lab not in held])
    k = max(1, 1000 // window)
    rows: dict[str, dict[str, Any]] = {}

    def judge(world: World, ref_idx: np.ndarray, wins: list[np.ndarray], recent: bool, name: str) -> None:
        ref_texts = [world.texts[i] for i in ref_idx]
        if recent:
            ref_texts = inject(ref_texts, share, rng)
        profiles = {}
        for arm, f in arms.items():
            texts = [f(t) for t in ref_texts]
            feats = request_features(
                texts, [world.intents[i] for i in ref_idx], world.confidence[ref_idx], world.vocab, world.log_p
            )
            profiles[arm] = world.profile(ref_idx, feats)
        evidence: dict[str, Evidence | None] = dict.fromkeys(arms)
        row = rows.setdefault(
            name,
            {
                "windows": 0,
                "agree": dict.fromkeys(ARMS[1:], 0),
                "fired": dict.fromkeys(ARMS, 0),
                "streams": 0,
                "tests": {arm: {} for arm in ARMS},
            },
        )
        row["streams"] += 1
        for win in wins:
            texts = inject([world.texts[i] for i in win], share, rng)
            verdicts = {}
            for arm, f in arms.items():
                feats = request_features(
                    [f(t) for t in texts],
                    [world.intents[i] for i in win],
                    world.confidence[win],
                    world.vocab,
                    world.log_p,
                )
                rep = compare(profiles[arm], feats, cfg, evidence[arm])
                evidence[arm] = rep.evidence
                verdicts[arm] = any(t.fired for t in rep.tests if t.name in (*TESTS, SEQUENTIAL))
                for t in rep.tests:
                    if t.fired:
                        row["tests"][arm][t.name] = row["tests"][arm].get(t.name, 0) + 1
            row["windows"] += 1
            for arm in ARMS:
                row["fired"][arm] += int(verdicts[arm])
            for arm in ARMS[1:]:
                row["agree"][arm] += int(verdicts[arm] == verdicts["original"])

    for recent in (False, True):
        ref_name = "recent traffic" if recent else "evaluation"
        for _ in range(streams):
            ref_idx, pool = draw_reference(rng, known)
            wins = [pool[w * window : (w + 1) * window] for w in range(len(pool) // window)]
            judge(held_world, ref_idx, wins, recent, f"clean (held-out model), {ref_name} reference")
        scenarios = {
            "intent mix (10 intents carry 60 %)": (full, all_idx, all_idx, 0.60, full.classes[3::7][:10]),
            "held-out intents (10 % of traffic)": (held_world, known, all_idx, 0.10, held),
        }
        for label, (world, ref_allowed, allowed, sh, shifted) in scenarios.items():
            for _ in range(streams):
                ref_idx, _ = draw_reference(rng, ref_allowed)
                pool = np.setdiff1d(allowed, ref_idx)
                wins, _ = shifted_stream(world, rng, pool, sh, shifted, k, window)
                judge(world, ref_idx, wins, recent, f"{label}, {ref_name} reference")
    return {"window": window, "share": share, "streams": streams, "rows": rows}


def cost(seed: int) -> dict[str, float]:
    """Median-of-5 microseconds per message, per mode, on BANKING77 messages as they are and with data injected."""
    full, _, _, _ = build_worlds()
    rng = np.random.default_rng(seed)
    plain = full.texts
    with_pii = inject(plain[:2000], 1.0, rng)
    out: dict[str, float] = {
        "share_with_digit_or_at": float(np.mean([any(c.isdigit() or c == "@" for c in t) for t in plain]))
    }
    for mode in ("redact", "hash", "drop"):
        r = Redactor(mode, HASH_KEY if mode == "hash" else None)
        for name, texts in (("plain", plain), ("pii", with_pii)):
            runs = []
            for _ in range(5):
                start = time.perf_counter()
                for t in texts:
                    r.apply(t)
                runs.append((time.perf_counter() - start) / len(texts))
            out[f"{mode}_{name}_us"] = 1e6 * float(np.median(runs))
    out["n_plain"], out["n_pii"] = len(plain), len(with_pii)
    return out


def _fired(tests: dict[str, dict[str, int]]) -> str:
    names = sorted(set().union(*(t.keys() for t in tests.values())))
    return ", ".join(f"{n} {'/'.join(str(tests[a].get(n, 0)) for a in ARMS)}" for n in names) or "none"


def render(c: dict[str, float], results: list[dict[str, Any]]) -> str:
    lines = [
        "Per-message cost of model/redact.py (one core, median of 5 passes; the capture writer thread pays it "
        "for sampled records only, never the request):",
        "",
        "| mode | BANKING77 messages as they are | messages each with one injected card/e-mail/phone/IBAN sentence |",
        "|---|---|---|",
    ]
    for mode in ("redact", "hash", "drop"):
        lines.append(f"| {mode} | {c[f'{mode}_plain_us']:.2f} us | {c[f'{mode}_pii_us']:.2f} us |")
    lines += [
        "",
        f"({int(c['n_plain']):,} pool messages, of which {100 * c['share_with_digit_or_at']:.1f} % contain a digit or "
        f"an '@' and so are scanned; {int(c['n_pii']):,} messages with data.) At 8,000 requests/s with every "
        f"request captured, the plain-traffic figure is {8000 * c['redact_plain_us'] / 1e4:.2f} % of one core.",
        "",
        "Drift verdicts on the drift benchmark's windows, original text vs redacted (mode redact) and hashed "
        "(mode hash) text, customer data injected into the stated share of messages (windows and, for the "
        "recent-traffic reference, the reference). A verdict is 'drift' when any per-window test or the "
        "sequential test fired; agreement is per window.",
    ]
    for res in results:
        lines += [
            "",
            f"#### Windows of {res['window']}, customer data in {100 * res['share']:.0f} % of messages, "
            f"{res['streams']} streams per row",
            "",
            "| windows | reference | windows judged | drift verdicts (original / redact / hash) "
            "| redact agrees | hash agrees | tests that fired (original / redact / hash) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in res["rows"].items():
            scen, ref = name.rsplit(", ", 1)
            n, f, a = r["windows"], r["fired"], r["agree"]
            lines.append(
                f"| {scen} | {ref} | {n} | {f['original']} / {f['redact']} / {f['hash']} "
                f"| {a['redact']}/{n} ({100 * a['redact'] / n:.1f} %) | {a['hash']}/{n} ({100 * a['hash'] / n:.1f} %) "
                f"| {_fired(r['tests'])} |"
            )
        tot = sum(r["windows"] for r in res["rows"].values())
        for arm in ("redact", "hash"):
            agree = sum(r["agree"][arm] for r in res["rows"].values())
            lines.append(f"\nAll rows, {arm}: {agree}/{tot} windows agree ({100 * agree / tot:.1f} %).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="500")
    parser.add_argument("--shares", default="0.1,0.3", help="comma-separated shares of messages with customer data")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    load = os.getloadavg()[0]
    c = cost(args.seed)
    cfg = DriftConfig()
    results = [
        run(int(w), float(s), args.streams, args.seed, cfg)
        for w in args.windows.split(",")
        for s in args.shares.split(",")
    ]
    body = render(c, results) + f"\n\nLoad average (1 min) at start {load:.1f}, at end {os.getloadavg()[0]:.1f}."
    print(body)
    if not args.no_write:
        from benchmarks.report import write_section

        write_section("drift-redaction", body)


if __name__ == "__main__":
    main()
