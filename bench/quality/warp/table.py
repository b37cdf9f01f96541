"""Markdown table of work/warp/results.jsonl (one row per run x generation control)."""
import json
import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "work/warp/results.jsonl")
print("| clip | run | k | best_of | steps | train s | img/s | control | frames | scale | motion per window | realism "
      "last | sharp min/max | drift | replay | 1-step PSNR model/copy | failed |")
print("|" + "---|" * 17)
for line in path.read_text().splitlines():
    r = json.loads(line)
    a = r["args"]
    print(f"| {r['clip']} | {r['name']} ({a['arch']}) | {a['k']} | {a['best_of']} | {a['steps']} | {r['train_s']:.0f} | "
          f"{r['img_s']:.1f} | {r['control']} | {a['frames']} | "
          f"{'-' if r['mean_scale'] is None else round(r['mean_scale'], 1)} | {r['motion']} | {r['realism_last']} | "
          f"{r['sharp_min']}/{r['sharp_max']} | {r['drift']} | {r['replay']} | {r['psnr_model']}/{r['psnr_copy']} | "
          f"{','.join(r['failed']) or 'PASS'} |")
