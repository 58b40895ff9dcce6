"""BA-Net: backbone, feature pyramid, basis-depth decoder, damping MLP, differentiable BA layer, checkpoints.

API: ``BANetConfig.preset("paper"|"small")``, ``BANet(config)(image_ref, image_tgt, intrinsics)`` →
``BANetOutput``; ``bundle_adjust`` with ``BAOptions`` for the bare BA; ``save_checkpoint`` /
``load_checkpoint`` / ``load_banet``. See docs/model.md. Names are imported on first use
(banet_vo.lazy_exports): `shipped` (where the default model lies) loads without torch.
"""

from banet_vo.lazy_exports import lazy_exports

_EXPORTS = {
    "ba_layer": ("BALayer", "BAResult", "bundle_adjust"),
    "banet": ("BANet", "BANetOutput", "BANetParts", "BANetPrediction"),
    "checkpoint": ("CheckpointError", "load_banet", "load_checkpoint", "save_checkpoint"),
    "config": ("BANetConfig", "BAOptions"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = [name for names in _EXPORTS.values() for name in names]
