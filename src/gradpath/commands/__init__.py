"""CLI subcommands: each ``gradpath.commands.<module>`` has ``add_parser(subparsers)`` and sets ``func``.

``COMMANDS`` maps each command to its module and the one-line summary that ``gradpath --help`` lists. The
summaries live here so that listing the commands imports none of them: the CLI imports only the module of the
command it runs (training and export pull in torchvision and the trainer, seconds of start-up), and a command
whose imports fail cannot break the others. ``tests/test_cli.py`` checks that each module's own ``help=`` equals
its summary here.
"""
from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("models", "list registered models and their paper numbers"),
    "profile": ("profile", "count params/FLOPs, activation memory and latency of a model"),
    "reproduce": ("reproduce", "reproduce the paper's tables: flops (every FLOPs/params row), table1 ... table8, "
                  "all"),
    "analyze": ("analyze", "gradient paths: SGP/LGP, timestamps, path counts, sources per unit; LGP/LSGP per net"),
    "train": ("train", "train a model on a task and write runs/<task>/<name>/"),
    "check-data": ("check_data", "check a dataset for problems before training"),
    "val": ("val", "evaluate a trained model on a dataset split (segment: COCO box and mask AP; "
            "classify: top-1/top-5)"),
    "predict": ("predict", "run a trained model on images (segment: boxes and masks; classify: top classes)"),
    "export": ("export", "export a trained model to ONNX, torch.export (pt2), TorchScript (deprecated) or "
               "safetensors (checked against PyTorch)"),
    "convert": ("convert", "convert another code base's trained weights (YOLOv5 v7.0 -seg, YOLOv7 u7 "
                "yolov7-seg) into a gradpath checkpoint"),
}

