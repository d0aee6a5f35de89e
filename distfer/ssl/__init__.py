"""Self-supervised pretraining of the encoder on the unlabelled target (SwAV)."""

from distfer.ssl.swav import SwAVNet, build_swav, swav_loss

__all__ = ["SwAVNet", "build_swav", "swav_loss"]
