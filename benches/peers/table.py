"""Print a markdown table from peer JSONL results: python3 table.py results.jsonl"""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| peer | mode | dist | batch | seconds | preds/s | bytes/pred | max_err | note |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
for r in rows:
    note = []
    if r.get("provider"):
        note.append(r["provider"])
    if r.get("extrapolated"):
        note.append(f"extrapolated from {r['rows_measured']} rows")
    if r.get("workers"):
        note.append(f"{r['workers']} workers")
    if r.get("transport"):
        note.append("loopback TLS" if r["transport"] == "tcp" else "in process")
    print(f"| {r['peer']} | {r['mode']} | {r.get('dist', '')} | {r['batch']} | {r['seconds']:.4g} | "
          f"{r['preds_per_s']:.4g} | {r['bytes_per_pred']:.0f} | {r['max_err']:.3g} | {', '.join(note)} |")
