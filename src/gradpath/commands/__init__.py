"""CLI subcommands: each module has ``add_parser(subparsers)`` and sets ``func`` on its parser."""
COMMAND_MODULES = ["models", "profile", "reproduce", "analyze", "train", "check_data", "val", "predict", "export"]
