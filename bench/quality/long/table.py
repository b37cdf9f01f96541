"""Markdown table of bench/quality/long/results.jsonl (one row per run)."""
import json
import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.jsonl"))
print("| clip | run | steps | train s (img/s) | motion min / max | realism last | sharp | drift | replay | "
      "1-step PSNR model / copy | synth right 1 / 20 (dropout off; on) | div@100 / @end |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for line in path.read_text().splitlines():
    r = json.loads(line)
    syn = ""
    if "synth_off" in r:
        a, b = r["synth_off"], r["synth_on"]
        syn = " / ".join(str(v) for v in a.values()) + "; " + " / ".join(str(v) for v in b.values())
    ts = f"{r['train_s']} ({r['img_s']})" if r.get("train_s") else "reused"
    one = r["one_step"]
    divs = [v for k, v in r.items() if k.startswith("div_")]
    print(f"| {r['clip']} | {r['name']} | {r['steps']} | {ts} | {r['motion_min']} / {r['motion_max']} | "
          f"{r['realism_last']} | {r['sharp_last']} | {r['drift']} | {r['replay']} | "
          f"{one['psnr_model']} / {one['psnr_copy']} | {syn} | {' / '.join(map(str, divs))} |")
