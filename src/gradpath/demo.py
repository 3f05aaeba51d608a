"""`make demo` until the training demo lands: list the models and profile one."""
import sys

from gradpath.cli import main

if __name__ == "__main__":
    rc = main(["models"]) or main(["profile", "tiny-elan"])
    sys.exit(rc)
