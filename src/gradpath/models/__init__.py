"""Model families; importing this module fills the registry."""
from gradpath.models import classifiers, reference, vovnet, yolor, yolov5  # noqa: F401
from gradpath.models.registry import (
    ModelEntry,
    PaperRef,
    create_model,
    get_entry,
    list_models,
    model_entries,
    register_model,
)

__all__ = ["ModelEntry", "PaperRef", "create_model", "get_entry", "list_models", "model_entries", "register_model"]
