"""Bounce classification throughput: notices classified per second, on one core.

Classifies the sample notices of ``mailproxy_ee/bounce/tests/data`` (the shared samples: Postfix,
Exim, Office 365, Exchange, Gmail-style DSNs, a delay warning, a plain-text MAILER-DAEMON notice,
an auto-reply, an ARF complaint; and the plugin's own: qmail, Sendmail multi-recipient, base64 /
quoted-printable / Latin-1, notices without Message-ID, auto-replies, headers-only complaint,
unrelated mail) round-robin, ``--notices`` in total, after a warm-up, and prints the overall rate
and the rate per sample. Classification is the CPU part of reading the bounce mailbox: parsing
with the standard library ``email`` package, decoding, finding the report parts, the recipients,
the codes and the correlation data.

Usage::

    .venv/bin/python benchmarks/bounce_classify.py [--notices 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "mailproxy_ee" / "bounce" / "tests" / "data"


def samples() -> dict[str, bytes]:
    """Every sample notice with its placeholders filled in."""
    out = {}
    for path in sorted([*DATA.glob("bounces/*.eml"), *DATA.glob("own/*.eml")]):
        raw = (
            path.read_bytes()
            .replace(b"{{RCPT}}", b"jane.doe@example.test")
            .replace(b"{{RCPT2}}", b"sam.lee@example.test")
            .replace(b"{{MESSAGE_ID}}", b"<20251117.abc123@mp.acme-shop.example>")
            .replace(b"{{MAIL_ID}}", b"order-10482")
        )
        out[f"{path.parent.name}/{path.name}"] = raw
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=20_000)
    args = parser.parse_args()
    try:
        from mailproxy_ee_bounce.classify import classify
    except ImportError:
        print("mailproxy-ee-bounce is not installed: pip install -e mailproxy_ee/bounce")
        return 1
    notices = samples()
    raws = list(notices.values())
    for raw in raws * 20:  # warm-up
        classify(raw)
    started = time.perf_counter()
    for i in range(args.notices):
        classify(raws[i % len(raws)])
    elapsed = time.perf_counter() - started
    size = statistics.mean(len(r) for r in raws)
    print(
        f"classified {args.notices} notices in {elapsed:.2f} s: "
        f"{args.notices / elapsed:,.0f} notices/s (mean notice {size / 1024:.1f} KiB)"
    )
    print(f"{'sample':55} {'notices/s':>10}")
    for name, raw in notices.items():
        rounds = max(200, args.notices // len(raws) // 4)
        t0 = time.perf_counter()
        for _ in range(rounds):
            classify(raw)
        print(f"{name:55} {rounds / (time.perf_counter() - t0):>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
