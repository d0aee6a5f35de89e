"""Backbones (registry), the classifier model and model files."""

from distfer.models.backbones import available, build_backbone, register
from distfer.models.checkpoint import load_model, save_model
from distfer.models.classifier import IMAGENET_MEAN, IMAGENET_STD, FERModel

__all__ = [
    "FERModel", "IMAGENET_MEAN", "IMAGENET_STD", "available", "build_backbone", "load_model",
    "register", "save_model",
]
