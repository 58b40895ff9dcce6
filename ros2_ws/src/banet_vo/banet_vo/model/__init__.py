"""banet_vo.model."""
