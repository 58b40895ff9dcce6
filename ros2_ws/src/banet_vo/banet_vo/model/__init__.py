"""BA-Net: backbone, feature pyramid, basis-depth decoder, damping MLP, differentiable BA layer, checkpoints.

API: ``BANetConfig.preset("paper"|"small")``, ``BANet(config)(image_ref, image_tgt, intrinsics)`` →
``BANetOutput``; ``bundle_adjust`` with ``BAOptions`` for the bare BA; ``save_checkpoint`` /
``load_checkpoint`` / ``load_banet``. See docs/model.md.
"""

from banet_vo.model.ba_layer import BALayer, BAResult, bundle_adjust
from banet_vo.model.banet import BANet, BANetOutput, BANetParts, BANetPrediction
from banet_vo.model.checkpoint import CheckpointError, load_banet, load_checkpoint, save_checkpoint
from banet_vo.model.config import BANetConfig, BAOptions

__all__ = [
    "BALayer",
    "BANet",
    "BANetConfig",
    "BANetOutput",
    "BANetParts",
    "BANetPrediction",
    "BAOptions",
    "BAResult",
    "CheckpointError",
    "bundle_adjust",
    "load_banet",
    "load_checkpoint",
    "save_checkpoint",
]
