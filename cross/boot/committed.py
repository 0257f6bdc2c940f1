#!/usr/bin/env python3
"""What the agent reported committed (its "ok ... seq a..=b" lines on each boot's serial
console, complete lines only) against what the in-guest broker delivered
(share/out/delivered.log, recorded on the host as it arrived).

  committed.py max RUN_DIR     the highest seq reported so far (0 if none)
  committed.py check RUN_DIR   prints per boot: reported, delivered, lost; exit 1 if any lost

Only boots that ended in a power cut count (every boot but the last): the last one ends with a
clean shutdown while the app still commits, so its newest events wait in the outbox.
"""
import glob
import json
import re
import sys

OK = re.compile(r": ok in .* seq (\d+)\.\.=(\d+)")


def reported(run):
    """seq -> boot number, for every complete ok line of every boot's console."""
    seqs = {}
    for path in sorted(glob.glob(f"{run}/serial-*.log"), key=lambda p: int(re.findall(r"(\d+)\.log", p)[0])):
        boot = int(re.findall(r"(\d+)\.log", path)[0])
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
        for line in data.split("\n")[:-1]:  # the last piece may be cut mid-line
            m = OK.search(line)
            if m:
                for s in range(int(m.group(1)), int(m.group(2)) + 1):
                    seqs.setdefault(s, boot)
    return seqs


def delivered(run):
    seqs, incarnations = set(), set()
    try:
        lines = open(f"{run}/share/out/delivered.log", "rb").read().decode("utf-8", "replace").split("\n")
    except FileNotFoundError:
        return seqs, incarnations
    for line in lines:
        topic, _, payload = line.partition(" ")
        if "/events/" not in topic:
            continue
        try:
            body = json.loads(payload)
        except ValueError:
            continue
        for ev in body if isinstance(body, list) else [body]:
            seqs.add(ev["seq"])
            incarnations.add(ev.get("incarnation"))
    return seqs, incarnations


def main():
    mode, run = sys.argv[1], sys.argv[2]
    rep = reported(run)
    if mode == "max":
        print(max(rep) if rep else 0)
        return 0
    got, incs = delivered(run)
    last = max(rep.values()) if rep else 0
    queued = sorted(s for s, b in rep.items() if b == last and s not in got)
    rep = {s: b for s, b in rep.items() if b != last}
    lost = sorted(s for s in rep if s not in got)
    boots = sorted(set(rep.values()))
    for b in boots:
        mine = [s for s, bb in rep.items() if bb == b]
        print(f"boot {b}: reported committed {len(mine)} (seq {min(mine)}..{max(mine)}), "
              f"lost {sum(1 for s in lost if rep[s] == b)}")
    dup_free = len(got)
    print(f"total: reported committed {len(rep)}, delivered distinct {dup_free}, "
          f"incarnations {len(incs)}, lost {len(lost)}" + (f" (first {lost[:10]})" if lost else ""))
    print(f"last boot (clean shutdown, not counted): {len(queued)} newest events left in the outbox")
    print(f"FIGURE: power_cuts={len(boots)}")
    print(f"FIGURE: events_reported_committed={len(rep)}")
    print(f"FIGURE: events_lost={len(lost)}")
    return 1 if lost or len(incs) > 1 else 0


sys.exit(main())
