"""Write docs/reliability.md from the record the fault tests leave.

Run the fault tests, then this script:

    python -m pytest tests/controller/test_reliability.py tests/security \
        tests/controller/test_notify.py tests/controller/test_retention.py \
        tests/watch/test_watcher.py
    python bench/reliability_table.py [--record FILE.json] [--write docs/reliability.md]

The tests measure; this only lays their rows out as a table, with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from dispatch import machine

ROOT = Path(__file__).resolve().parent.parent

INTRO = """# Reliability

Faults, bad input and access, each an automated test with real processes
(`tests/controller/test_reliability.py`, `tests/security/`, `tests/controller/test_notify.py`,
`tests/controller/test_retention.py`, `tests/watch/test_watcher.py`): a `qfarm controller`
and `qfarm node` processes on loopback, killed, frozen, starved of disk, revoked and
restarted while they work; watch folders, webhook receivers and clients met with what goes
wrong in the field. The goal for every row: nothing lost. "Time to recover" runs from
the fault to the batch ending done (or, for a frozen node, to the node being given up and its
work going elsewhere; for a crashed worker, to the node back online).
"""


OUTRO = """
A node that fails a job is avoided for that job's retries while another node can take them,
and a node on which one segment of a job failed three times is blocklisted for that job
(`tests/controller/test_placement.py`). Every connection between nodes and the controller's
scheduler is mutual TLS with the cluster's CA; what that does and does not protect is in
`SECURITY.md`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, default=ROOT / "test-artifacts" / "reliability.json")
    parser.add_argument("--write", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    rows = json.loads(args.record.read_text())
    lines = [
        INTRO,
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "",
        "| fault or input | what happened | time to recover | what was lost |",
        "| --- | --- | ---: | --- |",
    ]
    for fault, row in rows.items():
        recovered = "-" if row["recovered_s"] is None else f"{row['recovered_s']:.1f} s"
        lines.append(f"| {fault} | {row['happened']} | {recovered} | {row['lost']} |")
    lines.append(OUTRO)
    args.write.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {args.write}")


if __name__ == "__main__":
    main()
