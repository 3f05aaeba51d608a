"""scripts/shapes_cls_factors.py: errors of a confusion matrix counted by the factor (colour, pattern, shape) in
which the predicted class differs from the true one, checked on a hand-made matrix."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "shapes_cls_factors.py"
spec = importlib.util.spec_from_file_location("shapes_cls_factors", SCRIPT)
factors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(factors)

NAMES = ["warm-solid-circle", "warm-striped-circle", "cool-solid-star"]


def test_each_error_counts_for_every_factor_it_gets_wrong():
    confusion = [[10, 3, 1],   # 3 × pattern; 1 × colour + shape (+ pattern equal: solid)
                 [2, 8, 0],    # 2 × pattern
                 [0, 4, 6]]    # 4 × colour + pattern + shape
    assert factors.factor_errors(confusion, NAMES) == {"colour": 5, "pattern": 9, "shape": 5, "errors": 10}


def test_cli_reads_val_json_and_refuses_other_files(tmp_path, capsys):
    from gradpath.data.shapes_cls import class_names
    n = len(class_names())
    conf = [[5 if i == j else 0 for j in range(n)] for i in range(n)]
    conf[0][1] = 2
    (tmp_path / "a.json").write_text(json.dumps({"top1": 0.9, "confusion": conf}))
    assert factors.main([str(tmp_path / "a.json")]) == 0
    assert "90.0" in capsys.readouterr().out
    (tmp_path / "b.json").write_text("{}")
    assert factors.main([str(tmp_path / "b.json")]) == 1
    assert "b.json: not the JSON of `gradpath val --json`" in capsys.readouterr().err
