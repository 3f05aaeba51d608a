"""``gradpath check-data DATA``: list every dataset problem (missing/corrupt images, malformed labels, bad class
ids, short polygons, orphan labels, degenerate boxes, json missing keys, empty splits) with file names."""
from __future__ import annotations

import json

from gradpath.commands import COMMANDS
from gradpath.data.check import check_dataset
from gradpath.errors import GradpathError


def add_parser(sub) -> None:
    p = sub.add_parser("check-data", help=COMMANDS["check-data"][1],
                       description="Parse every split of a dataset and decode every image, then list each "
                       "problem with its file. Exit status 2 if there are errors (the report, then one line "
                       "on stderr); warnings alone exit 0.")
    p.add_argument("data", help="dataset yaml (ultralytics shape), a folder holding data.yaml, or 'shapes'")
    p.add_argument("--split", action="append", choices=["train", "val"],
                   help="check only this split (repeatable; default: all)")
    p.add_argument("--no-decode", dest="decode", action="store_false",
                   help="skip decoding every image (faster; misses corrupt files)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    report = check_dataset(args.data, tuple(args.split) if args.split else None, decode_images=args.decode)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, s in report["splits"].items():
            dropped = s.get("dropped_polygons", 0)
            print(f"{name}: {s['images']} images, {s['instances']} instances ({s['format']})"
                  + (f", {dropped} degenerate polygon(s) dropped (their boxes kept)" if dropped else ""))
        for level in ("errors", "warnings"):
            for p in report[level]:
                where = f"[{p['split']}] " if "split" in p else ""
                print(f"{level[:-1]}: {where}{p['file']}: {p['message']}")
        print(f"{len(report['errors'])} error(s), {len(report['warnings'])} warning(s)"
              + (": OK" if report["ok"] else ""))
    if not report["ok"]:
        # The same exit status (2) and one-line form as every other user mistake; the details are in the report.
        raise GradpathError(f"{args.data}: {len(report['errors'])} error(s) listed above; fix them before training")
    return 0
